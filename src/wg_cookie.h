/*
 * The cookie mechanism: mac1 proves a handshake message was meant for us,
 * mac2 proves under load that its sender owns its source address.
 *
 * The checker is ours (one per device), the maker is per peer (what we put
 * into messages we send to that peer).
 */

#ifndef _WG_COOKIE_H_INCLUDED_
#define _WG_COOKIE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "wg_crypto.h"
#include "wg_noise.h"


#define WG_COOKIE_SECRET_MAX_AGE    (120ULL * 1000000000ULL)
#define WG_COOKIE_SECRET_LATENCY    (5ULL * 1000000000ULL)


typedef enum {
    WG_COOKIE_MAC_INVALID = 0,
    WG_COOKIE_MAC_VALID,             /* mac1 right, mac2 absent or wrong */
    WG_COOKIE_MAC_VALID_WITH_COOKIE  /* mac1 and mac2 right */
} wg_cookie_mac_state_t;


typedef struct {
    uint8_t                     secret[WG_HASH_LEN];
    uint64_t                    secret_birthdate;
    int                         has_secret;
    uint8_t                     message_mac1_key[WG_HASH_LEN];
    uint8_t                     cookie_encryption_key[WG_AEAD_KEY_LEN];
} wg_cookie_checker_t;


typedef struct {
    uint8_t                     cookie[WG_COOKIE_LEN];
    uint64_t                    birthdate;
    int                         is_valid;
    uint8_t                     last_mac1_sent[WG_MAC_LEN];
    int                         have_sent_mac1;
    uint8_t                     message_mac1_key[WG_HASH_LEN];
    uint8_t                     cookie_decryption_key[WG_AEAD_KEY_LEN];
} wg_cookie_maker_t;


/* keys derived from our public key (checker) or the peer's (maker) */
void wg_cookie_checker_init(wg_cookie_checker_t *checker,
    const uint8_t our_public[WG_DH_LEN]);
void wg_cookie_maker_init(wg_cookie_maker_t *maker,
    const uint8_t peer_public[WG_DH_LEN]);
void wg_cookie_maker_wipe(wg_cookie_maker_t *maker);

/*
 * msg is a whole handshake message ending in wg_msg_macs_t; src is the
 * source address (IPv4 4 or IPv6 16 bytes, then the port, 2 bytes)
 */
wg_cookie_mac_state_t wg_cookie_validate(wg_cookie_checker_t *checker,
    const uint8_t *msg, size_t len, const uint8_t *src, size_t srclen,
    int check_cookie, uint64_t now);

void wg_cookie_add_macs(wg_cookie_maker_t *maker, uint8_t *msg, size_t len,
    uint64_t now);

void wg_cookie_create_reply(wg_cookie_checker_t *checker,
    wg_msg_cookie_t *reply, const uint8_t *msg, size_t len,
    uint32_t receiver_index, const uint8_t *src, size_t srclen,
    uint64_t now);

/* 0 if the reply answered our last message and its cookie was taken */
int wg_cookie_consume_reply(wg_cookie_maker_t *maker,
    const wg_msg_cookie_t *reply, uint64_t now);


#endif /* _WG_COOKIE_H_INCLUDED_ */
