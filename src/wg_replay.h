/*
 * Receive counter validation: a sliding window over the last 8128 counters,
 * kept as a ring of 64-bit words (2^13 bits) so that a step forward clears
 * whole words instead of shifting the bitmap.
 */

#ifndef _WG_REPLAY_H_INCLUDED_
#define _WG_REPLAY_H_INCLUDED_


#include <stdint.h>


#define WG_REPLAY_BITS_TOTAL    8192
#define WG_REPLAY_WORD_BITS     64
#define WG_REPLAY_WORDS         (WG_REPLAY_BITS_TOTAL / WG_REPLAY_WORD_BITS)

/* one word is always partly ahead of the greatest counter */
#define WG_REPLAY_WINDOW_SIZE   (WG_REPLAY_BITS_TOTAL - WG_REPLAY_WORD_BITS)


typedef struct {
    uint64_t                    greatest;
    uint64_t                    bitmap[WG_REPLAY_WORDS];
} wg_replay_t;


void wg_replay_init(wg_replay_t *r);

/*
 * call only after the packet was authenticated: returns 0 and records the
 * counter if it is new, inside the window and below limit, -1 otherwise
 */
int wg_replay_check(wg_replay_t *r, uint64_t counter, uint64_t limit);


#endif /* _WG_REPLAY_H_INCLUDED_ */
