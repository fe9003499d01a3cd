/*
 * lwIP's heap with a limit: see mem.h.  Built into liblwip.a, so that the
 * module, lwip_unit and the fuzz target count alike.
 */

#include <malloc.h>
#include <stdlib.h>

#include "lwip/opt.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/tcp.h"
#include "lwip/pbuf.h"


wgc_mem_t  wgc_mem;


static void *
wgc_mem_account(void *p)
{
    size_t  size;

    if (p == NULL) {
        return NULL;
    }

    size = malloc_usable_size(p);

    if (wgc_mem.limit && wgc_mem.used + size > wgc_mem.limit) {
        free(p);
        wgc_mem.refused++;
        return NULL;
    }

    wgc_mem.used += size;

    if (wgc_mem.used > wgc_mem.peak) {
        wgc_mem.peak = wgc_mem.used;
    }

    return p;
}


void *
wgc_mem_malloc(size_t size)
{
    return wgc_mem_account(malloc(size));
}


void *
wgc_mem_calloc(size_t n, size_t size)
{
    return wgc_mem_account(calloc(n, size));
}


void
wgc_mem_free(void *p)
{
    wgc_mem.used -= malloc_usable_size(p);
    free(p);
}


/*
 * Under pressure: the data of a segment that would be queued out of order
 * is dropped, and so is that of one continuing the stream of a connection
 * already holding WGC_MEM_FLOOR that nginx has not taken (the part of the
 * window lwIP has not had back through tcp_recved()).  What is left goes
 * on as a bare ACK at rcv_nxt: the peer's ACKs ride on its data, and
 * dropping them would stall what we send until our retransmission timer
 * (an echo service, any request/response exchange).  Segments without
 * data, old duplicates and those of connections that keep up pass.
 */

int
wgc_mem_tcp_admit(struct tcp_pcb *pcb, struct tcp_hdr *hdr, struct pbuf *p,
    u32_t *seqno, u16_t *tcplen, u8_t *flags)
{
    u32_t  seq, held;

    if (p->tot_len == 0 || !wgc_mem_pressure() || (*flags & TCP_SYN)
        || pcb->state < SYN_RCVD || pcb->state > FIN_WAIT_2)
    {
        /* listening and TIME-WAIT pcbs are smaller: state is all they share */
        return ERR_OK;
    }

    seq = *seqno;

    if (TCP_SEQ_LEQ(seq + p->tot_len, pcb->rcv_nxt)) {
        return ERR_OK;
    }

    held = TCP_WND_MAX(pcb) - pcb->rcv_wnd;

    if (TCP_SEQ_LEQ(seq, pcb->rcv_nxt) && held < WGC_MEM_FLOOR) {
        return ERR_OK;
    }

    wgc_mem.dropped++;

    if (!(*flags & TCP_ACK)) {
        return ERR_MEM;
    }

    pbuf_realloc(p, 0);

    *flags &= (u8_t) ~TCP_FIN;
    TCPH_UNSET_FLAG(hdr, TCP_FIN);
    *tcplen = 0;
    *seqno = pcb->rcv_nxt;
    hdr->seqno = pcb->rcv_nxt;

    return ERR_OK;
}
