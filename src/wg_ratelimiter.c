/*
 * Handshake rate limit per source address (token buckets).
 */

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "wg_crypto.h"
#include "wg_ratelimiter.h"


#define WG_NSEC_PER_SEC         1000000000ULL
#define WG_PACKET_COST          (WG_NSEC_PER_SEC / WG_PACKETS_PER_SECOND)
#define WG_TOKEN_MAX            (WG_PACKET_COST * WG_PACKETS_BURSTABLE)
#define WG_RATELIMITER_IDLE     WG_NSEC_PER_SEC


struct wg_ratelimiter_entry_s {
    wg_ratelimiter_entry_t     *next;
    uint64_t                    last_time;
    uint64_t                    tokens;
    uint8_t                     key[9];     /* family tag + address part */
};


static uint32_t wg_ratelimiter_hash(wg_ratelimiter_t *rl,
    const uint8_t key[9]);


void
wg_ratelimiter_init(wg_ratelimiter_t *rl)
{
    memset(rl, 0, sizeof(wg_ratelimiter_t));

    /* a keyed hash keeps remote hosts from aiming at one bucket chain */
    wg_random(rl->seed, sizeof(rl->seed));
}


void
wg_ratelimiter_free(wg_ratelimiter_t *rl)
{
    size_t                   i;
    wg_ratelimiter_entry_t  *e, *next;

    for (i = 0; i < WG_RATELIMITER_BUCKETS; i++) {
        for (e = rl->buckets[i]; e != NULL; e = next) {
            next = e->next;
            free(e);
        }

        rl->buckets[i] = NULL;
    }

    rl->count = 0;
}


static uint32_t
wg_ratelimiter_hash(wg_ratelimiter_t *rl, const uint8_t key[9])
{
    uint8_t  h[WG_MAC_LEN];
    uint32_t v;

    wg_mac(h, rl->seed, sizeof(rl->seed), key, 9);
    memcpy(&v, h, sizeof(v));

    return v % WG_RATELIMITER_BUCKETS;
}


int
wg_ratelimiter_allow(wg_ratelimiter_t *rl, int family, const void *addr,
    uint64_t now)
{
    uint8_t                  key[9];
    uint32_t                 b;
    uint64_t                 tokens;
    wg_ratelimiter_entry_t  *e;

    memset(key, 0, sizeof(key));

    /* an IPv6 host usually owns a whole /64, so that is one source */
    if (family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, addr, 4);

    } else if (family == AF_INET6) {
        key[0] = 6;
        memcpy(key + 1, addr, 8);

    } else {
        return 0;
    }

    b = wg_ratelimiter_hash(rl, key);

    for (e = rl->buckets[b]; e != NULL; e = e->next) {
        if (memcmp(e->key, key, sizeof(key)) != 0) {
            continue;
        }

        tokens = e->tokens;

        if (now > e->last_time) {
            tokens += now - e->last_time;
        }

        if (tokens > WG_TOKEN_MAX) {
            tokens = WG_TOKEN_MAX;
        }

        e->last_time = now;

        if (tokens < WG_PACKET_COST) {
            e->tokens = tokens;
            return 0;
        }

        e->tokens = tokens - WG_PACKET_COST;
        return 1;
    }

    if (rl->count >= WG_RATELIMITER_MAX) {
        return 0;
    }

    e = malloc(sizeof(wg_ratelimiter_entry_t));
    if (e == NULL) {
        return 0;
    }

    memcpy(e->key, key, sizeof(key));
    e->last_time = now;
    e->tokens = WG_TOKEN_MAX - WG_PACKET_COST;
    e->next = rl->buckets[b];
    rl->buckets[b] = e;
    rl->count++;

    return 1;
}


uint64_t
wg_ratelimiter_gc(wg_ratelimiter_t *rl, uint64_t now)
{
    size_t                   i;
    wg_ratelimiter_entry_t  *e, **prev;

    if (rl->count == 0) {
        return UINT64_MAX;
    }

    if (now < rl->next_gc) {
        return rl->next_gc;
    }

    for (i = 0; i < WG_RATELIMITER_BUCKETS; i++) {
        prev = &rl->buckets[i];

        while ((e = *prev) != NULL) {
            if (now - e->last_time > WG_RATELIMITER_IDLE
                && now > e->last_time)
            {
                *prev = e->next;
                free(e);
                rl->count--;
                continue;
            }

            prev = &e->next;
        }
    }

    rl->next_gc = now + WG_RATELIMITER_IDLE;

    return rl->count == 0 ? UINT64_MAX : rl->next_gc;
}
