/*
 * The receive window of each connection sized to its path: a few times
 * the data the path delivers in its shortest round trip (its
 * bandwidth-delay product), from TCP_WND_INIT up to TCP_WND.
 *
 * Why not always TCP_WND: the window is all a receiver has to keep its
 * sender from queueing the excess in front of its own bottleneck.  Debian's
 * wireguard-go, reading its TUN device slower than its kernel writes into
 * it, sent us 300-330 Mbit/s with a window of 2 MiB and 400-450 with one
 * of 64-128 KiB (0.9x and 1.3x of what it sends its own kernel); a window
 * fixed that small would cap long paths (128 KiB over a 50 ms DERP path is
 * 21 Mbit/s).  And the window is what a connection nginx does not read
 * from may hold.
 *
 * Why not Linux's tcp_rcv_space_adjust(), which makes the window twice
 * what the application took in the last round trip, and never shrinks it:
 * each time a retransmission fills a hole, all that was queued behind it
 * is delivered at once, Linux's estimate jumps to the whole window and the
 * window to its maximum (measured: 2 MiB within the first second, against
 * the same wireguard-go).
 *
 * So, instead, as BBR sizes what a sender keeps in flight:
 *   round trip: the receiver has no timestamps (lwIP sends none); it times
 *       how long the sender takes to send past the right edge announced
 *       before a window update, which is at least a round trip, and one
 *       when the window is what holds the sender; the smallest sample of the
 *       last WGC_RCVWND_RTT_PERIOD is kept, since once the window holds
 *       the sender the queue it builds lengthens every sample; a path
 *       that got longer is followed after a few samples in a row;
 *   rate: what rcv_nxt advanced in WGC_RCVWND_ROUNDS round trips, the
 *       higher of the last two such intervals, so that a hole being
 *       repaired does not shrink the window;
 *   the window: WGC_RCVWND_GAIN times the rate times the round trip;
 *       while the window is the limit the sender adds no queue, the rate
 *       is the window per round trip and the window grows that many times
 *       each interval, until the path's bottleneck holds the rate and a
 *       queue forms.  Once data of the connection arrived out of order
 *       (the sender's own queue overflowed, or the path loses), only
 *       WGC_RCVWND_GAIN_LOSS times: Debian's wireguard-go sending on its
 *       own core moved 1.2-2x as much with twice as with four times.
 *       Four before that, because round trips vary far above their
 *       minimum when the peer's WireGuard waits for a core (the same two
 *       cores): there the current wireguard-go moved 0.6-1.0x as much
 *       with twice.
 *       Sixteen while most of the data arrives in trains (datagrams its
 *       kernel took at once, UDP GSO, reach us as one GRO train): such a
 *       sender sends what it has batched, then waits for a core, so its
 *       round trips run far above their minimum and four of the smallest
 *       leave it idle (the current wireguard-go on the same two cores:
 *       download 2-15% and inbound upload 8-18% more with sixteen).  A
 *       sender that hands its kernel one datagram at a time, as Debian's
 *       wireguard-go does, only builds a longer queue in front of its
 *       pipeline with more (17-25% less with sixteen), and keeps four.
 *       It grows at once and shrinks by what nginx takes (the part not
 *       given back), so that the announced edge never moves back.
 *   Under memory pressure (mem.h) the window shrinks to WGC_MEM_FLOOR.
 */

#ifndef _WGC_ARCH_RCVWND_H_INCLUDED_
#define _WGC_ARCH_RCVWND_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define WGC_RCVWND_RTT_PERIOD  10000000      /* us */
/* samples in a row twice the gain times the round trip: a longer path */
#define WGC_RCVWND_RTT_LONG_SAMPLES  8
#define WGC_RCVWND_ROUNDS      2
/* the window over the rate times the round trip; once data was lost;
 * while most of it arrives in trains */
#define WGC_RCVWND_GAIN        4
#define WGC_RCVWND_GAIN_LOSS   2
#define WGC_RCVWND_GAIN_TRAINS 16
#define WGC_RCVWND_GAIN_OF(rw)                                                \
    ((rw)->lost ? WGC_RCVWND_GAIN_LOSS                                        \
                : (rw)->trains ? WGC_RCVWND_GAIN_TRAINS : WGC_RCVWND_GAIN)
/* above the gain times the rate times the round trip: room for a burst,
 * as Linux keeps */
#define WGC_RCVWND_SLACK_SEGS  16


typedef struct {
    uint64_t  rtt_start;    /* us: when the sample began; 0: none */
    uint32_t  rtt_edge;     /* the right edge announced before then */
    uint32_t  rtt_us;       /* smallest of this period and the last */
    uint32_t  rtt_next;     /* smallest of this period; 0: none yet */
    uint64_t  rtt_period;   /* us: when this period began */
    uint32_t  rtt_long;     /* smallest of the long samples in a row */
    uint32_t  rtt_nlong;    /* how many */
    uint64_t  round_start;  /* us: when the rate's interval began */
    uint32_t  round_seq;    /* rcv_nxt then */
    uint64_t  rate;         /* bytes/s of the last interval */
    uint32_t  target;       /* the window wanted; 0: none yet */
    uint32_t  segs;         /* segments delivered in this interval */
    uint32_t  segs_train;   /* of them, those that came in a train */
    unsigned  lost:1;       /* data arrived out of order */
    unsigned  trains:1;     /* most of the last interval's came in trains */
} wgc_rcvwnd_t;


struct tcp_pcb;

void wgc_rcvwnd_taken(wgc_rcvwnd_t *rw, struct tcp_pcb *pcb, size_t n,
    uint64_t now);
void wgc_rcvwnd_arrived(wgc_rcvwnd_t *rw, int train);


#endif /* _WGC_ARCH_RCVWND_H_INCLUDED_ */
