/*
 * Internal layout of the device, its peers and keypairs, shared by
 * wg_device.c and wg_timers.c.  Not part of the public interface.
 */

#ifndef _WG_PEER_H_INCLUDED_
#define _WG_PEER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "wg_device.h"
#include "wg_crypto.h"
#include "wg_noise.h"
#include "wg_cookie.h"
#include "wg_replay.h"
#include "wg_allowedips.h"
#include "wg_ratelimiter.h"
#include "wg_timers.h"


#define WG_NSEC_PER_SEC             1000000000ULL
#define WG_NSEC_PER_MSEC            1000000ULL

/* the whitepaper's constants (section 6.1) */
#define WG_REKEY_AFTER_MESSAGES     (1ULL << 60)
#define WG_REJECT_AFTER_MESSAGES    (UINT64_MAX - (1ULL << 13))
#define WG_REKEY_AFTER_TIME         (120 * WG_NSEC_PER_SEC)
#define WG_REJECT_AFTER_TIME        (180 * WG_NSEC_PER_SEC)
#define WG_REKEY_ATTEMPT_TIME       (90 * WG_NSEC_PER_SEC)
#define WG_REKEY_TIMEOUT            (5 * WG_NSEC_PER_SEC)
#define WG_KEEPALIVE_TIMEOUT        (10 * WG_NSEC_PER_SEC)
#define WG_REKEY_TIMEOUT_JITTER_MAX (333 * WG_NSEC_PER_MSEC)
#define WG_MAX_TIMER_HANDSHAKES     (WG_REKEY_ATTEMPT_TIME / WG_REKEY_TIMEOUT)

#define WG_MAX_STAGED_PACKETS       128
#define WG_DEFAULT_MTU              1420
#define WG_INDEX_BUCKETS            4096

/* handshake messages per second above which we ask for cookies */
#define WG_UNDER_LOAD_HANDSHAKES    256
#define WG_UNDER_LOAD_STICKY        WG_NSEC_PER_SEC


typedef enum {
    WG_INDEX_HANDSHAKE = 1,
    WG_INDEX_KEYPAIR = 2
} wg_index_type_t;


typedef struct wg_index_entry_s  wg_index_entry_t;

struct wg_index_entry_s {
    wg_index_entry_t           *next;
    wg_peer_t                  *peer;
    uint32_t                    index;
    unsigned                    type;
    unsigned                    hashed;
};


typedef struct {
    wg_index_entry_t            entry;      /* first: entry -> keypair */
    wg_noise_keys_t             keys;
    uint64_t                    send_counter;
    wg_replay_t                 replay;
    uint64_t                    birthdate;
    unsigned                    sending_valid:1;
    unsigned                    receiving_valid:1;
} wg_keypair_t;


typedef struct {
    uint8_t                    *data;
    size_t                      len;
} wg_staged_t;


struct wg_peer_s {
    wg_peer_t                  *next;
    wg_peer_t                  *prev;
    wg_device_t                *dev;
    void                       *data;

    uint8_t                     public_key[WG_KEY_LEN];
    wg_handshake_t              handshake;
    wg_index_entry_t            handshake_entry;
    wg_cookie_maker_t           cookie;

    wg_keypair_t               *keypair_previous;
    wg_keypair_t               *keypair_current;
    wg_keypair_t               *keypair_next;

    wg_endpoint_t               endpoint;

    /* absolute deadlines, 0 = not armed */
    uint64_t                    timer_retransmit_handshake;
    uint64_t                    timer_send_keepalive;
    uint64_t                    timer_new_handshake;
    uint64_t                    timer_zero_key_material;
    uint64_t                    timer_persistent_keepalive;

    unsigned                    timer_handshake_attempts;
    unsigned                    persistent_keepalive_interval;  /* s */
    unsigned                    timer_need_another_keepalive:1;
    unsigned                    sent_lastminute_handshake:1;
    unsigned                    has_sent_handshake:1;
    unsigned                    handshake_unanswered:1;

    uint64_t                    last_sent_handshake;
    uint64_t                    last_handshake;

    wg_staged_t                 staged[WG_MAX_STAGED_PACKETS];
    unsigned                    staged_head;
    unsigned                    staged_count;

    uint64_t                    rx_bytes;
    uint64_t                    tx_bytes;
};


struct wg_device_s {
    wg_device_ops_t             ops;
    wg_noise_static_t           static_identity;
    wg_cookie_checker_t         cookie_checker;
    wg_ratelimiter_t            ratelimiter;
    wg_allowedips_t             allowedips;
    wg_peer_t                  *peers;
    wg_index_entry_t           *index[WG_INDEX_BUCKETS];
    wg_device_stats_t           stats;

    size_t                      mtu;
    uint64_t                    now;        /* latest time passed in */

    int                         under_load_forced;
    uint64_t                    under_load_until;
    uint64_t                    load_window_start;
    unsigned                    load_count;

    /* one outgoing message: header, largest packet, padding, tag */
    uint8_t                     scratch[WG_MSG_DATA_HEADER_LEN
                                        + WG_MAX_PACKET + 16
                                        + WG_AEAD_TAG_LEN];
};


/* wg_device.c, called by the timers */
void wg_peer_send_handshake_initiation(wg_peer_t *peer, int is_retry,
    uint64_t now);
void wg_peer_send_keepalive(wg_peer_t *peer, uint64_t now);
void wg_peer_purge_staged(wg_peer_t *peer);
void wg_peer_clear_keys(wg_peer_t *peer);
void wg_peer_event(wg_peer_t *peer, wg_event_t ev);


#endif /* _WG_PEER_H_INCLUDED_ */
