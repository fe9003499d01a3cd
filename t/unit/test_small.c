/*
 * Replay window, allowed IPs, rate limiter, Noise and cookie units.
 */

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "wgtest.h"
#include "wg_replay.h"
#include "wg_allowedips.h"
#include "wg_ratelimiter.h"
#include "wg_noise.h"
#include "wg_cookie.h"


#define NS  1000000000ULL
#define MS  1000000ULL
#define LIMIT  (UINT64_MAX - 8192)


void
test_replay(void)
{
    int          ok;
    uint64_t     i;
    wg_replay_t  r;

    wgt_section("replay window");

    CHECK(WG_REPLAY_WINDOW_SIZE == 8128, "window is 8128 packets");

    wg_replay_init(&r);
    CHECK(wg_replay_check(&r, 0, LIMIT) == 0, "counter 0 accepted");
    CHECK(wg_replay_check(&r, 0, LIMIT) == -1, "counter 0 replay rejected");
    CHECK(wg_replay_check(&r, 1, LIMIT) == 0, "counter 1 accepted");
    CHECK(wg_replay_check(&r, 5, LIMIT) == 0, "gap forward accepted");
    CHECK(wg_replay_check(&r, 3, LIMIT) == 0, "late but in window accepted");
    CHECK(wg_replay_check(&r, 3, LIMIT) == -1, "late duplicate rejected");
    CHECK(wg_replay_check(&r, 5, LIMIT) == -1,
          "duplicate of greatest rejected");

    wg_replay_init(&r);
    CHECK(wg_replay_check(&r, 10000, LIMIT) == 0, "jump to 10000");
    CHECK(wg_replay_check(&r, 10000 - 8128, LIMIT) == 0,
          "greatest - 8128 is inside the window");
    CHECK(wg_replay_check(&r, 10000 - 8129, LIMIT) == -1,
          "greatest - 8129 is too old");
    CHECK(wg_replay_check(&r, 10000 - 8128, LIMIT) == -1,
          "edge of window replay rejected");
    CHECK(wg_replay_check(&r, 9999, LIMIT) == 0, "9999 accepted");

    /* every counter of a long in-order run, then all of them replayed */
    wg_replay_init(&r);
    ok = 1;
    for (i = 0; i < 20000; i++) {
        ok &= wg_replay_check(&r, i, LIMIT) == 0;
    }
    CHECK(ok, "20000 in-order counters accepted");
    ok = 1;
    for (i = 20000 - 8128; i < 20000; i++) {
        ok &= wg_replay_check(&r, i, LIMIT) == -1;
    }
    CHECK(ok, "the whole window replayed is rejected");

    /* reordering inside the window across word boundaries */
    wg_replay_init(&r);
    ok = 1;
    for (i = 0; i < 8128; i += 2) {
        ok &= wg_replay_check(&r, 8127 - i, LIMIT) == 0;
    }
    for (i = 1; i < 8128; i += 2) {
        ok &= wg_replay_check(&r, 8127 - i, LIMIT) == 0;
    }
    CHECK(ok, "8128 counters in reverse interleaved order accepted");

    /* a huge jump clears everything */
    CHECK(wg_replay_check(&r, 1ULL << 40, LIMIT) == 0, "jump by 2^40");
    CHECK(wg_replay_check(&r, (1ULL << 40) - 64, LIMIT) == 0,
          "stale bits cleared after a jump");

    CHECK(wg_replay_check(&r, LIMIT, LIMIT) == -1,
          "REJECT_AFTER_MESSAGES counter rejected");
    CHECK(wg_replay_check(&r, UINT64_MAX, LIMIT) == -1,
          "2^64-1 rejected");
}


void
test_allowedips(void)
{
    int              p1, p2, p3, p4, p5, p6, ok;
    uint8_t          a[16];
    unsigned         i;
    wg_allowedips_t  t;

    wgt_section("allowed IPs (longest prefix match)");

    wg_allowedips_init(&t);

#define ADD4(s, c, p)  (inet_pton(AF_INET, s, a), \
                        wg_allowedips_insert(&t, AF_INET, a, c, p))
#define ADD6(s, c, p)  (inet_pton(AF_INET6, s, a), \
                        wg_allowedips_insert(&t, AF_INET6, a, c, p))
#define GET4(s)        (inet_pton(AF_INET, s, a), \
                        wg_allowedips_lookup(&t, AF_INET, a))
#define GET6(s)        (inet_pton(AF_INET6, s, a), \
                        wg_allowedips_lookup(&t, AF_INET6, a))

    CHECK(ADD4("10.0.0.0", 8, &p1) == 0, "insert 10/8");
    CHECK(ADD4("10.1.0.0", 16, &p2) == 0, "insert 10.1/16");
    CHECK(ADD4("10.1.2.0", 24, &p3) == 0, "insert 10.1.2/24");
    CHECK(ADD4("10.1.2.3", 32, &p4) == 0, "insert 10.1.2.3/32");
    CHECK(ADD4("192.168.0.0", 23, &p5) == 0, "insert 192.168/23");
    CHECK(ADD4("10.1.2.77", 24, &p3) == 0, "host bits are masked");
    CHECK(ADD4("1.2.3.4", 33, &p1) == -1, "cidr 33 refused");

    CHECK(GET4("10.9.9.9") == &p1, "10.9.9.9 -> /8");
    CHECK(GET4("10.1.9.9") == &p2, "10.1.9.9 -> /16");
    CHECK(GET4("10.1.2.9") == &p3, "10.1.2.9 -> /24");
    CHECK(GET4("10.1.2.3") == &p4, "10.1.2.3 -> /32");
    CHECK(GET4("192.168.1.255") == &p5, "192.168.1.255 -> /23");
    CHECK(GET4("192.168.2.0") == NULL, "192.168.2.0 unrouted");
    CHECK(GET4("11.0.0.0") == NULL, "11/8 unrouted");

    CHECK(ADD4("10.1.0.0", 16, &p6) == 0, "same prefix moves to a new peer");
    CHECK(GET4("10.1.9.9") == &p6, "moved prefix routes to the new peer");

    CHECK(ADD6("fd00::", 8, &p1) == 0, "insert fd00::/8");
    CHECK(ADD6("fd00:1::", 32, &p2) == 0, "insert fd00:1::/32");
    CHECK(ADD6("fd00:1::1", 128, &p3) == 0, "insert fd00:1::1/128");
    CHECK(GET6("fd12::1") == &p1, "fd12::1 -> /8");
    CHECK(GET6("fd00:1::2") == &p2, "fd00:1::2 -> /32");
    CHECK(GET6("fd00:1::1") == &p3, "fd00:1::1 -> /128");
    CHECK(GET6("2001:db8::1") == NULL, "2001:db8::1 unrouted");
    CHECK(GET4("10.1.2.3") == &p4, "families are separate");

    wg_allowedips_remove_by_peer(&t, &p3);
    CHECK(GET4("10.1.2.9") == &p6, "after removal /24 falls back to /16");
    CHECK(GET6("fd00:1::1") == &p2, "after removal /128 falls back to /32");
    CHECK(GET4("10.1.2.3") == &p4, "other peers untouched by removal");
    CHECK(wg_allowedips_count(&t, &p3) == 0, "removed peer has no prefixes");

    /* many prefixes for one peer */
    ok = 1;
    for (i = 0; i < 4096; i++) {
        a[0] = 172;
        a[1] = 16 + (i >> 8);
        a[2] = (uint8_t) i;
        a[3] = 0;
        ok &= wg_allowedips_insert(&t, AF_INET, a, 24, &p5) == 0;
    }
    CHECK(ok, "4096 /24 prefixes inserted");
    CHECK(wg_allowedips_count(&t, &p5) == 4097, "4097 prefixes counted");
    CHECK(GET4("172.31.255.1") == &p5, "last of the many prefixes routes");
    CHECK(GET4("172.32.0.1") == NULL, "just past them unrouted");

    CHECK(ADD4("0.0.0.0", 0, &p6) == 0, "default route");
    CHECK(GET4("8.8.8.8") == &p6, "default route catches the rest");

    wg_allowedips_remove_by_peer(&t, &p5);
    CHECK(GET4("172.31.255.1") == &p6, "many prefixes removed at once");

    wg_allowedips_free(&t);
    CHECK(GET4("10.1.2.3") == NULL, "freed trie is empty");
}


void
test_ratelimiter(void)
{
    int               i, n;
    uint8_t           ip1[4] = { 192, 0, 2, 1 }, ip2[4] = { 192, 0, 2, 2 };
    uint8_t           ip6a[16], ip6b[16];
    uint64_t          now;
    wg_ratelimiter_t  rl;

    wgt_section("handshake rate limiter");

    wg_ratelimiter_init(&rl);
    now = 1000 * NS;

    for (n = 0, i = 0; i < 10; i++) {
        n += wg_ratelimiter_allow(&rl, AF_INET, ip1, now);
    }
    CHECK(n == 5, "burst of 5 from one address");
    CHECK(wg_ratelimiter_allow(&rl, AF_INET, ip2, now),
          "another address has its own bucket");

    now += 49 * MS;
    CHECK(!wg_ratelimiter_allow(&rl, AF_INET, ip1, now),
          "49 ms later still limited");
    now += 1 * MS;
    CHECK(wg_ratelimiter_allow(&rl, AF_INET, ip1, now),
          "50 ms (1/20 s) later one more");

    /* sustained: 20 per second */
    for (n = 0, i = 0; i < 1000; i++) {
        now += 10 * MS;
        n += wg_ratelimiter_allow(&rl, AF_INET, ip1, now);
    }
    CHECK(n >= 199 && n <= 201, "20 per second sustained");

    memset(ip6a, 0, 16);
    ip6a[0] = 0x20;
    ip6a[1] = 0x01;
    memcpy(ip6b, ip6a, 16);
    ip6b[15] = 9;
    for (n = 0, i = 0; i < 10; i++) {
        n += wg_ratelimiter_allow(&rl, AF_INET6, i & 1 ? ip6a : ip6b, now);
    }
    CHECK(n == 5, "IPv6 addresses of one /64 share a bucket");

    CHECK(wg_ratelimiter_gc(&rl, now) != UINT64_MAX, "entries tracked");
    now += 2 * NS;
    wg_ratelimiter_gc(&rl, now);
    CHECK(rl.count == 0, "idle entries collected");
    wg_ratelimiter_free(&rl);
}


static wg_handshake_t  *noise_responder_hs;

static wg_handshake_t *
noise_lookup(void *ctx, const uint8_t pub[WG_DH_LEN])
{
    (void) pub;
    (void) ctx;
    return noise_responder_hs;
}


void
test_noise(void)
{
    uint8_t              ipriv[32], ipub[32], rpriv[32], rpub[32];
    uint8_t              psk[32];
    uint64_t             rt;
    wg_handshake_t       ihs, rhs;
    wg_noise_keys_t      ik, rk;
    wg_noise_static_t    ist, rst;
    wg_msg_response_t    resp;
    wg_msg_initiation_t  init, init2, init3;

    wgt_section("Noise_IKpsk2 handshake");

    CHECK(sizeof(wg_msg_initiation_t) == 148, "initiation is 148 bytes");
    CHECK(sizeof(wg_msg_response_t) == 92, "response is 92 bytes");
    CHECK(sizeof(wg_msg_cookie_t) == 64, "cookie reply is 64 bytes");
    CHECK(sizeof(wg_msg_data_t) == 16, "data header is 16 bytes");

    wg_dh_generate(ipriv, ipub);
    wg_dh_generate(rpriv, rpub);
    wg_random(psk, sizeof(psk));

    wg_noise_static_set(&ist, ipriv);
    wg_noise_static_set(&rst, rpriv);
    wg_noise_handshake_init(&ihs, &ist, rpub, psk);
    wg_noise_handshake_init(&rhs, &rst, ipub, psk);
    noise_responder_hs = &rhs;

    rt = 1700000000ULL * NS;

    CHECK(wg_noise_create_initiation(&ihs, &ist, &init, 0x11111111, rt) == 0,
          "initiation created");
    CHECK(wg_noise_consume_initiation(&rst, &init, noise_lookup, NULL,
                                      10 * NS) == &rhs,
          "initiation consumed");
    CHECK(rhs.remote_index == 0x11111111, "sender index carried");
    CHECK(wg_noise_create_response(&rhs, &rst, &resp, 0x22222222) == 0,
          "response created");
    CHECK(wg_noise_consume_response(&ihs, &ist, &resp) == 0,
          "response consumed");
    CHECK(wg_noise_begin_session(&ihs, &ik) == 0
          && wg_noise_begin_session(&rhs, &rk) == 0, "sessions derived");
    CHECK(memcmp(ik.send_key, rk.recv_key, 32) == 0
          && memcmp(ik.recv_key, rk.send_key, 32) == 0
          && memcmp(ik.send_key, ik.recv_key, 32) != 0,
          "transport keys mirror each other");
    CHECK(ik.is_initiator && !rk.is_initiator, "roles");
    CHECK(ik.remote_index == 0x22222222 && rk.remote_index == 0x11111111,
          "indices exchanged");
    CHECK(ihs.state == WG_HANDSHAKE_ZEROED
          && wg_is_zero_ct(ihs.chaining_key, 32)
          && wg_is_zero_ct(ihs.ephemeral_private, 32),
          "handshake secrets wiped after derivation");

    /* replay of the same initiation: timestamp not newer */
    CHECK(wg_noise_consume_initiation(&rst, &init, noise_lookup, NULL,
                                      20 * NS) == NULL,
          "replayed initiation rejected (TAI64N not greater)");

    /* a newer one 10 ms after the last accepted one: flood */
    CHECK(wg_noise_create_initiation(&ihs, &ist, &init2, 3, rt + NS) == 0,
          "second initiation");
    CHECK(wg_noise_consume_initiation(&rst, &init2, noise_lookup, NULL,
                                      10 * NS + 10 * MS) == NULL,
          "initiation within 1/50 s of the last rejected");
    CHECK(wg_noise_consume_initiation(&rst, &init2, noise_lookup, NULL,
                                      10 * NS + 25 * MS) == &rhs,
          "the same initiation 25 ms later accepted");

    /* a wrong psk fails at the response */
    CHECK(wg_noise_create_initiation(&ihs, &ist, &init3, 4, rt + 2 * NS) == 0,
          "third initiation");
    CHECK(wg_noise_consume_initiation(&rst, &init3, noise_lookup, NULL,
                                      20 * NS) == &rhs, "third consumed");
    rhs.preshared_key[0] ^= 1;
    CHECK(wg_noise_create_response(&rhs, &rst, &resp, 5) == 0,
          "response with wrong psk created");
    CHECK(wg_noise_consume_response(&ihs, &ist, &resp) == -1,
          "psk mismatch detected by the initiator");
    CHECK(ihs.state == WG_HANDSHAKE_CREATED_INITIATION,
          "failed response leaves the handshake untouched");

    /* tampering anywhere in the initiation */
    init3.encrypted_static[5] ^= 1;
    CHECK(wg_noise_consume_initiation(&rst, &init3, noise_lookup, NULL,
                                      30 * NS) == NULL,
          "tampered static rejected");

    /* an all-zero (small order) ephemeral */
    CHECK(wg_noise_create_initiation(&ihs, &ist, &init3, 6, rt + 3 * NS) == 0,
          "fourth initiation");
    memset(init3.ephemeral, 0, 32);
    CHECK(wg_noise_consume_initiation(&rst, &init3, noise_lookup, NULL,
                                      40 * NS) == NULL,
          "zero ephemeral rejected");
}


void
test_cookie(void)
{
    uint8_t              pub[32], priv[32], src[6] = { 10, 0, 0, 1, 0, 80 };
    uint8_t              src2[6] = { 10, 0, 0, 2, 0, 80 };
    uint64_t             now;
    wg_msg_cookie_t      reply;
    wg_cookie_maker_t    maker;
    wg_cookie_checker_t  checker;
    wg_msg_initiation_t  msg;

    wgt_section("cookies and macs");

    wg_dh_generate(priv, pub);
    wg_cookie_checker_init(&checker, pub);
    memset(&checker.secret, 0, sizeof(checker.secret));
    checker.has_secret = 0;
    wg_cookie_maker_init(&maker, pub);

    now = 100 * NS;
    memset(&msg, 0x5a, sizeof(msg));
    wg_cookie_add_macs(&maker, (uint8_t *) &msg, sizeof(msg), now);
    CHECK(wg_is_zero_ct(msg.macs.mac2, 16), "mac2 zero without a cookie");
    CHECK(wg_cookie_validate(&checker, (uint8_t *) &msg, sizeof(msg), src, 6,
                             0, now) == WG_COOKIE_MAC_VALID, "mac1 valid");
    CHECK(wg_cookie_validate(&checker, (uint8_t *) &msg, sizeof(msg), src, 6,
                             1, now) == WG_COOKIE_MAC_VALID,
          "mac2 not valid without cookie");

    msg.ephemeral[0] ^= 1;
    CHECK(wg_cookie_validate(&checker, (uint8_t *) &msg, sizeof(msg), src, 6,
                             0, now) == WG_COOKIE_MAC_INVALID,
          "changed message fails mac1");
    msg.ephemeral[0] ^= 1;

    wg_cookie_create_reply(&checker, &reply, (uint8_t *) &msg, sizeof(msg),
                           77, src, 6, now);
    CHECK(reply.type == 3 && reply.receiver_index == 77, "cookie reply header");
    CHECK(wg_cookie_consume_reply(&maker, &reply, now) == 0,
          "cookie reply consumed");
    CHECK(wg_cookie_consume_reply(&maker, &reply, now) == -1,
          "cookie reply consumed only once");

    wg_cookie_add_macs(&maker, (uint8_t *) &msg, sizeof(msg), now + NS);
    CHECK(wg_cookie_validate(&checker, (uint8_t *) &msg, sizeof(msg), src, 6,
                             1, now + NS) == WG_COOKIE_MAC_VALID_WITH_COOKIE,
          "mac2 valid with the cookie");
    CHECK(wg_cookie_validate(&checker, (uint8_t *) &msg, sizeof(msg), src2, 6,
                             1, now + NS) == WG_COOKIE_MAC_VALID,
          "cookie bound to the source address");

    /* the secret rotates every 120 s: old cookies stop working */
    CHECK(wg_cookie_validate(&checker, (uint8_t *) &msg, sizeof(msg), src, 6,
                             1, now + 121 * NS) == WG_COOKIE_MAC_VALID,
          "cookie invalid after secret rotation");

    /* and the maker stops using a cookie older than 120 - 5 s */
    wg_cookie_add_macs(&maker, (uint8_t *) &msg, sizeof(msg), now + 116 * NS);
    CHECK(wg_is_zero_ct(msg.macs.mac2, 16), "expired cookie not used");

    /* a reply for another message (wrong mac1 as AAD) is refused */
    wg_cookie_create_reply(&checker, &reply, (uint8_t *) &msg, sizeof(msg),
                           77, src, 6, now);
    msg.ephemeral[1] ^= 1;
    wg_cookie_add_macs(&maker, (uint8_t *) &msg, sizeof(msg), now);
    CHECK(wg_cookie_consume_reply(&maker, &reply, now) == -1,
          "cookie reply for another message refused");
}
