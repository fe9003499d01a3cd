/*
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it: the wire
 * messages, the per-peer handshake state and its transitions.
 *
 * Nothing here sends, allocates indices or reads a clock: the device passes
 * the indices and times in and moves the resulting messages.
 */

#ifndef _WG_NOISE_H_INCLUDED_
#define _WG_NOISE_H_INCLUDED_


#include <stdint.h>

#include "wg_crypto.h"


#define WG_MSG_INITIATION       1
#define WG_MSG_RESPONSE         2
#define WG_MSG_COOKIE           3
#define WG_MSG_DATA             4

#define WG_COOKIE_LEN           16
#define WG_COOKIE_NONCE_LEN     24

#define WG_MSG_INITIATION_LEN   148
#define WG_MSG_RESPONSE_LEN     92
#define WG_MSG_COOKIE_LEN       64
#define WG_MSG_DATA_HEADER_LEN  16
#define WG_MSG_DATA_MIN_LEN     (WG_MSG_DATA_HEADER_LEN + WG_AEAD_TAG_LEN)

/* the initiator may not send more often than this (replay/flood guard) */
#define WG_INITIATIONS_PER_SECOND  50


/* all integers little-endian; type is one byte followed by three zeros */

typedef struct {
    uint8_t                     mac1[WG_MAC_LEN];
    uint8_t                     mac2[WG_MAC_LEN];
} __attribute__((packed)) wg_msg_macs_t;

typedef struct {
    uint32_t                    type;
    uint32_t                    sender_index;
    uint8_t                     ephemeral[WG_DH_LEN];
    uint8_t                     encrypted_static[WG_DH_LEN
                                                 + WG_AEAD_TAG_LEN];
    uint8_t                     encrypted_timestamp[WG_TAI64N_LEN
                                                    + WG_AEAD_TAG_LEN];
    wg_msg_macs_t               macs;
} __attribute__((packed)) wg_msg_initiation_t;

typedef struct {
    uint32_t                    type;
    uint32_t                    sender_index;
    uint32_t                    receiver_index;
    uint8_t                     ephemeral[WG_DH_LEN];
    uint8_t                     encrypted_nothing[WG_AEAD_TAG_LEN];
    wg_msg_macs_t               macs;
} __attribute__((packed)) wg_msg_response_t;

typedef struct {
    uint32_t                    type;
    uint32_t                    receiver_index;
    uint8_t                     nonce[WG_COOKIE_NONCE_LEN];
    uint8_t                     encrypted_cookie[WG_COOKIE_LEN
                                                 + WG_AEAD_TAG_LEN];
} __attribute__((packed)) wg_msg_cookie_t;

typedef struct {
    uint32_t                    type;
    uint32_t                    receiver_index;
    uint64_t                    counter;
} __attribute__((packed)) wg_msg_data_t;


typedef enum {
    WG_HANDSHAKE_ZEROED = 0,
    WG_HANDSHAKE_CREATED_INITIATION,
    WG_HANDSHAKE_CONSUMED_INITIATION,
    WG_HANDSHAKE_CREATED_RESPONSE,
    WG_HANDSHAKE_CONSUMED_RESPONSE
} wg_handshake_state_t;


/* our static identity */
typedef struct {
    uint8_t                     private_key[WG_DH_LEN];
    uint8_t                     public_key[WG_DH_LEN];
    int                         has_identity;
} wg_noise_static_t;


typedef struct {
    wg_handshake_state_t        state;
    uint32_t                    local_index;
    uint32_t                    remote_index;

    uint8_t                     remote_static[WG_DH_LEN];
    uint8_t                     precomputed_static_static[WG_DH_LEN];
    uint8_t                     preshared_key[WG_AEAD_KEY_LEN];

    uint8_t                     ephemeral_private[WG_DH_LEN];
    uint8_t                     remote_ephemeral[WG_DH_LEN];
    uint8_t                     hash[WG_HASH_LEN];
    uint8_t                     chaining_key[WG_HASH_LEN];

    uint8_t                     latest_timestamp[WG_TAI64N_LEN];
    uint64_t                    last_initiation_consumption;
    int                         has_consumed_initiation;
} wg_handshake_t;


/* transport keys produced by a completed handshake */
typedef struct {
    uint8_t                     send_key[WG_AEAD_KEY_LEN];
    uint8_t                     recv_key[WG_AEAD_KEY_LEN];
    uint32_t                    local_index;
    uint32_t                    remote_index;
    int                         is_initiator;
} wg_noise_keys_t;


typedef wg_handshake_t *(*wg_noise_lookup_pt)(void *ctx,
    const uint8_t public_key[WG_DH_LEN]);


void wg_noise_static_set(wg_noise_static_t *st,
    const uint8_t private_key[WG_DH_LEN]);

void wg_noise_handshake_init(wg_handshake_t *hs, const wg_noise_static_t *st,
    const uint8_t remote_static[WG_DH_LEN], const uint8_t *psk);
/* after our private key changed */
void wg_noise_handshake_precompute(wg_handshake_t *hs,
    const wg_noise_static_t *st);
/* forget the ephemeral state, keep identity and replay timestamp */
void wg_noise_handshake_clear(wg_handshake_t *hs);
/* forget everything secret, for peer removal */
void wg_noise_handshake_wipe(wg_handshake_t *hs);

int wg_noise_create_initiation(wg_handshake_t *hs,
    const wg_noise_static_t *st, wg_msg_initiation_t *msg,
    uint32_t sender_index, uint64_t realtime_ns);
wg_handshake_t *wg_noise_consume_initiation(const wg_noise_static_t *st,
    const wg_msg_initiation_t *msg, wg_noise_lookup_pt lookup, void *ctx,
    uint64_t now);

int wg_noise_create_response(wg_handshake_t *hs, const wg_noise_static_t *st,
    wg_msg_response_t *msg, uint32_t sender_index);
int wg_noise_consume_response(wg_handshake_t *hs, const wg_noise_static_t *st,
    const wg_msg_response_t *msg);

/* derive transport keys from a finished handshake, then clear it */
int wg_noise_begin_session(wg_handshake_t *hs, wg_noise_keys_t *keys);


#endif /* _WG_NOISE_H_INCLUDED_ */
