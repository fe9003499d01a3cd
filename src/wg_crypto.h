/*
 * Cryptographic primitives of the WireGuard protocol core.
 *
 * OpenSSL 3 provides BLAKE2s and ChaCha20-Poly1305, libsodium provides
 * X25519, XChaCha20-Poly1305, randomness and wiping.  The contexts are
 * created once per process and reused: the core runs in one event loop per
 * process (nginx workers are processes), so no call is reentrant.
 */

#ifndef _WG_CRYPTO_H_INCLUDED_
#define _WG_CRYPTO_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define WG_HASH_LEN             32
#define WG_MAC_LEN              16
#define WG_AEAD_KEY_LEN         32
#define WG_AEAD_TAG_LEN         16
#define WG_XAEAD_NONCE_LEN      24
#define WG_DH_LEN               32
#define WG_TAI64N_LEN           12


/* 0 on success; idempotent, called by wg_device_create() */
int wg_crypto_init(void);

/* BLAKE2s-256 of a || b (b may be NULL with blen 0) */
void wg_hash(uint8_t out[WG_HASH_LEN], const void *a, size_t alen,
    const void *b, size_t blen);

/* keyed BLAKE2s with a 16-byte output; key 1..32 bytes */
void wg_mac(uint8_t out[WG_MAC_LEN], const uint8_t *key, size_t keylen,
    const void *in, size_t len);

/* keyed BLAKE2s with any output length 1..32 (for known-answer tests) */
void wg_keyed_blake2s(uint8_t *out, size_t outlen, const uint8_t *key,
    size_t keylen, const void *in, size_t len);

/* HMAC-BLAKE2s */
void wg_hmac(uint8_t out[WG_HASH_LEN], const uint8_t *key, size_t keylen,
    const void *in, size_t len);

/*
 * the WireGuard KDF over the chaining key ck: t1 and t2 may be NULL when
 * fewer outputs are needed (KDF1, KDF2)
 */
void wg_kdf(uint8_t t0[WG_HASH_LEN], uint8_t *t1, uint8_t *t2,
    const uint8_t *ck, size_t cklen, const void *in, size_t len);

/*
 * ChaCha20-Poly1305 with the 96-bit nonce 0^32 || LE64(counter).
 * seal: dst gets len + pad + 16 bytes, where pad zero bytes follow src;
 * open: len includes the tag, dst gets len - 16 bytes and may equal src.
 * Both return 0 on success, -1 on failure.
 */
int wg_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, size_t pad,
    const uint8_t *ad, size_t adlen, uint64_t counter,
    const uint8_t key[WG_AEAD_KEY_LEN]);
int wg_aead_open(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t *ad, size_t adlen, uint64_t counter,
    const uint8_t key[WG_AEAD_KEY_LEN]);

/* the same with an explicit 96-bit nonce (RFC 8439 test vectors) */
int wg_aead_seal_iv(uint8_t *dst, const uint8_t *src, size_t len, size_t pad,
    const uint8_t *ad, size_t adlen, const uint8_t nonce[12],
    const uint8_t key[WG_AEAD_KEY_LEN]);
int wg_aead_open_iv(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t *ad, size_t adlen, const uint8_t nonce[12],
    const uint8_t key[WG_AEAD_KEY_LEN]);

/* XChaCha20-Poly1305 (cookie replies); same conventions as above */
int wg_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t *ad, size_t adlen, const uint8_t nonce[WG_XAEAD_NONCE_LEN],
    const uint8_t key[WG_AEAD_KEY_LEN]);
int wg_xaead_open(uint8_t *dst, const uint8_t *src, size_t len,
    const uint8_t *ad, size_t adlen, const uint8_t nonce[WG_XAEAD_NONCE_LEN],
    const uint8_t key[WG_AEAD_KEY_LEN]);

/* X25519; wg_dh() fails (-1) on an all-zero shared secret */
void wg_dh_generate(uint8_t priv[WG_DH_LEN], uint8_t pub[WG_DH_LEN]);
int wg_dh_public(uint8_t pub[WG_DH_LEN], const uint8_t priv[WG_DH_LEN]);
int wg_dh(uint8_t out[WG_DH_LEN], const uint8_t priv[WG_DH_LEN],
    const uint8_t pub[WG_DH_LEN]);
void wg_clamp_key(uint8_t key[WG_DH_LEN]);

/* TAI64N of a wall clock time, nanoseconds rounded down to hide the clock */
void wg_tai64n(uint8_t out[WG_TAI64N_LEN], uint64_t realtime_ns);

void wg_random(void *buf, size_t len);
uint32_t wg_random_u32(void);
uint32_t wg_random_uniform(uint32_t upper);

/* 0 when equal, in time independent of the contents */
int wg_memcmp_ct(const void *a, const void *b, size_t len);
int wg_is_zero_ct(const void *a, size_t len);
void wg_wipe(void *p, size_t len);


#endif /* _WG_CRYPTO_H_INCLUDED_ */
