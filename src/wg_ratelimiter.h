/*
 * Handshake rate limit per source address: a token bucket per IPv4 address
 * or IPv6 /64, refilled at WG_PACKETS_PER_SECOND with a burst of
 * WG_PACKETS_BURSTABLE.  Time is passed in; nothing here reads a clock.
 */

#ifndef _WG_RATELIMITER_H_INCLUDED_
#define _WG_RATELIMITER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define WG_PACKETS_PER_SECOND   20
#define WG_PACKETS_BURSTABLE    5
#define WG_RATELIMITER_MAX      16384   /* tracked sources */
#define WG_RATELIMITER_BUCKETS  4096


typedef struct wg_ratelimiter_entry_s  wg_ratelimiter_entry_t;

typedef struct {
    wg_ratelimiter_entry_t     *buckets[WG_RATELIMITER_BUCKETS];
    size_t                      count;
    uint64_t                    next_gc;
    uint8_t                     seed[16];
} wg_ratelimiter_t;


void wg_ratelimiter_init(wg_ratelimiter_t *rl);
void wg_ratelimiter_free(wg_ratelimiter_t *rl);

/* 1 if a handshake from this address may be processed now */
int wg_ratelimiter_allow(wg_ratelimiter_t *rl, int family, const void *addr,
    uint64_t now);

/* forget idle sources; returns the next time this is worth calling */
uint64_t wg_ratelimiter_gc(wg_ratelimiter_t *rl, uint64_t now);


#endif /* _WG_RATELIMITER_H_INCLUDED_ */
