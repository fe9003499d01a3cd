/*
 * Noise_IKpsk2 handshake: creation and consumption of the initiation and
 * response messages, and derivation of the transport keys.
 *
 * A message is consumed into local variables first and copied into the
 * handshake only once it authenticated, so a forged or replayed message
 * never disturbs a handshake in progress.
 */

#include <endian.h>
#include <string.h>

#include "wg_noise.h"


#define WG_NSEC_PER_SEC         1000000000ULL


static const char  wg_noise_construction[] =
    "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char  wg_noise_identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";


static void wg_noise_initial(uint8_t ck[WG_HASH_LEN], uint8_t h[WG_HASH_LEN],
    const uint8_t responder_static[WG_DH_LEN]);
static void wg_noise_mix_hash(uint8_t h[WG_HASH_LEN], const void *data,
    size_t len);
static void wg_noise_mix_key(uint8_t ck[WG_HASH_LEN], uint8_t *key,
    const uint8_t *data, size_t len);
static int wg_noise_mix_dh(uint8_t ck[WG_HASH_LEN], uint8_t *key,
    const uint8_t priv[WG_DH_LEN], const uint8_t pub[WG_DH_LEN]);
static void wg_noise_mix_psk(uint8_t ck[WG_HASH_LEN], uint8_t h[WG_HASH_LEN],
    uint8_t key[WG_AEAD_KEY_LEN], const uint8_t psk[WG_AEAD_KEY_LEN]);
static int wg_noise_seal(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t key[WG_AEAD_KEY_LEN], uint8_t h[WG_HASH_LEN]);
static int wg_noise_open(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t key[WG_AEAD_KEY_LEN], uint8_t h[WG_HASH_LEN]);


void
wg_noise_static_set(wg_noise_static_t *st,
    const uint8_t private_key[WG_DH_LEN])
{
    memcpy(st->private_key, private_key, WG_DH_LEN);
    wg_clamp_key(st->private_key);
    st->has_identity = (wg_dh_public(st->public_key, st->private_key) == 0);
}


void
wg_noise_handshake_init(wg_handshake_t *hs, const wg_noise_static_t *st,
    const uint8_t remote_static[WG_DH_LEN], const uint8_t *psk)
{
    memset(hs, 0, sizeof(wg_handshake_t));
    memcpy(hs->remote_static, remote_static, WG_DH_LEN);

    /* without a preshared key psk2 mixes 32 zero bytes */
    if (psk != NULL) {
        memcpy(hs->preshared_key, psk, WG_AEAD_KEY_LEN);
    }

    wg_noise_handshake_precompute(hs, st);
}


void
wg_noise_handshake_precompute(wg_handshake_t *hs, const wg_noise_static_t *st)
{
    /*
     * an invalid peer key leaves zeros here, which both directions of the
     * handshake refuse to use
     */
    if (!st->has_identity
        || wg_dh(hs->precomputed_static_static, st->private_key,
                 hs->remote_static) != 0)
    {
        wg_wipe(hs->precomputed_static_static, WG_DH_LEN);
    }
}


void
wg_noise_handshake_clear(wg_handshake_t *hs)
{
    wg_wipe(hs->ephemeral_private, WG_DH_LEN);
    wg_wipe(hs->remote_ephemeral, WG_DH_LEN);
    wg_wipe(hs->hash, WG_HASH_LEN);
    wg_wipe(hs->chaining_key, WG_HASH_LEN);
    hs->local_index = 0;
    hs->remote_index = 0;
    hs->state = WG_HANDSHAKE_ZEROED;
}


void
wg_noise_handshake_wipe(wg_handshake_t *hs)
{
    wg_wipe(hs, sizeof(wg_handshake_t));
}


static void
wg_noise_initial(uint8_t ck[WG_HASH_LEN], uint8_t h[WG_HASH_LEN],
    const uint8_t responder_static[WG_DH_LEN])
{
    wg_hash(ck, wg_noise_construction, sizeof(wg_noise_construction) - 1,
            NULL, 0);
    wg_hash(h, ck, WG_HASH_LEN, wg_noise_identifier,
            sizeof(wg_noise_identifier) - 1);
    wg_noise_mix_hash(h, responder_static, WG_DH_LEN);
}


static void
wg_noise_mix_hash(uint8_t h[WG_HASH_LEN], const void *data, size_t len)
{
    wg_hash(h, h, WG_HASH_LEN, data, len);
}


static void
wg_noise_mix_key(uint8_t ck[WG_HASH_LEN], uint8_t *key, const uint8_t *data,
    size_t len)
{
    wg_kdf(ck, key, NULL, ck, WG_HASH_LEN, data, len);
}


static int
wg_noise_mix_dh(uint8_t ck[WG_HASH_LEN], uint8_t *key,
    const uint8_t priv[WG_DH_LEN], const uint8_t pub[WG_DH_LEN])
{
    uint8_t  dh[WG_DH_LEN];

    if (wg_dh(dh, priv, pub) != 0) {
        return -1;
    }

    wg_noise_mix_key(ck, key, dh, sizeof(dh));
    wg_wipe(dh, sizeof(dh));

    return 0;
}


static void
wg_noise_mix_psk(uint8_t ck[WG_HASH_LEN], uint8_t h[WG_HASH_LEN],
    uint8_t key[WG_AEAD_KEY_LEN], const uint8_t psk[WG_AEAD_KEY_LEN])
{
    uint8_t  tau[WG_HASH_LEN];

    wg_kdf(ck, tau, key, ck, WG_HASH_LEN, psk, WG_AEAD_KEY_LEN);
    wg_noise_mix_hash(h, tau, sizeof(tau));
    wg_wipe(tau, sizeof(tau));
}


static int
wg_noise_seal(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t key[WG_AEAD_KEY_LEN], uint8_t h[WG_HASH_LEN])
{
    if (wg_aead_seal(dst, src, len, 0, h, WG_HASH_LEN, 0, key) != 0) {
        return -1;
    }

    wg_noise_mix_hash(h, dst, len + WG_AEAD_TAG_LEN);

    return 0;
}


static int
wg_noise_open(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t key[WG_AEAD_KEY_LEN], uint8_t h[WG_HASH_LEN])
{
    if (wg_aead_open(dst, src, len, h, WG_HASH_LEN, 0, key) != 0) {
        return -1;
    }

    wg_noise_mix_hash(h, src, len);

    return 0;
}


int
wg_noise_create_initiation(wg_handshake_t *hs, const wg_noise_static_t *st,
    wg_msg_initiation_t *msg, uint32_t sender_index, uint64_t realtime_ns)
{
    int      rc;
    uint8_t  key[WG_AEAD_KEY_LEN], ts[WG_TAI64N_LEN];

    if (!st->has_identity
        || wg_is_zero_ct(hs->precomputed_static_static, WG_DH_LEN))
    {
        return -1;
    }

    rc = -1;

    wg_noise_handshake_clear(hs);
    memset(msg, 0, sizeof(wg_msg_initiation_t));
    msg->type = htole32(WG_MSG_INITIATION);
    msg->sender_index = htole32(sender_index);

    wg_noise_initial(hs->chaining_key, hs->hash, hs->remote_static);

    /* e */
    wg_dh_generate(hs->ephemeral_private, msg->ephemeral);
    wg_noise_mix_key(hs->chaining_key, NULL, msg->ephemeral, WG_DH_LEN);
    wg_noise_mix_hash(hs->hash, msg->ephemeral, WG_DH_LEN);

    /* es */
    if (wg_noise_mix_dh(hs->chaining_key, key, hs->ephemeral_private,
                        hs->remote_static)
        != 0)
    {
        goto failed;
    }

    /* s */
    if (wg_noise_seal(msg->encrypted_static, st->public_key, WG_DH_LEN, key,
                      hs->hash)
        != 0)
    {
        goto failed;
    }

    /* ss */
    wg_noise_mix_key(hs->chaining_key, key, hs->precomputed_static_static,
                     WG_DH_LEN);

    /* {t} */
    wg_tai64n(ts, realtime_ns);

    if (wg_noise_seal(msg->encrypted_timestamp, ts, WG_TAI64N_LEN, key,
                      hs->hash)
        != 0)
    {
        goto failed;
    }

    hs->local_index = sender_index;
    hs->state = WG_HANDSHAKE_CREATED_INITIATION;
    rc = 0;

failed:

    if (rc != 0) {
        wg_noise_handshake_clear(hs);
    }

    wg_wipe(key, sizeof(key));

    return rc;
}


wg_handshake_t *
wg_noise_consume_initiation(const wg_noise_static_t *st,
    const wg_msg_initiation_t *msg, wg_noise_lookup_pt lookup, void *ctx,
    uint64_t now)
{
    uint8_t          key[WG_AEAD_KEY_LEN], ck[WG_HASH_LEN], h[WG_HASH_LEN];
    uint8_t          s[WG_DH_LEN], e[WG_DH_LEN], ts[WG_TAI64N_LEN];
    wg_handshake_t  *hs, *found;

    if (!st->has_identity) {
        return NULL;
    }

    found = NULL;

    wg_noise_initial(ck, h, st->public_key);

    /* e */
    memcpy(e, msg->ephemeral, WG_DH_LEN);
    wg_noise_mix_key(ck, NULL, e, WG_DH_LEN);
    wg_noise_mix_hash(h, e, WG_DH_LEN);

    /* es */
    if (wg_noise_mix_dh(ck, key, st->private_key, e) != 0) {
        goto done;
    }

    /* s */
    if (wg_noise_open(s, msg->encrypted_static, sizeof(msg->encrypted_static),
                      key, h)
        != 0)
    {
        goto done;
    }

    hs = lookup(ctx, s);
    if (hs == NULL
        || wg_is_zero_ct(hs->precomputed_static_static, WG_DH_LEN))
    {
        goto done;
    }

    /* ss */
    wg_noise_mix_key(ck, key, hs->precomputed_static_static, WG_DH_LEN);

    /* {t} */
    if (wg_noise_open(ts, msg->encrypted_timestamp,
                      sizeof(msg->encrypted_timestamp), key, h)
        != 0)
    {
        goto done;
    }

    /* an old initiation replayed, or initiations arriving too fast */
    if (memcmp(ts, hs->latest_timestamp, WG_TAI64N_LEN) <= 0) {
        goto done;
    }

    if (hs->has_consumed_initiation
        && now - hs->last_initiation_consumption
           < WG_NSEC_PER_SEC / WG_INITIATIONS_PER_SECOND)
    {
        goto done;
    }

    /* authenticated: only now does the handshake change */
    wg_noise_handshake_clear(hs);
    memcpy(hs->remote_ephemeral, e, WG_DH_LEN);
    memcpy(hs->latest_timestamp, ts, WG_TAI64N_LEN);
    memcpy(hs->hash, h, WG_HASH_LEN);
    memcpy(hs->chaining_key, ck, WG_HASH_LEN);
    hs->remote_index = le32toh(msg->sender_index);
    hs->last_initiation_consumption = now;
    hs->has_consumed_initiation = 1;
    hs->state = WG_HANDSHAKE_CONSUMED_INITIATION;
    found = hs;

done:

    wg_wipe(key, sizeof(key));
    wg_wipe(ck, sizeof(ck));
    wg_wipe(h, sizeof(h));
    wg_wipe(s, sizeof(s));
    wg_wipe(e, sizeof(e));

    return found;
}


int
wg_noise_create_response(wg_handshake_t *hs, const wg_noise_static_t *st,
    wg_msg_response_t *msg, uint32_t sender_index)
{
    int      rc;
    uint8_t  key[WG_AEAD_KEY_LEN];

    if (hs->state != WG_HANDSHAKE_CONSUMED_INITIATION || !st->has_identity) {
        return -1;
    }

    rc = -1;

    memset(msg, 0, sizeof(wg_msg_response_t));
    msg->type = htole32(WG_MSG_RESPONSE);
    msg->sender_index = htole32(sender_index);
    msg->receiver_index = htole32(hs->remote_index);

    /* e */
    wg_dh_generate(hs->ephemeral_private, msg->ephemeral);
    wg_noise_mix_key(hs->chaining_key, NULL, msg->ephemeral, WG_DH_LEN);
    wg_noise_mix_hash(hs->hash, msg->ephemeral, WG_DH_LEN);

    /* ee */
    if (wg_noise_mix_dh(hs->chaining_key, NULL, hs->ephemeral_private,
                        hs->remote_ephemeral)
        != 0)
    {
        goto failed;
    }

    /* se */
    if (wg_noise_mix_dh(hs->chaining_key, NULL, hs->ephemeral_private,
                        hs->remote_static)
        != 0)
    {
        goto failed;
    }

    /* psk */
    wg_noise_mix_psk(hs->chaining_key, hs->hash, key, hs->preshared_key);

    /* {} */
    if (wg_noise_seal(msg->encrypted_nothing, NULL, 0, key, hs->hash) != 0) {
        goto failed;
    }

    hs->local_index = sender_index;
    hs->state = WG_HANDSHAKE_CREATED_RESPONSE;
    rc = 0;

failed:

    if (rc != 0) {
        wg_noise_handshake_clear(hs);
    }

    wg_wipe(key, sizeof(key));

    return rc;
}


int
wg_noise_consume_response(wg_handshake_t *hs, const wg_noise_static_t *st,
    const wg_msg_response_t *msg)
{
    int      rc;
    uint8_t  key[WG_AEAD_KEY_LEN], ck[WG_HASH_LEN], h[WG_HASH_LEN];
    uint8_t  e[WG_DH_LEN];

    if (hs->state != WG_HANDSHAKE_CREATED_INITIATION || !st->has_identity) {
        return -1;
    }

    rc = -1;

    memcpy(ck, hs->chaining_key, WG_HASH_LEN);
    memcpy(h, hs->hash, WG_HASH_LEN);

    /* e */
    memcpy(e, msg->ephemeral, WG_DH_LEN);
    wg_noise_mix_key(ck, NULL, e, WG_DH_LEN);
    wg_noise_mix_hash(h, e, WG_DH_LEN);

    /* ee */
    if (wg_noise_mix_dh(ck, NULL, hs->ephemeral_private, e) != 0) {
        goto done;
    }

    /* se */
    if (wg_noise_mix_dh(ck, NULL, st->private_key, e) != 0) {
        goto done;
    }

    /* psk */
    wg_noise_mix_psk(ck, h, key, hs->preshared_key);

    /* {} */
    if (wg_noise_open(NULL, msg->encrypted_nothing,
                      sizeof(msg->encrypted_nothing), key, h)
        != 0)
    {
        goto done;
    }

    memcpy(hs->remote_ephemeral, e, WG_DH_LEN);
    memcpy(hs->hash, h, WG_HASH_LEN);
    memcpy(hs->chaining_key, ck, WG_HASH_LEN);
    hs->remote_index = le32toh(msg->sender_index);
    hs->state = WG_HANDSHAKE_CONSUMED_RESPONSE;
    rc = 0;

done:

    wg_wipe(key, sizeof(key));
    wg_wipe(ck, sizeof(ck));
    wg_wipe(h, sizeof(h));
    wg_wipe(e, sizeof(e));

    return rc;
}


int
wg_noise_begin_session(wg_handshake_t *hs, wg_noise_keys_t *keys)
{
    uint8_t  t0[WG_HASH_LEN], t1[WG_HASH_LEN];

    if (hs->state != WG_HANDSHAKE_CONSUMED_RESPONSE
        && hs->state != WG_HANDSHAKE_CREATED_RESPONSE)
    {
        return -1;
    }

    wg_kdf(t0, t1, NULL, hs->chaining_key, WG_HASH_LEN, NULL, 0);

    keys->is_initiator = (hs->state == WG_HANDSHAKE_CONSUMED_RESPONSE);

    if (keys->is_initiator) {
        memcpy(keys->send_key, t0, WG_AEAD_KEY_LEN);
        memcpy(keys->recv_key, t1, WG_AEAD_KEY_LEN);

    } else {
        memcpy(keys->send_key, t1, WG_AEAD_KEY_LEN);
        memcpy(keys->recv_key, t0, WG_AEAD_KEY_LEN);
    }

    keys->local_index = hs->local_index;
    keys->remote_index = hs->remote_index;

    wg_wipe(t0, sizeof(t0));
    wg_wipe(t1, sizeof(t1));
    wg_noise_handshake_clear(hs);

    return 0;
}
