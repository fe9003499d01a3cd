/*
 * Published test vectors for the primitives.
 */

#include <string.h>

#include <sodium.h>

#include "wgtest.h"
#include "wg_crypto.h"


static const char  sunscreen[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one "
    "tip for the future, sunscreen would be it.";


static void
test_x25519(void)
{
    uint8_t  k[32], u[32], out[32], a[32], b[32], apub[32], bpub[32];
    uint8_t  s1[32], s2[32], zero[32];

    wgt_section("X25519 (RFC 7748)");

    /* 5.2, first vector */
    wgt_unhex("a546e36bf0527c9d3b16154b82465edd"
              "62144c0ac1fc5a18506a2244ba449ac4",
              k, 32);
    wgt_unhex("e6db6867583030db3594c1a424b15f7c"
              "726624ec26b3353b10a903a6d0ab1c4c",
              u, 32);
    CHECK(wg_dh(out, k, u) == 0, "5.2 vector 1 computes");
    CHECK_HEX(out, 32,
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        "RFC 7748 5.2 vector 1");

    /* 5.2, second vector */
    wgt_unhex("4b66e9d4d1b4673c5ad22691957d6af5"
              "c11b6421e0ea01d42ca4169e7918ba0d",
              k, 32);
    wgt_unhex("e5210f12786811d3f4b7959d0538ae2c"
              "31dbe7106fc03c3efc4cd549c715a493",
              u, 32);
    CHECK(wg_dh(out, k, u) == 0, "5.2 vector 2 computes");
    CHECK_HEX(out, 32,
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        "RFC 7748 5.2 vector 2");

    /* 6.1 Diffie-Hellman */
    wgt_unhex("77076d0a7318a57d3c16c17251b26645"
              "df4c2f87ebc0992ab177fba51db92c2a",
              a, 32);
    wgt_unhex("5dab087e624a8a4b79e17f8b83800ee6"
              "6f3bb1292618b6fd1c2f8b27ff88e0eb",
              b, 32);
    CHECK(wg_dh_public(apub, a) == 0, "6.1 Alice public computes");
    CHECK_HEX(apub, 32,
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        "RFC 7748 6.1 Alice public key");
    CHECK(wg_dh_public(bpub, b) == 0, "6.1 Bob public computes");
    CHECK_HEX(bpub, 32,
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        "RFC 7748 6.1 Bob public key");
    CHECK(wg_dh(s1, a, bpub) == 0 && wg_dh(s2, b, apub) == 0,
          "6.1 shared secrets compute");
    CHECK_HEX(s1, 32,
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
        "RFC 7748 6.1 shared secret (Alice)");
    CHECK(memcmp(s1, s2, 32) == 0, "RFC 7748 6.1 both sides agree");

    /* a small-order point gives an all-zero secret, which must be refused */
    memset(zero, 0, sizeof(zero));
    CHECK(wg_dh(out, a, zero) == -1, "all-zero shared secret rejected");
    CHECK(wg_is_zero_ct(out, 32), "rejected secret left zeroed");
}


static void
test_aead(void)
{
    uint8_t  key[32], nonce[12], aad[12], ct[256], pt[256], buf[256];
    size_t   len;

    wgt_section("ChaCha20-Poly1305 (RFC 8439 2.8.2)");

    len = sizeof(sunscreen) - 1;
    wgt_unhex("808182838485868788898a8b8c8d8e8f"
              "909192939495969798999a9b9c9d9e9f",
              key, 32);
    wgt_unhex("070000004041424344454647", nonce, 12);
    wgt_unhex("50515253c0c1c2c3c4c5c6c7", aad, 12);

    CHECK(wg_aead_seal_iv(ct, (const uint8_t *) sunscreen, len, 0, aad, 12,
                          nonce, key) == 0, "2.8.2 seal");
    CHECK_HEX(ct, len,
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
        "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
        "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
        "3ff4def08e4b7a9de576d26586cec64b6116", "RFC 8439 2.8.2 ciphertext");
    CHECK_HEX(ct + len, 16, "1ae10b594f09e26a7e902ecbd0600691",
              "RFC 8439 2.8.2 tag");

    CHECK(wg_aead_open_iv(pt, ct, len + 16, aad, 12, nonce, key) == 0
          && memcmp(pt, sunscreen, len) == 0, "2.8.2 open");

    /* in place, as the receive path does */
    memcpy(buf, ct, len + 16);
    CHECK(wg_aead_open_iv(buf, buf, len + 16, aad, 12, nonce, key) == 0
          && memcmp(buf, sunscreen, len) == 0, "2.8.2 open in place");

    ct[3] ^= 1;
    CHECK(wg_aead_open_iv(pt, ct, len + 16, aad, 12, nonce, key) == -1,
          "tampered ciphertext rejected");
    ct[3] ^= 1;
    aad[0] ^= 1;
    CHECK(wg_aead_open_iv(pt, ct, len + 16, aad, 12, nonce, key) == -1,
          "tampered AAD rejected");

    /* the counter form is the nonce 0^32 || LE64(counter) */
    memset(nonce, 0, 12);
    nonce[4] = 0x01;
    nonce[5] = 0x02;
    nonce[11] = 0x80;
    CHECK(wg_aead_seal_iv(ct, (const uint8_t *) sunscreen, len, 0, NULL, 0,
                          nonce, key) == 0
          && wg_aead_seal(buf, (const uint8_t *) sunscreen, len, 0, NULL, 0,
                          0x8000000000000201ULL, key) == 0
          && memcmp(ct, buf, len + 16) == 0,
          "counter nonce is 4 zero bytes then little-endian counter");

    /* padding is encrypted zeros after the packet */
    memcpy(pt, sunscreen, 10);
    memset(pt + 10, 0, 6);
    CHECK(wg_aead_seal(ct, pt, 16, 0, NULL, 0, 7, key) == 0
          && wg_aead_seal(buf, (const uint8_t *) sunscreen, 10, 6, NULL, 0,
                          7, key) == 0
          && memcmp(ct, buf, 32) == 0, "seal with pad equals zero-padded");

    CHECK(wg_aead_seal(ct, NULL, 0, 0, NULL, 0, 0, key) == 0
          && wg_aead_open(NULL, ct, 16, NULL, 0, 0, key) == 0,
          "empty plaintext round trip");
    CHECK(wg_aead_open(pt, ct, 15, NULL, 0, 0, key) == -1,
          "shorter than a tag rejected");
}


/*
 * Small packets are sealed by libsodium, larger ones by OpenSSL: every size
 * around the switch, with and without padding, matches libsodium's own
 * combined-mode output and opens again, also in place.
 */

static void
test_aead_sizes(void)
{
    size_t               len, pad, sizes[] = { 0, 1, 15, 16, 100, 1007,
                                               1008, 1009, 1023, 1024,
                                               1025, 1040, 1420, 1500 };
    unsigned             i, bad_seal, bad_open, checked;
    unsigned long long   rlen;
    static uint8_t       key[32], nonce[12], pt[1536], ct[1600],
                         ref[1600], out[1600];

    wgt_section("ChaCha20-Poly1305 across the libsodium/OpenSSL switch");

    for (i = 0; i < sizeof(pt); i++) {
        pt[i] = (uint8_t) (i * 7 + 3);
    }

    memset(key, 0x5a, sizeof(key));
    nonce[4] = 9;
    bad_seal = 0;
    bad_open = 0;
    checked = 0;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (pad = 0; pad < 16; pad += 15) {
            len = sizes[i];

            memcpy(out, pt, len);
            memset(out + len, 0, pad);
            crypto_aead_chacha20poly1305_ietf_encrypt(ref, &rlen, out,
                                                      len + pad, pt, 20,
                                                      NULL, nonce, key);

            if (wg_aead_seal_iv(ct, pt, len, pad, pt, 20, nonce, key) != 0
                || rlen != len + pad + 16
                || memcmp(ct, ref, rlen) != 0)
            {
                bad_seal++;
            }

            if (wg_aead_open_iv(out, ct, rlen, pt, 20, nonce, key) != 0
                || memcmp(out, pt, len) != 0
                || wg_aead_open_iv(ct, ct, rlen, pt, 20, nonce, key) != 0
                || memcmp(ct, pt, len) != 0)
            {
                bad_open++;
            }

            memcpy(ct, ref, rlen);
            ct[rlen - 1] ^= 0x80;

            if (wg_aead_open_iv(out, ct, rlen, pt, 20, nonce, key) != -1) {
                bad_open++;
            }

            checked++;
        }
    }

    CHECK(checked == 28 && bad_seal == 0, "seal equals libsodium, all sizes");
    CHECK(bad_open == 0, "open (and in place), tampered tag rejected");
}


static void
test_xaead(void)
{
    uint8_t  key[32], nonce[24], aad[12], ct[256], pt[256];
    size_t   len;

    wgt_section("XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 A.3.1)");

    len = sizeof(sunscreen) - 1;
    wgt_unhex("808182838485868788898a8b8c8d8e8f"
              "909192939495969798999a9b9c9d9e9f",
              key, 32);
    wgt_unhex("404142434445464748494a4b4c4d4e4f5051525354555657", nonce, 24);
    wgt_unhex("50515253c0c1c2c3c4c5c6c7", aad, 12);

    CHECK(wg_xaead_seal(ct, (const uint8_t *) sunscreen, len, aad, 12, nonce,
                        key) == 0, "A.3.1 seal");
    CHECK_HEX(ct, len,
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
        "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
        "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        "21f9664c97637da9768812f615c68b13b52e", "XChaCha A.3.1 ciphertext");
    CHECK_HEX(ct + len, 16, "c0875924c1c7987947deafd8780acf49",
              "XChaCha A.3.1 tag");
    CHECK(wg_xaead_open(pt, ct, len + 16, aad, 12, nonce, key) == 0
          && memcmp(pt, sunscreen, len) == 0, "A.3.1 open");
    ct[len] ^= 0x80;
    CHECK(wg_xaead_open(pt, ct, len + 16, aad, 12, nonce, key) != 0,
          "XChaCha tampered tag rejected");
}


static void
test_blake2s(void)
{
    uint8_t  out[32], key[64], in[64];
    size_t   i;

    wgt_section("BLAKE2s (RFC 7693, BLAKE2 KAT)");

    wg_hash(out, "abc", 3, NULL, 0);
    CHECK_HEX(out, 32,
        "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
        "RFC 7693 Appendix B BLAKE2s-256(\"abc\")");

    wg_hash(out, "a", 1, "bc", 2);
    CHECK_HEX(out, 32,
        "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
        "hash of two parts equals hash of the concatenation");

    wg_hash(out, "", 0, NULL, 0);
    CHECK_HEX(out, 32,
        "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9",
        "BLAKE2s-256(\"\")");

    for (i = 0; i < 64; i++) {
        key[i] = (uint8_t) i;
        in[i] = (uint8_t) i;
    }

    wg_keyed_blake2s(out, 32, key, 32, in, 0);
    CHECK_HEX(out, 32,
        "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49",
        "blake2s-kat keyed, in = \"\"");

    wg_keyed_blake2s(out, 32, key, 32, in, 1);
    CHECK_HEX(out, 32,
        "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1",
        "blake2s-kat keyed, in = 00");

    /* 16-byte outputs, as mac1/mac2/cookies use (Python hashlib blake2s) */
    wg_mac(out, key, 32, "abc", 3);
    CHECK_HEX(out, 16, "61ba5f165c194692e09d12520cc4c74a",
              "keyed BLAKE2s-128, 32-byte key");
    wg_mac(out, key, 16, "", 0);
    CHECK_HEX(out, 16, "af4e5d3bb230e9ff9096ca6f7c501f76",
              "keyed BLAKE2s-128, 16-byte key (cookie as mac2 key)");
    wg_mac(out, key, 32, in, 64);
    CHECK_HEX(out, 16, "f1efa90d2547036841ecd3627fafbc36",
              "keyed BLAKE2s-128, one full block");
}


static void
test_kdf(void)
{
    uint8_t  key[64], in[64], t0[32], t1[32], t2[32];
    size_t   klen, ilen, i;

    static const struct {
        const char  *key, *input, *t0, *t1, *t2;
    } v[] = {
        { "746573742d6b6579", "746573742d696e707574",
          "6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633",
          "df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a",
          "fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24" },
        { "776972656775617264", "776972656775617264",
          "491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8",
          "1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f",
          "31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160" },
        { "", "",
          "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
          "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
          "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e" }
    };

    wgt_section("HMAC-BLAKE2s KDF (wireguard-go device/kdf_test.go)");

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        klen = wgt_unhex(v[i].key, key, sizeof(key));
        ilen = wgt_unhex(v[i].input, in, sizeof(in));

        wg_kdf(t0, t1, t2, key, klen, in, ilen);
        CHECK_HEX(t0, 32, v[i].t0, "KDF3 t0");
        CHECK_HEX(t1, 32, v[i].t1, "KDF3 t1");
        CHECK_HEX(t2, 32, v[i].t2, "KDF3 t2");

        memset(t1, 0, 32);
        wg_kdf(t0, t1, NULL, key, klen, in, ilen);
        CHECK_HEX(t0, 32, v[i].t0, "KDF2 t0");
        CHECK_HEX(t1, 32, v[i].t1, "KDF2 t1");

        wg_kdf(t0, NULL, NULL, key, klen, in, ilen);
        CHECK_HEX(t0, 32, v[i].t0, "KDF1 t0");
    }

    /* the noise code chains in place: ck is both key and output */
    klen = wgt_unhex(v[0].key, key, sizeof(key));
    ilen = wgt_unhex(v[0].input, in, sizeof(in));
    memset(t0, 0, sizeof(t0));
    memcpy(t0, key, klen);
    wg_kdf(t0, t1, NULL, t0, klen, in, ilen);
    CHECK_HEX(t0, 32, v[0].t0, "KDF with output aliasing the key");
}


static void
test_misc(void)
{
    uint8_t  ts1[12], ts2[12], a[16], b[16];

    wgt_section("TAI64N, constant-time helpers");

    wg_tai64n(ts1, 0);
    CHECK_HEX(ts1, 12, "400000000000000a00000000", "TAI64N of the epoch");

    wg_tai64n(ts1, 1000000000ULL * 1700000000ULL + 999999999ULL);
    CHECK(ts1[8] == 0x3b && ts1[9] == 0x00 && ts1[10] == 0 && ts1[11] == 0,
          "TAI64N nanoseconds rounded down to 2^24");

    wg_tai64n(ts2, 1000000000ULL * 1700000001ULL);
    CHECK(memcmp(ts2, ts1, 12) > 0, "TAI64N grows with time (bytewise)");

    memset(a, 7, sizeof(a));
    memset(b, 7, sizeof(b));
    CHECK(wg_memcmp_ct(a, b, 16) == 0, "ct compare equal");
    b[15] = 8;
    CHECK(wg_memcmp_ct(a, b, 16) != 0, "ct compare differs");
    wg_wipe(a, sizeof(a));
    CHECK(wg_is_zero_ct(a, 16), "wipe zeroes");
}


static void
test_random_uniform(void)
{
    int       ok;
    unsigned  i, n[5];
    uint32_t  r;

    wgt_section("uniform random numbers (batched)");

    CHECK(wg_random_uniform(0) == 0 && wg_random_uniform(1) == 0,
          "uniform below 0 and 1 is 0");

    ok = 1;
    for (i = 0; i < 1000; i++) {
        r = wg_random_uniform(0x80000001);
        ok &= (r <= 0x80000000);
    }
    CHECK(ok, "uniform below 2^31 + 1 stays below (rejection path)");

    /* 5000 draws in 5 buckets: each expects 1000, sd 28; 700-1300 is
       more than 10 sd either way */
    memset(n, 0, sizeof(n));
    ok = 1;
    for (i = 0; i < 5000; i++) {
        r = wg_random_uniform(5);
        if (r >= 5) {
            ok = 0;
            break;
        }
        n[r]++;
    }
    for (i = 0; i < 5; i++) {
        ok &= (n[i] > 700 && n[i] < 1300);
    }
    CHECK(ok, "uniform below 5: every value, evenly, across pool refills");
}


void
test_crypto(void)
{
    test_x25519();
    test_aead();
    test_aead_sizes();
    test_xaead();
    test_blake2s();
    test_kdf();
    test_misc();
    test_random_uniform();
}
