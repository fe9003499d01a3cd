/*
 * lwIP's heap with a limit (included by lwipopts.h).  Every lwIP
 * allocation goes through mem_malloc() (MEM_LIBC_MALLOC, and
 * MEMP_MEM_MALLOC routes the pools there too), so counting there counts
 * all that the stack holds: pcbs, segments queued to send, data received
 * and not yet taken by nginx, out-of-order data.
 *
 * Without a limit each stalled connection may hold its receive window
 * (up to 2 MiB: rcvwnd.h), 4 MiB out of order and its send buffer, and a
 * few hundred of them exhaust the machine.  As Linux's tcp_mem, two
 * thresholds:
 *
 *   pressure (3/4 of the limit): a connection that already holds
 *       WGC_MEM_FLOOR of received data gets no more (the data of its
 *       segments is dropped, the peer sends it again later; their ACKs
 *       and windows still count), no segment is queued out of order, and
 *       the glue reads no more for a connection with WGC_MEM_FLOOR queued
 *       to send, and receive windows shrink to WGC_MEM_FLOOR as nginx
 *       takes their data; connections that keep up go on;
 *   the limit: mem_malloc() fails, which lwIP handles as any embedded
 *       stack's out-of-memory (the packet is dropped).
 */

#ifndef _WGC_ARCH_MEM_H_INCLUDED_
#define _WGC_ARCH_MEM_H_INCLUDED_


#ifndef __ASSEMBLER__

#include <stddef.h>


#define WGC_MEM_FLOOR  (64 * 1024)


typedef struct {
    size_t         used;        /* bytes, as malloc_usable_size() has it */
    size_t         peak;
    size_t         limit;       /* 0: none */
    unsigned long  refused;     /* allocations failed at the limit */
    unsigned long  dropped;     /* segments dropped under pressure */
} wgc_mem_t;


extern wgc_mem_t  wgc_mem;


struct tcp_pcb;
struct tcp_hdr;
struct pbuf;

void *wgc_mem_malloc(size_t size);
void *wgc_mem_calloc(size_t n, size_t size);
void wgc_mem_free(void *p);
int wgc_mem_tcp_admit(struct tcp_pcb *pcb, struct tcp_hdr *hdr,
    struct pbuf *p, unsigned int *seqno, unsigned short *tcplen,
    unsigned char *flags);


static inline int
wgc_mem_pressure(void)
{
    return wgc_mem.limit && wgc_mem.used >= wgc_mem.limit / 4 * 3;
}

#endif /* __ASSEMBLER__ */


#define mem_clib_malloc                 wgc_mem_malloc
#define mem_clib_calloc                 wgc_mem_calloc
#define mem_clib_free                   wgc_mem_free

/*
 * tcp_in.c calls it for every segment of a known connection, the header's
 * sequence number already in host order and p at the payload.  It is
 * expanded there: seqno, tcplen and flags are tcp_in.c's own statics, the
 * segment as tcp_input() goes on to process it.
 */
#define LWIP_HOOK_TCP_INPACKET_PCB(pcb, hdr, optlen, opt1len, opt2, p)       \
    wgc_mem_tcp_admit((struct tcp_pcb *) (pcb), hdr, p, &seqno, &tcplen,    \
                      &flags)


#endif /* _WGC_ARCH_MEM_H_INCLUDED_ */
