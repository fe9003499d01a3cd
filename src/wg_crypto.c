/*
 * Cryptographic primitives of the WireGuard protocol core.
 */

#include <string.h>

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "wg_crypto.h"


#define WG_BLAKE2S_BLOCK        64
#define WG_TAI64_EPOCH          0x400000000000000aULL

/*
 * the timestamp only has to grow between initiations, which may come at
 * most 50 times per second: rounding the nanoseconds down to 2^24 (16.7 ms)
 * keeps the order and hides the precise clock of this host
 */
#define WG_TAI64N_NS_MASK       (~((uint32_t) (1 << 24) - 1))

/*
 * OpenSSL 3's ChaCha20-Poly1305 is the faster of the two for full-size
 * packets, but every call through its EVP layer pays some 350 ns for
 * parameters looked up by name; libsodium has no such cost.  Below this
 * many bytes (ACKs, keepalives, small requests and responses) libsodium
 * seals and opens in about half the time; at 1 KiB the two are even
 * (measured on the project's 2-core machine).
 */
#define WG_AEAD_SMALL           1024


static void wg_put_be64(uint8_t *p, uint64_t v);
static void wg_put_be32(uint8_t *p, uint32_t v);
static void wg_aead_nonce(uint8_t nonce[12], uint64_t counter);


static int               wg_crypto_ready;
static EVP_MD           *wg_blake2s_md;
static EVP_MD_CTX       *wg_md_ctx;
static EVP_MAC          *wg_blake2s_mac;
static EVP_MAC_CTX      *wg_mac_ctx;
static EVP_CIPHER_CTX   *wg_seal_ctx;
static EVP_CIPHER_CTX   *wg_open_ctx;


int
wg_crypto_init(void)
{
    if (wg_crypto_ready) {
        return 0;
    }

    if (sodium_init() < 0) {
        return -1;
    }

    wg_blake2s_md = EVP_MD_fetch(NULL, "BLAKE2S-256", NULL);
    wg_md_ctx = EVP_MD_CTX_new();
    wg_blake2s_mac = EVP_MAC_fetch(NULL, "BLAKE2SMAC", NULL);
    wg_seal_ctx = EVP_CIPHER_CTX_new();
    wg_open_ctx = EVP_CIPHER_CTX_new();

    if (wg_blake2s_md == NULL || wg_md_ctx == NULL || wg_blake2s_mac == NULL
        || wg_seal_ctx == NULL || wg_open_ctx == NULL)
    {
        return -1;
    }

    wg_mac_ctx = EVP_MAC_CTX_new(wg_blake2s_mac);
    if (wg_mac_ctx == NULL) {
        return -1;
    }

    /* the cipher is bound once; each packet only swaps key and nonce */
    if (EVP_EncryptInit_ex(wg_seal_ctx, EVP_chacha20_poly1305(), NULL,
                           NULL, NULL) != 1
        || EVP_DecryptInit_ex(wg_open_ctx, EVP_chacha20_poly1305(), NULL,
                              NULL, NULL) != 1)
    {
        return -1;
    }

    wg_crypto_ready = 1;

    return 0;
}


void
wg_hash(uint8_t out[WG_HASH_LEN], const void *a, size_t alen, const void *b,
    size_t blen)
{
    unsigned int  outlen;

    EVP_DigestInit_ex(wg_md_ctx, wg_blake2s_md, NULL);
    EVP_DigestUpdate(wg_md_ctx, a, alen);

    if (blen != 0) {
        EVP_DigestUpdate(wg_md_ctx, b, blen);
    }

    outlen = WG_HASH_LEN;
    EVP_DigestFinal_ex(wg_md_ctx, out, &outlen);
}


void
wg_keyed_blake2s(uint8_t *out, size_t outlen, const uint8_t *key,
    size_t keylen, const void *in, size_t len)
{
    size_t      written;
    OSSL_PARAM  params[2];

    params[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outlen);
    params[1] = OSSL_PARAM_construct_end();

    if (EVP_MAC_init(wg_mac_ctx, key, keylen, params) != 1
        || EVP_MAC_update(wg_mac_ctx, in, len) != 1
        || EVP_MAC_final(wg_mac_ctx, out, &written, outlen) != 1)
    {
        /* never leave a predictable value behind on a library failure */
        wg_random(out, outlen);
    }
}


void
wg_mac(uint8_t out[WG_MAC_LEN], const uint8_t *key, size_t keylen,
    const void *in, size_t len)
{
    wg_keyed_blake2s(out, WG_MAC_LEN, key, keylen, in, len);
}


void
wg_hmac(uint8_t out[WG_HASH_LEN], const uint8_t *key, size_t keylen,
    const void *in, size_t len)
{
    size_t   i;
    uint8_t  k[WG_BLAKE2S_BLOCK], inner[WG_HASH_LEN];

    memset(k, 0, sizeof(k));

    if (keylen > WG_BLAKE2S_BLOCK) {
        wg_hash(k, key, keylen, NULL, 0);

    } else if (keylen != 0) {
        memcpy(k, key, keylen);
    }

    for (i = 0; i < WG_BLAKE2S_BLOCK; i++) {
        k[i] ^= 0x36;
    }

    wg_hash(inner, k, sizeof(k), in, len);

    for (i = 0; i < WG_BLAKE2S_BLOCK; i++) {
        k[i] ^= 0x36 ^ 0x5c;
    }

    wg_hash(out, k, sizeof(k), inner, sizeof(inner));

    wg_wipe(k, sizeof(k));
    wg_wipe(inner, sizeof(inner));
}


void
wg_kdf(uint8_t t0[WG_HASH_LEN], uint8_t *t1, uint8_t *t2, const uint8_t *ck,
    size_t cklen, const void *in, size_t len)
{
    uint8_t  prk[WG_HASH_LEN], buf[WG_HASH_LEN + 1], out[WG_HASH_LEN];

    wg_hmac(prk, ck, cklen, in, len);

    buf[0] = 1;
    wg_hmac(out, prk, sizeof(prk), buf, 1);

    /* outputs may alias ck: write them only after the last use of prk */
    if (t1 != NULL) {
        memcpy(buf, out, WG_HASH_LEN);
        buf[WG_HASH_LEN] = 2;
        wg_hmac(t1, prk, sizeof(prk), buf, WG_HASH_LEN + 1);

        if (t2 != NULL) {
            memcpy(buf, t1, WG_HASH_LEN);
            buf[WG_HASH_LEN] = 3;
            wg_hmac(t2, prk, sizeof(prk), buf, WG_HASH_LEN + 1);
        }
    }

    memcpy(t0, out, WG_HASH_LEN);

    wg_wipe(prk, sizeof(prk));
    wg_wipe(buf, sizeof(buf));
    wg_wipe(out, sizeof(out));
}


static void
wg_aead_nonce(uint8_t nonce[12], uint64_t counter)
{
    int  i;

    memset(nonce, 0, 4);

    for (i = 0; i < 8; i++) {
        nonce[4 + i] = (uint8_t) (counter >> (8 * i));
    }
}


int
wg_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, size_t pad,
    const uint8_t *ad, size_t adlen, uint64_t counter,
    const uint8_t key[WG_AEAD_KEY_LEN])
{
    uint8_t  nonce[12];

    wg_aead_nonce(nonce, counter);

    return wg_aead_seal_iv(dst, src, len, pad, ad, adlen, nonce, key);
}


int
wg_aead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
    size_t adlen, uint64_t counter, const uint8_t key[WG_AEAD_KEY_LEN])
{
    uint8_t  nonce[12];

    wg_aead_nonce(nonce, counter);

    return wg_aead_open_iv(dst, src, len, ad, adlen, nonce, key);
}


int
wg_aead_seal_iv(uint8_t *dst, const uint8_t *src, size_t len, size_t pad,
    const uint8_t *ad, size_t adlen, const uint8_t nonce[12],
    const uint8_t key[WG_AEAD_KEY_LEN])
{
    int             outl;
    size_t          done;
    static uint8_t  zeros[16];

    if (pad > sizeof(zeros) || len > INT32_MAX) {
        return -1;
    }

    if (len + pad < WG_AEAD_SMALL) {
        if (dst != src && len != 0) {
            memmove(dst, src, len);
        }

        memset(dst + len, 0, pad);

        return crypto_aead_chacha20poly1305_ietf_encrypt_detached(dst,
                   dst + len + pad, NULL, dst, len + pad, ad, adlen, NULL,
                   nonce, key);
    }

    if (EVP_EncryptInit_ex(wg_seal_ctx, NULL, NULL, key, nonce) != 1) {
        return -1;
    }

    if (adlen != 0
        && EVP_EncryptUpdate(wg_seal_ctx, NULL, &outl, ad, (int) adlen) != 1)
    {
        return -1;
    }

    done = 0;

    if (len != 0) {
        if (EVP_EncryptUpdate(wg_seal_ctx, dst, &outl, src, (int) len) != 1) {
            return -1;
        }

        done += outl;
    }

    if (pad != 0) {
        if (EVP_EncryptUpdate(wg_seal_ctx, dst + done, &outl, zeros,
                              (int) pad)
            != 1)
        {
            return -1;
        }

        done += outl;
    }

    if (EVP_EncryptFinal_ex(wg_seal_ctx, dst + done, &outl) != 1) {
        return -1;
    }

    done += outl;

    if (EVP_CIPHER_CTX_ctrl(wg_seal_ctx, EVP_CTRL_AEAD_GET_TAG,
                            WG_AEAD_TAG_LEN, dst + done)
        != 1)
    {
        return -1;
    }

    return 0;
}


int
wg_aead_open_iv(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t *ad, size_t adlen, const uint8_t nonce[12],
    const uint8_t key[WG_AEAD_KEY_LEN])
{
    int      outl;
    size_t   clen, done;
    uint8_t  tag[WG_AEAD_TAG_LEN], none[WG_AEAD_TAG_LEN];

    if (len < WG_AEAD_TAG_LEN || len > INT32_MAX) {
        return -1;
    }

    clen = len - WG_AEAD_TAG_LEN;

    /* an empty plaintext (handshake response) still needs somewhere */
    if (dst == NULL) {
        dst = none;
    }

    /* the tag may be overwritten by in-place decryption of a shorter dst */
    memcpy(tag, src + clen, WG_AEAD_TAG_LEN);

    if (clen < WG_AEAD_SMALL) {
        return crypto_aead_chacha20poly1305_ietf_decrypt_detached(dst, NULL,
                   src, clen, tag, ad, adlen, nonce, key);
    }

    if (EVP_DecryptInit_ex(wg_open_ctx, NULL, NULL, key, nonce) != 1) {
        return -1;
    }

    if (adlen != 0
        && EVP_DecryptUpdate(wg_open_ctx, NULL, &outl, ad, (int) adlen) != 1)
    {
        return -1;
    }

    done = 0;

    if (clen != 0) {
        if (EVP_DecryptUpdate(wg_open_ctx, dst, &outl, src, (int) clen)
            != 1)
        {
            return -1;
        }

        done = outl;
    }

    if (EVP_CIPHER_CTX_ctrl(wg_open_ctx, EVP_CTRL_AEAD_SET_TAG,
                            WG_AEAD_TAG_LEN, tag)
        != 1)
    {
        return -1;
    }

    if (EVP_DecryptFinal_ex(wg_open_ctx, dst + done, &outl) != 1) {
        return -1;
    }

    return 0;
}


int
wg_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t *ad, size_t adlen, const uint8_t nonce[WG_XAEAD_NONCE_LEN],
    const uint8_t key[WG_AEAD_KEY_LEN])
{
    unsigned long long  clen;

    return crypto_aead_xchacha20poly1305_ietf_encrypt(dst, &clen, src, len,
                                                      ad, adlen, NULL, nonce,
                                                      key);
}


int
wg_xaead_open(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t *ad, size_t adlen, const uint8_t nonce[WG_XAEAD_NONCE_LEN],
    const uint8_t key[WG_AEAD_KEY_LEN])
{
    unsigned long long  mlen;

    if (len < WG_AEAD_TAG_LEN) {
        return -1;
    }

    return crypto_aead_xchacha20poly1305_ietf_decrypt(dst, &mlen, NULL, src,
                                                      len, ad, adlen, nonce,
                                                      key);
}


void
wg_clamp_key(uint8_t key[WG_DH_LEN])
{
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
}


void
wg_dh_generate(uint8_t priv[WG_DH_LEN], uint8_t pub[WG_DH_LEN])
{
    randombytes_buf(priv, WG_DH_LEN);
    wg_clamp_key(priv);
    crypto_scalarmult_base(pub, priv);
}


int
wg_dh_public(uint8_t pub[WG_DH_LEN], const uint8_t priv[WG_DH_LEN])
{
    return crypto_scalarmult_base(pub, priv) == 0 ? 0 : -1;
}


int
wg_dh(uint8_t out[WG_DH_LEN], const uint8_t priv[WG_DH_LEN],
    const uint8_t pub[WG_DH_LEN])
{
    /* libsodium already refuses small-order points; checked again here */
    if (crypto_scalarmult(out, priv, pub) != 0
        || sodium_is_zero(out, WG_DH_LEN))
    {
        sodium_memzero(out, WG_DH_LEN);
        return -1;
    }

    return 0;
}


static void
wg_put_be64(uint8_t *p, uint64_t v)
{
    int  i;

    for (i = 7; i >= 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}


static void
wg_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
}


void
wg_tai64n(uint8_t out[WG_TAI64N_LEN], uint64_t realtime_ns)
{
    uint64_t  sec;
    uint32_t  nsec;

    sec = realtime_ns / 1000000000ULL;
    nsec = (uint32_t) (realtime_ns % 1000000000ULL);

    wg_put_be64(out, WG_TAI64_EPOCH + sec);
    wg_put_be32(out + 8, nsec & WG_TAI64N_NS_MASK);
}


void
wg_random(void *buf, size_t len)
{
    randombytes_buf(buf, len);
}


uint32_t
wg_random_u32(void)
{
    return randombytes_random();
}


/*
 * Timer jitter draws a number for every packet sent after one was received,
 * which in a bulk transfer is every ACK: take those from a block fetched
 * 64 at a time instead of a getrandom() call each (the kernel module's
 * get_random_u32_below() batches the same way).  Rejection sampling keeps
 * the result uniform, as randombytes_uniform() does.
 */

uint32_t
wg_random_uniform(uint32_t upper)
{
    uint32_t         r, min;
    static uint32_t  pool[64];
    static size_t    left;

    if (upper < 2) {
        return 0;
    }

    min = (uint32_t) -upper % upper;

    do {
        if (left == 0) {
            randombytes_buf(pool, sizeof(pool));
            left = sizeof(pool) / sizeof(pool[0]);
        }

        r = pool[--left];

    } while (r < min);

    return r % upper;
}


int
wg_memcmp_ct(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0 ? 0 : -1;
}


int
wg_is_zero_ct(const void *a, size_t len)
{
    return sodium_is_zero(a, len);
}


void
wg_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}
