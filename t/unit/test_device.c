/*
 * Two devices in one process, joined by a fake network and driven by a
 * fake clock: the protocol's behaviours end to end.
 */

#include <arpa/inet.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "wgtest.h"
#include "wg_peer.h"


#define NS          1000000000ULL
#define MS          1000000ULL
#define MAX_OUT     1024
#define MSG_MAX     1600


typedef struct {
    uint8_t             data[MSG_MAX];
    size_t              len;
    wg_endpoint_t       to;
} msg_t;


typedef struct {
    const char         *name;
    wg_device_t        *dev;
    wg_peer_t          *peer;       /* the other node */
    wg_endpoint_t       addr;       /* where this node's datagrams come from */
    uint8_t             overlay[4];
    uint8_t             priv[32];
    uint8_t             pub[32];
    msg_t              *out;
    unsigned            nout;
    unsigned            sent_init;
    unsigned            sent_data;
    unsigned            sent_keepalive;
    unsigned            sent_cookie;
    unsigned            sent_in_place;  /* built in the buffer it gave */
    unsigned            nrecv;
    uint8_t             last[MSG_MAX];
    size_t              last_len;
    unsigned            events[8];
    uint64_t            event_time[8];
    int                 drop_out;
} node_t;


static uint64_t  now;
static node_t    A, B;
static msg_t     pump_buf[MAX_OUT];


static void
n_send(void *ctx, wg_peer_t *peer, const wg_endpoint_t *ep,
    const uint8_t *msg, size_t len)
{
    node_t  *n = ctx;

    (void) peer;

    switch (msg[0]) {
    case 1:
        n->sent_init++;
        break;
    case 3:
        n->sent_cookie++;
        break;
    case 4:
        if (len == 32) {
            n->sent_keepalive++;
        } else {
            n->sent_data++;
        }
        break;
    }

    if (n->drop_out || n->nout == MAX_OUT || len > MSG_MAX) {
        return;
    }

    if (msg == n->out[n->nout].data) {
        n->sent_in_place++;

    } else {
        memcpy(n->out[n->nout].data, msg, len);
    }

    n->out[n->nout].len = len;
    n->out[n->nout].to = *ep;
    n->nout++;
}


/* A builds its data messages where n_send() keeps them, B in the device */

static uint8_t *
n_buffer(void *ctx, const wg_endpoint_t *ep, size_t len)
{
    node_t  *n = ctx;

    (void) ep;

    if (n->drop_out || n->nout == MAX_OUT || len > MSG_MAX) {
        return NULL;
    }

    return n->out[n->nout].data;
}


static void
n_recv(void *ctx, wg_peer_t *peer, uint8_t *pkt, size_t len)
{
    node_t  *n = ctx;

    (void) peer;

    n->nrecv++;
    memcpy(n->last, pkt, len < MSG_MAX ? len : MSG_MAX);
    n->last_len = len;
}


static void
n_event(void *ctx, wg_peer_t *peer, wg_event_t ev)
{
    node_t  *n = ctx;

    (void) peer;

    n->events[ev]++;
    n->event_time[ev] = now;
}


static uint64_t
n_realtime(void *ctx)
{
    (void) ctx;

    return 1700000000ULL * NS + now;
}


static void
ep4(wg_endpoint_t *ep, const char *ip, unsigned port)
{
    memset(ep, 0, sizeof(*ep));
    ep->len = sizeof(struct sockaddr_in);
    ep->addr.in.sin_family = AF_INET;
    ep->addr.in.sin_port = htons((uint16_t) port);
    inet_pton(AF_INET, ip, &ep->addr.in.sin_addr);
}


static void
node_init(node_t *n, const char *name, const char *ip, unsigned port,
    unsigned overlay_last)
{
    wg_device_ops_t  ops;

    free(n->out);
    memset(n, 0, sizeof(*n));
    n->name = name;
    n->out = calloc(MAX_OUT, sizeof(msg_t));
    ep4(&n->addr, ip, port);
    n->overlay[0] = 10;
    n->overlay[3] = (uint8_t) overlay_last;

    wg_random(n->priv, 32);

    memset(&ops, 0, sizeof(ops));
    ops.ctx = n;
    ops.send = n_send;
    ops.recv = n_recv;
    ops.event = n_event;
    ops.realtime = n_realtime;
    ops.buffer = (n == &A) ? n_buffer : NULL;

    n->dev = wg_device_create(n->priv, &ops);
    wg_device_public_key(n->dev, n->pub);
}


static void
pair_init(const uint8_t *psk_a, const uint8_t *psk_b, int b_knows_a)
{
    now += 1000 * NS;

    if (A.dev != NULL) {
        wg_device_destroy(A.dev);
        wg_device_destroy(B.dev);
    }

    node_init(&A, "A", "192.0.2.1", 1001, 1);
    node_init(&B, "B", "192.0.2.2", 1002, 2);

    A.peer = wg_device_add_peer(A.dev, B.pub, psk_a);
    B.peer = wg_device_add_peer(B.dev, A.pub, psk_b);

    wg_peer_add_allowed_ip(A.peer, AF_INET, B.overlay, 32);
    wg_peer_add_allowed_ip(B.peer, AF_INET, A.overlay, 32);

    wg_peer_set_endpoint(A.peer, &B.addr);

    if (b_knows_a) {
        wg_peer_set_endpoint(B.peer, &A.addr);
    }
}


/* deliver everything in flight, both ways, until the network is quiet */
static void
pump(void)
{
    unsigned  i, n, rounds;
    node_t   *src, *dst;

    for (rounds = 0; rounds < 64 && (A.nout || B.nout); rounds++) {
        src = A.nout ? &A : &B;
        dst = src == &A ? &B : &A;

        n = src->nout;
        memcpy(pump_buf, src->out, n * sizeof(msg_t));
        src->nout = 0;

        for (i = 0; i < n; i++) {
            wg_device_input(dst->dev, pump_buf[i].data, pump_buf[i].len,
                            &src->addr, now);
        }
    }
}


static void
tick(void)
{
    wg_device_tick(A.dev, now);
    wg_device_tick(B.dev, now);
    pump();
}


/* let time pass in steps, ticking and pumping */
static void
advance(uint64_t span, uint64_t step)
{
    uint64_t  end;

    end = now + span;

    while (now < end) {
        now += step;
        tick();
    }
}


static size_t
ip4(uint8_t *buf, const uint8_t src[4], const uint8_t dst[4], size_t total)
{
    size_t  i;

    memset(buf, 0, 20);
    buf[0] = 0x45;
    buf[2] = (uint8_t) (total >> 8);
    buf[3] = (uint8_t) total;
    buf[8] = 64;
    buf[9] = 17;
    memcpy(buf + 12, src, 4);
    memcpy(buf + 16, dst, 4);

    for (i = 20; i < total; i++) {
        buf[i] = (uint8_t) (i * 7);
    }

    return total;
}


static wg_result_t
send_ip(node_t *from, node_t *to, size_t total)
{
    uint8_t  pkt[2048];

    ip4(pkt, from->overlay, to->overlay, total);

    return wg_device_output(from->dev, pkt, total, now);
}


static int
established(void)
{
    wg_peer_stats_t  sa, sb;

    wg_peer_get_stats(A.peer, &sa);
    wg_peer_get_stats(B.peer, &sb);

    return sa.has_session && sb.has_session;
}


static void
test_handshake_and_data(void)
{
    uint8_t  pkt[2048];

    wgt_section("handshake and data, initiator A");

    pair_init(NULL, NULL, 0);

    ip4(pkt, A.overlay, B.overlay, 100);
    CHECK(wg_device_output(A.dev, pkt, 100, now) == WG_OK,
          "first packet queued");
    CHECK(A.sent_init == 1 && A.events[WG_EV_HANDSHAKE_SENT] == 1,
          "queued packet starts a handshake");
    CHECK(A.peer->staged_count == 1, "packet staged during handshake");

    pump();

    CHECK(A.events[WG_EV_HANDSHAKE_DONE] == 1, "initiator has a session");
    CHECK(B.nrecv == 1 && B.last_len == 100 && memcmp(B.last, pkt, 100) == 0,
          "staged packet delivered intact");
    CHECK(B.events[WG_EV_HANDSHAKE_DONE] == 1,
          "responder confirmed by the first data packet");
    CHECK(B.events[WG_EV_ENDPOINT_CHANGED] == 1,
          "responder learned the endpoint from the initiation");
    CHECK(established(), "both sides can send");

    CHECK(send_ip(&B, &A, 60) == WG_OK, "B sends back");
    pump();
    CHECK(A.nrecv == 1 && A.last_len == 60, "A receives B's packet");

    CHECK(send_ip(&A, &B, 1400) == WG_OK && (pump(), B.nrecv == 2),
          "large packet A to B");
    CHECK(wg_device_stats(B.dev)->rx_packets == 2, "rx_packets counted");
    CHECK(wg_device_stats(A.dev)->tx_packets >= 2, "tx_packets counted");
    CHECK(A.sent_in_place == A.sent_data + A.sent_keepalive
          && A.sent_data >= 2 && B.sent_in_place == 0,
          "data sealed in the buffer the caller gave, or in the device's");
}


static void
test_responder_initiates(void)
{
    wgt_section("handshake initiated by the other side");

    pair_init(NULL, NULL, 1);

    CHECK(send_ip(&B, &A, 80) == WG_OK, "B queues");
    pump();
    CHECK(B.sent_init == 1 && A.sent_init == 0, "B initiated");
    CHECK(A.nrecv == 1, "A received B's first packet");
    CHECK(send_ip(&A, &B, 80) == WG_OK && (pump(), B.nrecv == 1),
          "A answers over the same session");
}


static void
test_next_keypair(void)
{
    msg_t  init, resp;

    wgt_section("responder's next keypair becomes current on first data");

    pair_init(NULL, NULL, 0);
    A.drop_out = 0;
    wg_peer_kick(A.peer, now);
    CHECK(A.nout == 1, "initiation out");
    init = A.out[0];
    A.nout = 0;

    CHECK(wg_device_input(B.dev, init.data, init.len, &A.addr, now) == WG_OK,
          "B takes the initiation");
    CHECK(B.peer->keypair_next != NULL && B.peer->keypair_current == NULL,
          "responder session parked as next");

    resp = B.out[0];
    B.nout = 0;
    CHECK(wg_device_input(A.dev, resp.data, resp.len, &B.addr, now) == WG_OK,
          "A takes the response");
    CHECK(A.peer->keypair_current != NULL, "initiator session current");
    CHECK(A.nout == 1 && A.out[0].len == 32,
          "initiator confirms with a keepalive");

    pump();
    CHECK(B.peer->keypair_current != NULL && B.peer->keypair_next == NULL,
          "keepalive promoted next to current");
}


static void
test_replay_device(void)
{
    unsigned  i, n;
    uint64_t  c, greatest;
    msg_t    *m, *keep;

    wgt_section("replay rejection on the data path");

    pair_init(NULL, NULL, 0);
    wg_peer_kick(A.peer, now);
    pump();

    send_ip(&A, &B, 64);
    m = &A.out[0];
    CHECK(wg_device_input(B.dev, m->data, m->len, &A.addr, now) == WG_OK,
          "packet accepted");
    CHECK(wg_device_input(B.dev, m->data, m->len, &A.addr, now)
          == WG_DROP_DECRYPT, "in-place decryption consumed the buffer");

    /* resend a pristine copy: authentic, but a duplicate */
    A.nout = 0;
    send_ip(&A, &B, 64);
    keep = malloc(sizeof(msg_t));
    *keep = A.out[0];
    CHECK(wg_device_input(B.dev, A.out[0].data, A.out[0].len, &A.addr, now)
          == WG_OK, "second packet accepted");
    CHECK(wg_device_input(B.dev, keep->data, keep->len, &A.addr, now)
          == WG_DROP_REPLAY, "duplicate counter rejected");
    CHECK(B.nrecv == 2, "duplicate not delivered");
    A.nout = 0;

    /* 8300 packets: hold back two, deliver the rest, then the two */
    msg_t  *old1 = malloc(sizeof(msg_t)), *old2 = malloc(sizeof(msg_t));

    greatest = 0;
    n = 0;

    for (i = 0; i < 8300; i++) {
        send_ip(&A, &B, 40);
        m = &A.out[A.nout - 1];
        memcpy(&c, m->data + 8, 8);
        c = le64toh(c);

        if (i == 8299 - 8129) {
            *old1 = *m;
        } else if (i == 8299 - 8128) {
            *old2 = *m;
        } else {
            n += wg_device_input(B.dev, m->data, m->len, &A.addr, now)
                 == WG_OK;
            greatest = c;
        }

        A.nout = 0;
    }

    CHECK(n == 8298, "in-order stream accepted");

    /* old1's counter is greatest - 8129, old2's greatest - 8128 */
    memcpy(&c, old2->data + 8, 8);
    CHECK(le64toh(c) == greatest - 8128, "held-back counters at the edge");
    CHECK(wg_device_input(B.dev, old1->data, old1->len, &A.addr, now)
          == WG_DROP_REPLAY, "counter 8129 behind rejected as too old");
    CHECK(wg_device_input(B.dev, old2->data, old2->len, &A.addr, now)
          == WG_OK, "counter 8128 behind still accepted (window 8128)");
    CHECK(wg_device_stats(B.dev)->drops[WG_DROP_REPLAY] == 2,
          "replay drops counted");

    free(keep);
    free(old1);
    free(old2);
}


static void
test_rekey(void)
{
    int       ok;
    unsigned  i, before;
    uint32_t  first_index;
    uint64_t  t0, rekeyed_at;

    wgt_section("rekey after REKEY_AFTER_TIME keeps data flowing");

    pair_init(NULL, NULL, 0);
    send_ip(&A, &B, 64);
    pump();
    t0 = now;
    first_index = A.peer->keypair_current->keys.local_index;
    rekeyed_at = 0;
    ok = 1;

    /* both directions every second, for 400 s (> 2 * REJECT_AFTER_TIME) */
    for (i = 0; i < 400; i++) {
        now += NS;
        tick();

        before = B.nrecv;
        send_ip(&A, &B, 64);
        pump();
        ok &= B.nrecv == before + 1;

        before = A.nrecv;
        send_ip(&B, &A, 64);
        pump();
        ok &= A.nrecv == before + 1;

        if (rekeyed_at == 0
            && A.peer->keypair_current->keys.local_index != first_index)
        {
            rekeyed_at = now - t0;
        }
    }

    CHECK(ok, "every packet both ways delivered for 400 s");
    CHECK(rekeyed_at >= 120 * NS && rekeyed_at <= 122 * NS,
          "initiator rekeyed at REKEY_AFTER_TIME");
    CHECK(A.sent_init >= 4 && A.sent_init <= 5,
          "one handshake per REKEY_AFTER_TIME");
    CHECK(B.sent_init == 0, "responder never needed to initiate");
    CHECK(wg_device_stats(B.dev)->drops[WG_DROP_KEY_EXPIRED] == 0
          && wg_device_stats(A.dev)->drops[WG_DROP_KEY_EXPIRED] == 0,
          "no packet hit an expired key");
}


static void
test_reject_after_time(void)
{
    msg_t     early;
    unsigned  before;

    wgt_section("REJECT_AFTER_TIME stops a session that cannot rekey");

    pair_init(NULL, NULL, 0);
    send_ip(&A, &B, 64);
    pump();

    now += NS;
    send_ip(&A, &B, 64);
    early = A.out[0];
    A.nout = 0;

    /* responses from B are lost from now on: no new session can form */
    B.drop_out = 1;

    advance(170 * NS, NS);
    before = B.nrecv;
    CHECK(send_ip(&A, &B, 64) == WG_OK && (pump(), B.nrecv == before + 1),
          "still delivered at 171 s");

    advance(10 * NS, NS);
    before = B.nrecv;
    send_ip(&A, &B, 64);
    pump();
    CHECK(B.nrecv == before, "not sent past REJECT_AFTER_TIME");
    CHECK(A.peer->staged_count == 1, "queued for a new handshake instead");

    CHECK(wg_device_input(B.dev, early.data, early.len, &A.addr, now)
          == WG_DROP_KEY_EXPIRED,
          "receiver rejects a packet of an expired session");
}


static void
test_retransmit_and_give_up(void)
{
    uint64_t  t0;

    wgt_section("retransmission after REKEY_TIMEOUT, give up after "
                "REKEY_ATTEMPT_TIME");

    pair_init(NULL, NULL, 0);
    A.drop_out = 1;
    t0 = now;

    send_ip(&A, &B, 64);
    CHECK(A.sent_init == 1, "first initiation");

    now = t0 + 4900 * MS;
    tick();
    CHECK(A.sent_init == 1, "no retransmission before REKEY_TIMEOUT");

    now = t0 + 5334 * MS;
    tick();
    CHECK(A.sent_init == 2, "retransmitted after REKEY_TIMEOUT + jitter");
    CHECK(A.events[WG_EV_HANDSHAKE_UNANSWERED] == 1,
          "the first unanswered initiation is reported");

    advance(5400 * MS, 10 * MS);
    CHECK(A.sent_init == 3, "one retransmission per REKEY_TIMEOUT");
    CHECK(A.events[WG_EV_HANDSHAKE_UNANSWERED] == 1,
          "unanswered reported once, not at every retransmission");

    /* staged packets and an extra output do not add initiations */
    send_ip(&A, &B, 64);
    CHECK(A.sent_init == 3, "own initiations rate limited to 1 per 5 s");

    /* new traffic restarts the attempt count (as the kernel): start over */
    pair_init(NULL, NULL, 0);
    A.drop_out = 1;
    t0 = now;
    send_ip(&A, &B, 64);

    advance(110 * NS, 100 * MS);
    CHECK(A.events[WG_EV_HANDSHAKE_FAILED] == 1, "handshake given up");
    CHECK(A.event_time[WG_EV_HANDSHAKE_FAILED] - t0 >= 90 * NS
          && A.event_time[WG_EV_HANDSHAKE_FAILED] - t0 <= 107 * NS,
          "given up after REKEY_ATTEMPT_TIME");
    CHECK(A.sent_init == 20, "20 attempts in all (as the kernel)");
    CHECK(A.events[WG_EV_HANDSHAKE_UNANSWERED] == 1,
          "unanswered reported once in an episode that kept retrying");
    CHECK(A.peer->staged_count == 0, "staged packets dropped on give up");

    advance(60 * NS, NS);
    CHECK(A.sent_init == 20, "silence after giving up");

    /* new traffic tries again: a new episode, reported again */
    CHECK(send_ip(&A, &B, 64) == WG_OK, "new packet after give up");
    advance(6 * NS, 100 * MS);
    CHECK(A.sent_init == 22
          && A.events[WG_EV_HANDSHAKE_UNANSWERED] == 2,
          "a new episode of unanswered initiations is reported");

    /* and succeeds once the path works */
    A.drop_out = 0;
    advance(5 * NS, 100 * MS);
    pump();
    CHECK(B.nrecv == 1 && established(), "fresh handshake succeeds");
    CHECK(A.peer->handshake_unanswered == 0,
          "a completed handshake ends the episode");
}


static void
test_new_handshake_when_unanswered(void)
{
    uint64_t  t0;

    wgt_section("new handshake when data gets no answer for 15 s");

    pair_init(NULL, NULL, 0);
    t0 = now;
    send_ip(&A, &B, 64);
    pump();
    CHECK(A.sent_init == 1 && B.nrecv == 1, "session");

    /* B goes silent: no keepalive, no data comes back */
    B.drop_out = 1;
    advance(NS, 100 * MS);
    send_ip(&A, &B, 64);
    pump();

    advance(t0 + 14900 * MS - now, 100 * MS);
    CHECK(A.sent_init == 1, "no new handshake before 15 s");
    advance(500 * MS, 100 * MS);
    CHECK(A.sent_init == 2,
          "new handshake after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter");

    /* an answer within the time cancels it */
    pair_init(NULL, NULL, 0);
    send_ip(&A, &B, 64);
    pump();
    advance(30 * NS, 100 * MS);
    CHECK(A.sent_init == 1, "the receiver's keepalive counts as an answer");
}


static void
test_rekey_limits(void)
{
    unsigned  i, before;

    wgt_section("initiator rekey on receive at 165 s, message limits");

    pair_init(NULL, NULL, 0);
    wg_peer_kick(A.peer, now);
    pump();

    /* only B talks; A only receives and answers with keepalives */
    for (i = 0; i < 164; i++) {
        now += NS;
        tick();
        send_ip(&B, &A, 64);
        pump();
    }
    CHECK(A.sent_init == 1, "no rekey from receiving before 165 s");

    for (i = 0; i < 3; i++) {
        now += NS;
        tick();
        send_ip(&B, &A, 64);
        pump();
    }
    CHECK(A.sent_init == 2,
          "receiving with a 165 s old key makes the initiator rekey");

    before = A.nrecv;
    advance(60 * NS, NS);
    send_ip(&B, &A, 64);
    pump();
    CHECK(A.nrecv == before + 1, "one-way flow survives REJECT_AFTER_TIME");

    /* REKEY_AFTER_MESSAGES */
    before = A.sent_init;
    now += 6 * NS;
    A.peer->keypair_current->send_counter = (1ULL << 60) + 1;
    send_ip(&A, &B, 64);
    CHECK(A.sent_init == before + 1, "rekey after REKEY_AFTER_MESSAGES");
    pump();

    /* REJECT_AFTER_MESSAGES */
    now += 6 * NS;
    before = B.nrecv;
    i = A.sent_init;
    A.peer->keypair_current->send_counter = UINT64_MAX - 8192;
    send_ip(&A, &B, 64);
    CHECK(A.peer->staged_count == 1 && A.sent_init == i + 1,
          "exhausted counter: packet staged, handshake started");
    pump();
    CHECK(B.nrecv == before + 1, "delivered over the new session");
}


static void
test_keepalive(void)
{
    uint64_t  t0;

    wgt_section("keepalive after KEEPALIVE_TIMEOUT");

    pair_init(NULL, NULL, 0);
    send_ip(&A, &B, 64);
    pump();
    t0 = now;
    B.sent_keepalive = 0;

    now = t0 + 9900 * MS;
    tick();
    CHECK(B.sent_keepalive == 0, "no keepalive before 10 s");

    now = t0 + 10 * NS;
    tick();
    CHECK(B.sent_keepalive == 1, "receiver sends a keepalive at 10 s");
    CHECK(A.nrecv == 0, "keepalive is not delivered as a packet");

    advance(30 * NS, 100 * MS);
    CHECK(B.sent_keepalive == 1, "only one keepalive without new data");

    /* a reply with data suppresses the keepalive */
    send_ip(&A, &B, 64);
    pump();
    now += NS;
    send_ip(&B, &A, 64);
    pump();
    advance(12 * NS, 100 * MS);
    CHECK(B.sent_keepalive == 1, "no keepalive when data went back");
}


static void
test_persistent_keepalive(void)
{
    wgt_section("persistent keepalive");

    pair_init(NULL, NULL, 0);
    wg_peer_kick(A.peer, now);
    pump();
    A.sent_keepalive = 0;

    wg_peer_set_keepalive(A.peer, 25);
    tick();
    CHECK(A.sent_keepalive == 1, "first keepalive when configured");

    advance(24900 * MS, 100 * MS);
    CHECK(A.sent_keepalive == 1, "nothing before the interval");
    advance(100 * MS, 100 * MS);
    CHECK(A.sent_keepalive == 2, "keepalive after the interval");
    advance(100 * NS, NS);
    CHECK(A.sent_keepalive == 6, "every 25 s while idle");

    /* without a session it brings one up */
    pair_init(NULL, NULL, 0);
    wg_peer_set_keepalive(A.peer, 25);
    tick();
    CHECK(established(), "persistent keepalive establishes the session");
}


static void
test_cookie_under_load(void)
{
    msg_t     init;
    unsigned  i, cookies;

    wgt_section("cookie reply under load");

    pair_init(NULL, NULL, 0);
    wg_device_set_under_load(B.dev, 1);

    send_ip(&A, &B, 64);
    pump();

    CHECK(B.sent_cookie == 1, "initiation answered with a cookie reply");
    CHECK(wg_device_stats(B.dev)->drops[WG_DROP_COOKIE_SENT] == 1,
          "counted as cookie sent");
    CHECK(A.peer->cookie.is_valid, "initiator stored the cookie");
    CHECK(!established(), "no session yet");

    advance(6 * NS, 100 * MS);
    CHECK(A.sent_init == 2, "initiator retried");
    CHECK(established() && B.nrecv == 1,
          "retry with mac2 accepted: session and data");
    CHECK(B.sent_cookie == 1, "no second cookie needed");

    /* without any hint, a burst of handshakes puts the device under load */
    pair_init(NULL, NULL, 0);
    wg_peer_kick(A.peer, now);
    init = A.out[0];
    A.nout = 0;
    cookies = 0;

    for (i = 0; i < 300; i++) {
        msg_t  m = init;

        cookies += wg_device_input(B.dev, m.data, m.len, &A.addr, now)
                   == WG_DROP_COOKIE_SENT;
    }

    CHECK(cookies >= 40 && cookies <= 44,
          "more than 256 handshakes in a second trigger cookie replies");
    B.nout = 0;

    now += 2 * NS;
    {
        msg_t  m = init;

        CHECK(wg_device_input(B.dev, m.data, m.len, &A.addr, now)
              == WG_DROP_HANDSHAKE, "load state expires after a second");
    }
    B.nout = 0;
}


static void
test_allowed_ips_source(void)
{
    uint8_t  pkt[256], spoof[4] = { 10, 0, 0, 99 };

    wgt_section("inner source checked against the sender's allowed IPs");

    pair_init(NULL, NULL, 0);
    send_ip(&A, &B, 64);
    pump();

    ip4(pkt, spoof, B.overlay, 64);
    CHECK(wg_device_output(A.dev, pkt, 64, now) == WG_OK,
          "A routes by destination");
    pump();
    CHECK(B.nrecv == 1, "spoofed source not delivered");
    CHECK(wg_device_stats(B.dev)->drops[WG_DROP_ALLOWED_IPS] == 1,
          "counted as allowed IPs drop");

    /* a packet from A's address is fine, whatever the destination */
    ip4(pkt, A.overlay, spoof, 64);
    wg_peer_add_allowed_ip(A.peer, AF_INET, spoof, 32);
    CHECK(wg_device_output(A.dev, pkt, 64, now) == WG_OK && (pump(), 1)
          && B.nrecv == 2, "destination is not checked on receive");

    /* a malformed inner packet */
    memset(pkt, 0, 64);
    pkt[0] = 0x45;
    pkt[3] = 200;                       /* total length past the data */
    memcpy(pkt + 16, B.overlay, 4);
    wg_device_output(A.dev, pkt, 64, now);
    pump();
    CHECK(wg_device_stats(B.dev)->drops[WG_DROP_INNER_MALFORMED] == 1,
          "inner length beyond the packet dropped");
}


static void
test_routing(void)
{
    uint8_t     k[32], a[16];
    wg_peer_t  *p1, *p2, *p3, *p6;

    wgt_section("routing by longest prefix");

    pair_init(NULL, NULL, 0);

    wg_random(k, 32);
    p1 = wg_device_add_peer(A.dev, k, NULL);
    wg_random(k, 32);
    p2 = wg_device_add_peer(A.dev, k, NULL);
    wg_random(k, 32);
    p3 = wg_device_add_peer(A.dev, k, NULL);
    wg_random(k, 32);
    p6 = wg_device_add_peer(A.dev, k, NULL);

    CHECK(wg_device_add_peer(A.dev, k, NULL) == NULL, "duplicate peer refused");
    CHECK(wg_device_find_peer(A.dev, k) == p6, "find by key");

    inet_pton(AF_INET, "10.0.0.0", a);
    wg_peer_add_allowed_ip(p1, AF_INET, a, 8);
    inet_pton(AF_INET, "10.1.0.0", a);
    wg_peer_add_allowed_ip(p2, AF_INET, a, 16);
    inet_pton(AF_INET, "10.1.1.0", a);
    wg_peer_add_allowed_ip(p3, AF_INET, a, 24);
    inet_pton(AF_INET6, "fd00::", a);
    wg_peer_add_allowed_ip(p6, AF_INET6, a, 64);

    inet_pton(AF_INET, "10.1.1.1", a);
    CHECK(wg_device_route(A.dev, AF_INET, a) == p3, "/24 wins");
    inet_pton(AF_INET, "10.1.2.1", a);
    CHECK(wg_device_route(A.dev, AF_INET, a) == p2, "/16 wins");
    inet_pton(AF_INET, "10.2.2.1", a);
    CHECK(wg_device_route(A.dev, AF_INET, a) == p1, "/8 wins");
    inet_pton(AF_INET, "10.0.0.2", a);
    CHECK(wg_device_route(A.dev, AF_INET, a) == A.peer, "/32 wins");
    inet_pton(AF_INET6, "fd00::5", a);
    CHECK(wg_device_route(A.dev, AF_INET6, a) == p6, "IPv6 routes");
    inet_pton(AF_INET6, "fd00:0:0:1::5", a);
    CHECK(wg_device_route(A.dev, AF_INET6, a) == NULL, "IPv6 unrouted");

    wg_device_remove_peer(A.dev, p3);
    inet_pton(AF_INET, "10.1.1.1", a);
    CHECK(wg_device_route(A.dev, AF_INET, a) == p2,
          "removed peer's prefixes gone");

    /* a reload re-applies a peer's prefixes: clear, then add again */
    wg_peer_clear_allowed_ips(p2);
    inet_pton(AF_INET, "10.1.2.1", a);
    CHECK(wg_device_route(A.dev, AF_INET, a) == p1,
          "cleared prefixes fall back to the shorter one");
    inet_pton(AF_INET, "10.1.0.0", a);
    wg_peer_add_allowed_ip(p1, AF_INET, a, 16);
    inet_pton(AF_INET, "10.1.2.1", a);
    CHECK(wg_device_route(A.dev, AF_INET, a) == p1,
          "a prefix moves to another peer");

    a[0] = 0x45;
    CHECK(wg_device_output(A.dev, (uint8_t *) "\x60", 1, now)
          == WG_DROP_INNER_MALFORMED, "truncated packet refused");
}


static void
test_roaming(void)
{
    msg_t          m;
    wg_endpoint_t  old;

    wgt_section("roaming");

    pair_init(NULL, NULL, 0);
    send_ip(&A, &B, 64);
    pump();
    CHECK(B.peer->endpoint.addr.in.sin_port == htons(1001),
          "endpoint learned");

    ep4(&A.addr, "198.51.100.7", 4444);
    send_ip(&A, &B, 64);
    pump();
    CHECK(B.peer->endpoint.addr.in.sin_port == htons(4444)
          && B.peer->endpoint.addr.in.sin_addr.s_addr
             == inet_addr("198.51.100.7"), "endpoint follows the sender");
    CHECK(B.events[WG_EV_ENDPOINT_CHANGED] == 2, "roam reported");

    send_ip(&B, &A, 64);
    CHECK(B.out[0].to.addr.in.sin_port == htons(4444),
          "replies go to the new address");
    pump();

    /* a forged packet from elsewhere does not move the endpoint */
    old = B.peer->endpoint;
    send_ip(&A, &B, 64);
    m = A.out[0];
    A.nout = 0;
    m.data[40] ^= 1;
    ep4(&A.addr, "203.0.113.66", 666);
    CHECK(wg_device_input(B.dev, m.data, m.len, &A.addr, now)
          == WG_DROP_DECRYPT, "forged packet dropped");
    CHECK(memcmp(&old, &B.peer->endpoint, sizeof(old)) == 0,
          "unauthenticated packet does not roam");
}


static void
test_initiation_replay(void)
{
    msg_t  init, copy;

    wgt_section("initiation replay");

    pair_init(NULL, NULL, 0);
    wg_peer_kick(A.peer, now);
    init = A.out[0];
    A.nout = 0;
    copy = init;

    CHECK(wg_device_input(B.dev, init.data, init.len, &A.addr, now) == WG_OK,
          "initiation accepted");
    B.nout = 0;
    now += NS;
    CHECK(wg_device_input(B.dev, copy.data, copy.len, &A.addr, now)
          == WG_DROP_HANDSHAKE, "replayed initiation rejected");
    CHECK(B.nout == 0, "no response to a replay");
}


static void
test_malformed(void)
{
    uint8_t                   buf[256];
    wg_endpoint_t             from;
    const wg_device_stats_t  *st;

    wgt_section("malformed datagrams");

    pair_init(NULL, NULL, 0);
    st = wg_device_stats(B.dev);
    from = A.addr;

    memset(buf, 0, sizeof(buf));
    CHECK(wg_device_input(B.dev, buf, 0, &from, now) == WG_DROP_MALFORMED,
          "empty");
    buf[0] = 1;
    CHECK(wg_device_input(B.dev, buf, 3, &from, now) == WG_DROP_MALFORMED,
          "3 bytes");
    CHECK(wg_device_input(B.dev, buf, 147, &from, now) == WG_DROP_MALFORMED,
          "short initiation");
    CHECK(wg_device_input(B.dev, buf, 149, &from, now) == WG_DROP_MALFORMED,
          "long initiation");
    buf[0] = 2;
    CHECK(wg_device_input(B.dev, buf, 91, &from, now) == WG_DROP_MALFORMED,
          "short response");
    buf[0] = 3;
    CHECK(wg_device_input(B.dev, buf, 65, &from, now) == WG_DROP_MALFORMED,
          "long cookie");
    buf[0] = 4;
    CHECK(wg_device_input(B.dev, buf, 31, &from, now) == WG_DROP_MALFORMED,
          "data shorter than header and tag");
    buf[0] = 9;
    CHECK(wg_device_input(B.dev, buf, 64, &from, now) == WG_DROP_MALFORMED,
          "unknown type");
    buf[0] = 1;
    buf[2] = 1;
    CHECK(wg_device_input(B.dev, buf, 148, &from, now) == WG_DROP_MALFORMED,
          "reserved bytes not zero");
    CHECK(st->drops[WG_DROP_MALFORMED] == 9, "malformed drops counted");

    buf[2] = 0;
    CHECK(wg_device_input(B.dev, buf, 148, &from, now) == WG_DROP_MAC1,
          "initiation without mac1");
    buf[0] = 2;
    CHECK(wg_device_input(B.dev, buf, 92, &from, now) == WG_DROP_MAC1,
          "response without mac1");
    buf[0] = 4;
    CHECK(wg_device_input(B.dev, buf, 64, &from, now) == WG_DROP_NO_SESSION,
          "data for an unknown index");
    buf[0] = 3;
    CHECK(wg_device_input(B.dev, buf, 64, &from, now) == WG_DROP_HANDSHAKE,
          "cookie for an unknown index");
    CHECK(st->drops[WG_DROP_MAC1] == 2 && st->drops[WG_DROP_NO_SESSION] == 1,
          "drop reasons counted");
    CHECK(strcmp(wg_result_str(WG_DROP_REPLAY), "replayed") == 0
          && strcmp(wg_result_str(WG_DROP_MAX), "unknown") == 0,
          "result names");
}


static void
test_zero_keys(void)
{
    wgt_section("keys zeroed after 3 * REJECT_AFTER_TIME");

    pair_init(NULL, NULL, 0);
    wg_peer_kick(A.peer, now);
    pump();
    CHECK(established(), "session");

    advance(539 * NS, NS);
    CHECK(A.events[WG_EV_KEYS_ZEROED] == 0, "keys kept before 540 s");
    advance(2 * NS, NS);
    CHECK(A.events[WG_EV_KEYS_ZEROED] == 1 && B.events[WG_EV_KEYS_ZEROED] == 1,
          "keys zeroed at 540 s");
    CHECK(A.peer->keypair_current == NULL && B.peer->keypair_current == NULL
          && A.peer->keypair_previous == NULL,
          "no keypair left");
}


static void
test_padding(void)
{
    wgt_section("padding");

    pair_init(NULL, NULL, 0);
    wg_peer_kick(A.peer, now);
    pump();

    send_ip(&A, &B, 21);
    CHECK(A.out[0].len == 16 + 32 + 16, "21 bytes padded to 32");
    pump();
    CHECK(B.last_len == 21, "padding stripped on receive");

    send_ip(&A, &B, 1419);
    CHECK(A.out[0].len == 16 + 1420 + 16, "1419 padded to the MTU 1420");
    pump();

    send_ip(&A, &B, 1420);
    CHECK(A.out[0].len == 16 + 1420 + 16, "1420 not padded past the MTU");
    pump();

    wg_device_set_mtu(A.dev, 1280);
    send_ip(&A, &B, 1275);
    CHECK(A.out[0].len == 16 + 1280 + 16, "MTU 1280: 1275 padded to 1280");
    pump();
    CHECK(B.last_len == 1275, "1275 delivered");

    send_ip(&A, &B, 1279);
    CHECK(A.out[0].len == 16 + 1280 + 16, "1279 padded to 1280");
    pump();
}


static void
test_output_errors_and_queue(void)
{
    unsigned  i, ok;
    uint8_t   pkt[64], k[32], dst[4] = { 10, 9, 9, 9 };

    wgt_section("output errors and the staged queue");

    pair_init(NULL, NULL, 0);

    ip4(pkt, A.overlay, dst, 64);
    CHECK(wg_device_output(A.dev, pkt, 64, now) == WG_DROP_NO_PEER,
          "no route");

    wg_random(k, 32);
    wg_peer_add_allowed_ip(wg_device_add_peer(A.dev, k, NULL), AF_INET, dst,
                           32);
    CHECK(wg_device_output(A.dev, pkt, 64, now) == WG_DROP_NO_ENDPOINT,
          "peer without endpoint");

    memset(pkt, 0, sizeof(pkt));
    CHECK(wg_device_output(A.dev, pkt, 64, now) == WG_DROP_INNER_MALFORMED,
          "not IP");

    A.drop_out = 1;
    ok = 0;
    for (i = 0; i < 130; i++) {
        ok += send_ip(&A, &B, 100) == WG_OK;
    }
    CHECK(ok == 128, "128 packets staged");
    CHECK(wg_device_stats(A.dev)->drops[WG_DROP_QUEUE_FULL] == 2,
          "the rest counted as queue full");

    A.drop_out = 0;
    advance(6 * NS, 100 * MS);
    CHECK(B.nrecv == 128, "all staged packets delivered after retry");
}


static void
test_psk_and_keys(void)
{
    uint8_t          psk[32], other[32], newkey[32];
    wg_peer_stats_t  st;

    wgt_section("preshared key, key change");

    wg_random(psk, 32);
    pair_init(psk, psk, 0);
    send_ip(&A, &B, 64);
    pump();
    CHECK(B.nrecv == 1, "handshake with a psk");

    memcpy(other, psk, 32);
    other[0] ^= 1;
    pair_init(psk, other, 0);
    send_ip(&A, &B, 64);
    pump();
    CHECK(B.nrecv == 0 && !established(), "psk mismatch: no session");
    CHECK(wg_device_stats(A.dev)->drops[WG_DROP_HANDSHAKE] == 1,
          "initiator drops the response");

    pair_init(NULL, NULL, 0);
    send_ip(&A, &B, 64);
    pump();
    wg_device_set_private_key(A.dev, A.priv);
    wg_peer_get_stats(A.peer, &st);
    CHECK(st.has_session && st.last_handshake_ns != 0,
          "same private key keeps sessions");

    wg_random(newkey, 32);
    wg_device_set_private_key(A.dev, newkey);
    wg_peer_get_stats(A.peer, &st);
    CHECK(!st.has_session, "new private key drops sessions");

    wg_device_remove_peer(B.dev, B.peer);
    B.peer = NULL;
    CHECK(wg_device_find_peer(B.dev, A.pub) == NULL, "peer removed");
}


void
test_device(void)
{
    test_handshake_and_data();
    test_responder_initiates();
    test_next_keypair();
    test_replay_device();
    test_rekey();
    test_reject_after_time();
    test_retransmit_and_give_up();
    test_new_handshake_when_unanswered();
    test_rekey_limits();
    test_keepalive();
    test_persistent_keepalive();
    test_cookie_under_load();
    test_allowed_ips_source();
    test_routing();
    test_roaming();
    test_initiation_replay();
    test_malformed();
    test_zero_keys();
    test_padding();
    test_output_errors_and_queue();
    test_psk_and_keys();

    wg_device_destroy(A.dev);
    wg_device_destroy(B.dev);
    free(A.out);
    free(B.out);
}
