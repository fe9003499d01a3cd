/*
 * mac1/mac2 and cookie replies.
 */

#include <endian.h>
#include <string.h>

#include "wg_cookie.h"


static const char  wg_cookie_mac1_label[] = "mac1----";
static const char  wg_cookie_cookie_label[] = "cookie--";


static void wg_cookie_make(wg_cookie_checker_t *checker,
    uint8_t cookie[WG_COOKIE_LEN], const uint8_t *src, size_t srclen,
    uint64_t now);
static int wg_cookie_expired(uint64_t birthdate, uint64_t age, uint64_t now);


void
wg_cookie_checker_init(wg_cookie_checker_t *checker,
    const uint8_t our_public[WG_DH_LEN])
{
    /* the secret is kept across key changes: cookies are not key bound */
    wg_hash(checker->message_mac1_key, wg_cookie_mac1_label,
            sizeof(wg_cookie_mac1_label) - 1, our_public, WG_DH_LEN);
    wg_hash(checker->cookie_encryption_key, wg_cookie_cookie_label,
            sizeof(wg_cookie_cookie_label) - 1, our_public, WG_DH_LEN);
}


void
wg_cookie_maker_init(wg_cookie_maker_t *maker,
    const uint8_t peer_public[WG_DH_LEN])
{
    memset(maker, 0, sizeof(wg_cookie_maker_t));
    wg_hash(maker->message_mac1_key, wg_cookie_mac1_label,
            sizeof(wg_cookie_mac1_label) - 1, peer_public, WG_DH_LEN);
    wg_hash(maker->cookie_decryption_key, wg_cookie_cookie_label,
            sizeof(wg_cookie_cookie_label) - 1, peer_public, WG_DH_LEN);
}


void
wg_cookie_maker_wipe(wg_cookie_maker_t *maker)
{
    wg_wipe(maker, sizeof(wg_cookie_maker_t));
}


static int
wg_cookie_expired(uint64_t birthdate, uint64_t age, uint64_t now)
{
    return now < birthdate || now - birthdate >= age;
}


static void
wg_cookie_make(wg_cookie_checker_t *checker, uint8_t cookie[WG_COOKIE_LEN],
    const uint8_t *src, size_t srclen, uint64_t now)
{
    if (!checker->has_secret
        || wg_cookie_expired(checker->secret_birthdate,
                             WG_COOKIE_SECRET_MAX_AGE, now))
    {
        wg_random(checker->secret, sizeof(checker->secret));
        checker->secret_birthdate = now;
        checker->has_secret = 1;
    }

    wg_mac(cookie, checker->secret, sizeof(checker->secret), src, srclen);
}


wg_cookie_mac_state_t
wg_cookie_validate(wg_cookie_checker_t *checker, const uint8_t *msg,
    size_t len, const uint8_t *src, size_t srclen, int check_cookie,
    uint64_t now)
{
    size_t          off1, off2;
    uint8_t         computed[WG_MAC_LEN], cookie[WG_COOKIE_LEN];
    wg_msg_macs_t   macs;

    if (len < sizeof(wg_msg_macs_t)) {
        return WG_COOKIE_MAC_INVALID;
    }

    off2 = len - WG_MAC_LEN;
    off1 = len - sizeof(wg_msg_macs_t);
    memcpy(&macs, msg + off1, sizeof(macs));

    wg_mac(computed, checker->message_mac1_key, WG_HASH_LEN, msg, off1);

    if (wg_memcmp_ct(computed, macs.mac1, WG_MAC_LEN) != 0) {
        return WG_COOKIE_MAC_INVALID;
    }

    if (!check_cookie) {
        return WG_COOKIE_MAC_VALID;
    }

    wg_cookie_make(checker, cookie, src, srclen, now);
    wg_mac(computed, cookie, WG_COOKIE_LEN, msg, off2);

    if (wg_memcmp_ct(computed, macs.mac2, WG_MAC_LEN) != 0) {
        return WG_COOKIE_MAC_VALID;
    }

    return WG_COOKIE_MAC_VALID_WITH_COOKIE;
}


void
wg_cookie_add_macs(wg_cookie_maker_t *maker, uint8_t *msg, size_t len,
    uint64_t now)
{
    size_t          off1, off2;
    wg_msg_macs_t  *macs;

    off2 = len - WG_MAC_LEN;
    off1 = len - sizeof(wg_msg_macs_t);
    macs = (wg_msg_macs_t *) (msg + off1);

    wg_mac(macs->mac1, maker->message_mac1_key, WG_HASH_LEN, msg, off1);
    memcpy(maker->last_mac1_sent, macs->mac1, WG_MAC_LEN);
    maker->have_sent_mac1 = 1;

    /* the replier's secret may have rotated meanwhile: leave a margin */
    if (maker->is_valid
        && !wg_cookie_expired(maker->birthdate,
                              WG_COOKIE_SECRET_MAX_AGE
                              - WG_COOKIE_SECRET_LATENCY, now))
    {
        wg_mac(macs->mac2, maker->cookie, WG_COOKIE_LEN, msg, off2);

    } else {
        memset(macs->mac2, 0, WG_MAC_LEN);
    }
}


void
wg_cookie_create_reply(wg_cookie_checker_t *checker, wg_msg_cookie_t *reply,
    const uint8_t *msg, size_t len, uint32_t receiver_index,
    const uint8_t *src, size_t srclen, uint64_t now)
{
    uint8_t  cookie[WG_COOKIE_LEN];
    uint8_t  mac1[WG_MAC_LEN];

    memcpy(mac1, msg + len - sizeof(wg_msg_macs_t), WG_MAC_LEN);

    memset(reply, 0, sizeof(wg_msg_cookie_t));
    reply->type = htole32(WG_MSG_COOKIE);
    reply->receiver_index = htole32(receiver_index);
    wg_random(reply->nonce, WG_COOKIE_NONCE_LEN);

    wg_cookie_make(checker, cookie, src, srclen, now);
    wg_xaead_seal(reply->encrypted_cookie, cookie, WG_COOKIE_LEN, mac1,
                  WG_MAC_LEN, reply->nonce, checker->cookie_encryption_key);

    wg_wipe(cookie, sizeof(cookie));
}


int
wg_cookie_consume_reply(wg_cookie_maker_t *maker,
    const wg_msg_cookie_t *reply, uint64_t now)
{
    uint8_t  cookie[WG_COOKIE_LEN];

    if (!maker->have_sent_mac1) {
        return -1;
    }

    if (wg_xaead_open(cookie, reply->encrypted_cookie,
                      sizeof(reply->encrypted_cookie), maker->last_mac1_sent,
                      WG_MAC_LEN, reply->nonce, maker->cookie_decryption_key)
        != 0)
    {
        return -1;
    }

    memcpy(maker->cookie, cookie, WG_COOKIE_LEN);
    maker->birthdate = now;
    maker->is_valid = 1;

    /* one reply per message: a replayed reply finds nothing to answer */
    maker->have_sent_mac1 = 0;

    wg_wipe(cookie, sizeof(cookie));

    return 0;
}
