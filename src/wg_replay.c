/*
 * Receive counter validation with a 8128-packet sliding window.
 */

#include <string.h>

#include "wg_replay.h"


void
wg_replay_init(wg_replay_t *r)
{
    memset(r, 0, sizeof(wg_replay_t));
}


int
wg_replay_check(wg_replay_t *r, uint64_t counter, uint64_t limit)
{
    uint64_t  word, top, i, n, bit;

    if (counter >= limit) {
        return -1;
    }

    /* older than the window: its bit may already belong to a newer word */
    if (counter + WG_REPLAY_WINDOW_SIZE < r->greatest) {
        return -1;
    }

    word = counter / WG_REPLAY_WORD_BITS;

    if (counter > r->greatest) {
        top = r->greatest / WG_REPLAY_WORD_BITS;
        n = word - top;

        if (n > WG_REPLAY_WORDS) {
            n = WG_REPLAY_WORDS;
        }

        for (i = 1; i <= n; i++) {
            r->bitmap[(top + i) % WG_REPLAY_WORDS] = 0;
        }

        r->greatest = counter;
    }

    word %= WG_REPLAY_WORDS;
    bit = (uint64_t) 1 << (counter % WG_REPLAY_WORD_BITS);

    if (r->bitmap[word] & bit) {
        return -1;
    }

    r->bitmap[word] |= bit;

    return 0;
}
