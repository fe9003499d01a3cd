/*
 * Receive-window tuning: see rcvwnd.h.  Built into liblwip.a with mem.c,
 * so that lwip_unit and the fuzz target drive the same code as the engine.
 */

#include "lwip/opt.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"

#include "arch/rcvwnd.h"


static void wgc_rcvwnd_rtt(wgc_rcvwnd_t *rw, struct tcp_pcb *pcb,
    u32_t edge, uint64_t now);
static void wgc_rcvwnd_rate(wgc_rcvwnd_t *rw, struct tcp_pcb *pcb,
    uint64_t now);
static tcpwnd_size_t wgc_rcvwnd_resize(wgc_rcvwnd_t *rw,
    struct tcp_pcb *pcb, tcpwnd_size_t n);


/*
 * nginx took n bytes of pcb at now (us): the window opens by as much, more
 * if it is to grow, less if it is to shrink.  Instead of tcp_recved(),
 * which takes 64 KiB at most.
 */

void
wgc_rcvwnd_taken(wgc_rcvwnd_t *rw, struct tcp_pcb *pcb, size_t n,
    uint64_t now)
{
    u32_t          edge;
    tcpwnd_size_t  credit;

    edge = pcb->rcv_ann_right_edge;
    credit = (tcpwnd_size_t) LWIP_MIN(n, TCP_WND);

    if (pcb->flags & TF_WND_SCALE) {
        if (pcb->ooseq != NULL) {
            rw->lost = 1;
        }

        wgc_rcvwnd_rate(rw, pcb, now);
        credit = wgc_rcvwnd_resize(rw, pcb, credit);
    }

    if (credit >= TCP_WND_MAX(pcb) - pcb->rcv_wnd) {
        pcb->rcv_wnd = TCP_WND_MAX(pcb);

    } else {
        pcb->rcv_wnd += credit;
    }

    /* with nothing more to add, it announces the window, at once if it
     * opened by more than TCP_WND_UPDATE_THRESHOLD */
    tcp_recved(pcb, 0);

    if (pcb->flags & TF_WND_SCALE) {
        wgc_rcvwnd_rtt(rw, pcb, edge, now);
    }
}


/* a segment of data delivered in order; train: it came in a GRO train */

void
wgc_rcvwnd_arrived(wgc_rcvwnd_t *rw, int train)
{
    rw->segs++;

    if (train) {
        rw->segs_train++;
    }
}


/*
 * edge: the right edge announced before now.  Data beyond it needs a
 * window announced from now on, which reaches the sender, and its data
 * comes back, no sooner than a round trip later.
 */

static void
wgc_rcvwnd_rtt(wgc_rcvwnd_t *rw, struct tcp_pcb *pcb, u32_t edge,
    uint64_t now)
{
    uint32_t  sample;

    if (rw->rtt_start) {
        if (TCP_SEQ_LEQ(pcb->rcv_nxt, rw->rtt_edge)) {
            return;
        }

        sample = (uint32_t) LWIP_MIN(now - rw->rtt_start, UINT32_MAX);
        sample = LWIP_MAX(sample, 1);

        if (rw->rtt_us && sample / (2 * WGC_RCVWND_GAIN_OF(rw)) >= rw->rtt_us)
        {
            /*
             * A sender short of the window passes the edge after gain round
             * trips, one the window holds after one plus its queue: twice
             * that, several in a row, mean a longer path (a direct path
             * lost, DERP instead); waiting for the period to end would hold
             * the window to a fraction of the path for seconds
             */
            rw->rtt_long = rw->rtt_nlong ? LWIP_MIN(rw->rtt_long, sample)
                                         : sample;

            if (++rw->rtt_nlong == WGC_RCVWND_RTT_LONG_SAMPLES) {
                rw->rtt_us = 0;
                rw->rtt_next = 0;
                rw->rtt_period = now;
                rw->rtt_nlong = 0;
                sample = rw->rtt_long;
            }

        } else {
            rw->rtt_nlong = 0;
        }

        if (now - rw->rtt_period >= WGC_RCVWND_RTT_PERIOD) {
            rw->rtt_us = rw->rtt_next ? rw->rtt_next : sample;
            rw->rtt_next = 0;
            rw->rtt_period = now;
        }

        if (rw->rtt_next == 0 || sample < rw->rtt_next) {
            rw->rtt_next = sample;
        }

        if (rw->rtt_us == 0 || sample < rw->rtt_us) {
            rw->rtt_us = sample;
        }
    }

    rw->rtt_start = now;
    rw->rtt_edge = edge;
}


/* the rate over the last interval of WGC_RCVWND_ROUNDS round trips */

static void
wgc_rcvwnd_rate(wgc_rcvwnd_t *rw, struct tcp_pcb *pcb, uint64_t now)
{
    uint64_t  rate, wnd;

    if (rw->rtt_us == 0) {
        return;
    }

    if (rw->round_start == 0) {
        rw->round_start = now;
        rw->round_seq = pcb->rcv_nxt;
        return;
    }

    if (now - rw->round_start < (uint64_t) WGC_RCVWND_ROUNDS * rw->rtt_us) {
        return;
    }

    rate = (uint64_t) (u32_t) (pcb->rcv_nxt - rw->round_seq) * 1000000
           / (now - rw->round_start);

    rw->round_start = now;
    rw->round_seq = pcb->rcv_nxt;

    rw->trains = (rw->segs_train > rw->segs / 2);
    rw->segs = 0;
    rw->segs_train = 0;

    wnd = WGC_RCVWND_GAIN_OF(rw) * LWIP_MAX(rate, rw->rate) * rw->rtt_us
          / 1000000
          + WGC_RCVWND_SLACK_SEGS * pcb->mss;

    rw->rate = rate;
    rw->target = (uint32_t) LWIP_MAX(LWIP_MIN(wnd, TCP_WND), TCP_WND_INIT);
}


/*
 * The window grows to the target at once; it shrinks by the part of what
 * nginx took that is not given back, so that the right edge never moves
 * back: lwIP drops what arrives past rcv_nxt + rcv_wnd.  Returns what is
 * given back of n.
 */

static tcpwnd_size_t
wgc_rcvwnd_resize(wgc_rcvwnd_t *rw, struct tcp_pcb *pcb, tcpwnd_size_t n)
{
    tcpwnd_size_t  target, less;

    if (rw->target == 0) {
        return n;
    }

    target = rw->target;

    if (wgc_mem_pressure()) {
        target = LWIP_MIN(target, WGC_MEM_FLOOR);
    }

    if (target > pcb->rcv_wnd_max) {
        pcb->rcv_wnd += target - pcb->rcv_wnd_max;
        pcb->rcv_wnd_max = target;
        return n;
    }

    less = LWIP_MIN(n, pcb->rcv_wnd_max - target);
    pcb->rcv_wnd_max -= less;

    return n - less;
}
