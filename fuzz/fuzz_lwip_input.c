/*
 * libFuzzer target: what a peer may send once WireGuard has decrypted it,
 * arbitrary IPv4/IPv6 packets, into lwIP as the engine configures it (our
 * lwipopts.h and patches, one netif with the node's addresses, a TCP
 * listener that accepts, reads and answers, a UDP listener, the engine's
 * ACK batching).  Inner checksums are not verified (WireGuard authenticated
 * the packet), so the fuzzer reaches TCP states without computing them.
 *
 *   input = op*, op = kind:u8 len:u16(le) data[len]
 *     kind % 3 == 0  one packet, data, into ip_input()
 *     kind % 3 == 1  the same inside an ACK batch (begin, input, flush)
 *     kind % 3 == 2  time passes by data[0] * 50 ms; lwIP's timers run
 *
 * An input whose first byte is 0xc0 or more (its kind is that byte modulo
 * 3) runs with lwIP's heap limited to 4-60 KiB more than it holds at the
 * start (src/arch/mem.h): under pressure, and out of memory.
 *
 * State does not carry over between inputs, so that one artifact reproduces
 * a finding on its own: at the end of each, every pcb is aborted, the
 * reassembly timers run out, the neighbour tables are emptied, and what
 * lwIP keeps counting (the slow timer's phase, its tick, our random
 * numbers) starts again where the first input found it; the clock goes on,
 * but every timer is then due a whole interval ahead, as at the start
 * (lwIP compares times only with each other).  With FUZZ_LWIP_REPLAY set
 * in the environment each input runs twice and what lwIP sent must be the
 * same both times, or the target aborts: CI runs the corpus so, which
 * shows that the reset holds.  (With IPv6 reassembly state carried over,
 * LeakSanitizer reports pending fragments as lost: lwIP chains them through
 * a packed helper 4 bytes before the 8-aligned fragment header, a pointer
 * LeakSanitizer does not scan for unless use_unaligned=1.  They are freed
 * when the datagram completes or its timer runs out.)
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "lwip/timeouts.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/ip4_frag.h"
#include "lwip/ip6_frag.h"
#include "lwip/nd6.h"

#include "lwip_node.h"
#include "arch/rcvwnd.h"


static struct netif      fz_netif;
static struct udp_pcb   *fz_udp;
static u32_t             fz_now;
static wgc_rcvwnd_t      fz_rcvwnd;
static uint64_t          fz_rcvwnd_clock;
static unsigned int      fz_rand;
static uint64_t          fz_digest;    /* of what lwIP sent */


u32_t
sys_now(void)
{
    return fz_now;
}


unsigned int
wgc_lwip_rand(void)
{
    /* deterministic, so that a crash reproduces */
    fz_rand = fz_rand * 1103515245 + 12345;
    return fz_rand;
}


void
wgc_lwip_assert(const char *msg, const char *file, int line)
{
    (void) msg;
    (void) file;
    (void) line;

    /* an lwIP assertion reached from the wire is a finding */
    abort();
}


/*
 * FNV-1a over each packet sent, except what lwIP numbers across its whole
 * life and a reset cannot rewind: the IPv4 identification (and so the
 * header checksum) and the IPv6 fragment identification
 */

static err_t
fz_output(struct netif *netif, struct pbuf *p)
{
    u16_t     i, len;
    uint8_t   pkt[1500];
    uint64_t  h;

    (void) netif;

    len = pbuf_copy_partial(p, pkt, LWIP_MIN(p->tot_len, sizeof(pkt)), 0);

    if (len >= 20 && pkt[0] >> 4 == 4) {
        memset(&pkt[4], 0, 2);
        memset(&pkt[10], 0, 2);

    } else if (len >= 48 && pkt[0] >> 4 == 6 && pkt[6] == IP6_NEXTH_FRAGMENT)
    {
        memset(&pkt[44], 0, 4);
    }

    h = fz_digest ^ p->tot_len;

    for (i = 0; i < len; i++) {
        h = (h ^ pkt[i]) * 0x100000001b3ULL;
    }

    fz_digest = h;

    return ERR_OK;
}


static err_t
fz_output4(struct netif *netif, struct pbuf *p, const ip4_addr_t *ip)
{
    (void) ip;
    return fz_output(netif, p);
}


static err_t
fz_output6(struct netif *netif, struct pbuf *p, const ip6_addr_t *ip)
{
    (void) ip;
    return fz_output(netif, p);
}


/*
 * A request starting with 'B' is answered with 24 KiB, many segments in
 * flight, so that loss recovery (SACK, retransmissions) has work to do;
 * anything else with a short answer.
 */

static err_t
fz_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    size_t             len;
    const char        *data;
    static const char  reply[] = "HTTP/1.1 200 OK\r\n\r\nok\n";
    static char        bulk[24 * 1024];

    (void) arg;
    (void) err;

    if (p == NULL) {
        tcp_close(pcb);
        return ERR_OK;
    }

    if (pbuf_get_at(p, 0) == 'B') {
        data = bulk;
        len = sizeof(bulk);

    } else {
        data = reply;
        len = sizeof(reply) - 1;
    }

    /* one tuning state for all connections: only numbers, any mix is
     * fair input; the clock in ms as microseconds, plus the data; odd
     * lengths count as data in trains, so both gains are driven */
    wgc_rcvwnd_arrived(&fz_rcvwnd, p->tot_len & 1);
    fz_rcvwnd_clock += p->tot_len;
    wgc_rcvwnd_taken(&fz_rcvwnd, pcb, p->tot_len,
                     (uint64_t) fz_now * 1000 + fz_rcvwnd_clock);
    pbuf_free(p);

    (void) tcp_write(pcb, data, (u16_t) LWIP_MIN(len, tcp_sndbuf(pcb)),
                     TCP_WRITE_FLAG_COPY);
    (void) tcp_output(pcb);

    return ERR_OK;
}


static err_t
fz_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    (void) arg;

    if (err != ERR_OK || pcb == NULL) {
        return ERR_VAL;
    }

    tcp_recv(pcb, fz_recv);
    return ERR_OK;
}


static void
fz_udp_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p,
    const ip_addr_t *addr, u16_t port)
{
    u16_t         len;
    struct pbuf  *q;

    (void) arg;

    /*
     * as the engine does: the datagram is copied out and freed, the answer
     * is a new pbuf sent from the address the datagram was sent to
     */
    len = p->tot_len;
    q = pbuf_alloc(PBUF_TRANSPORT, len, PBUF_RAM);

    if (q != NULL) {
        pbuf_copy_partial(p, q->payload, len, 0);
        (void) udp_sendto_if_src(pcb, q, addr, port, &fz_netif,
                                 ip_current_dest_addr());
        pbuf_free(q);
    }

    pbuf_free(p);
}


static void
fz_init(void)
{
    struct tcp_pcb  *pcb;

    lwip_node_up(&fz_netif, fz_output4, fz_output6);

    pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
    tcp_bind(pcb, IP_ANY_TYPE, 80);
    pcb = tcp_listen_with_backlog(pcb, 16);
    tcp_accept(pcb, fz_accept);

    fz_udp = udp_new_ip_type(IPADDR_TYPE_ANY);
    udp_bind(fz_udp, IP_ANY_TYPE, 53);
    udp_recv(fz_udp, fz_udp_recv, NULL);
}


static void
fz_input(const uint8_t *data, size_t len)
{
    struct pbuf  *p;

    if (len == 0 || len > 0xffff) {
        return;
    }

    p = pbuf_alloc(PBUF_RAW, (u16_t) len, PBUF_RAM);
    if (p == NULL) {
        return;
    }

    memcpy(p->payload, data, len);

    if (fz_netif.input(p, &fz_netif) != ERR_OK) {
        pbuf_free(p);
    }
}


static void
fz_limit(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] >= 0xc0) {
        wgc_mem.limit = wgc_mem.used + 4096 + ((data[0] >> 3) & 7) * 8192;
    }
}


static void
fz_reset(void)
{
    int    i;
    u32_t  ticks;

    wgc_mem.limit = 0;
    memset(&fz_rcvwnd, 0, sizeof(fz_rcvwnd));
    fz_rcvwnd_clock = 0;

    if (!lwip_node_demux_consistent()) {
        /* a connection its segments cannot find: as an assertion */
        abort();
    }

    while (tcp_active_pcbs != NULL) {
        tcp_abort(tcp_active_pcbs);
    }

    while (tcp_tw_pcbs != NULL) {
        tcp_abort(tcp_tw_pcbs);
    }

    /* past every reassembly and neighbour timeout */
    for (i = 0; i < 64; i++) {
        fz_now += 10000;
        ip_reass_tmr();
        ip6_reass_tmr();
        sys_check_timeouts();
    }

    nd6_cleanup_netif(&fz_netif);

    /*
     * tcp_tmr() runs the slow timer every other call: call it (with no
     * pcb left, it only counts) until a call did not, so that the next
     * input's first call does, as the first input's did
     */
    do {
        ticks = tcp_ticks;
        tcp_tmr();
    } while (tcp_ticks != ticks);

    tcp_ticks = 0;
    fz_rand = 12345;
}


static void
fz_run(const uint8_t *data, size_t size)
{
    size_t   len;
    uint8_t  kind;

    fz_limit(data, size);

    while (size >= 3) {
        kind = data[0] % 3;
        len = (size_t) data[1] | ((size_t) data[2] << 8);
        data += 3;
        size -= 3;

        if (len > size) {
            len = size;
        }

        switch (kind) {

        case 0:
            fz_input(data, len);
            break;

        case 1:
            tcp_ack_batch_begin();
            fz_input(data, len);
            tcp_ack_batch_flush();
            break;

        default:
            fz_now += (len ? data[0] : 1) * 50;
            sys_check_timeouts();
            break;
        }

        data += len;
        size -= len;
    }

    fz_reset();
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t    first;
    static int  ready, replay;

    if (!ready) {
        fz_init();
        fz_reset();
        replay = getenv("FUZZ_LWIP_REPLAY") != NULL;
        ready = 1;
    }

    fz_digest = 0xcbf29ce484222325ULL;
    fz_run(data, size);

    if (replay) {
        first = fz_digest;
        fz_digest = 0xcbf29ce484222325ULL;
        fz_run(data, size);

        if (fz_digest != first) {
            fprintf(stderr, "fuzz_lwip_input: the same input sent other "
                    "packets when run again: state carried over\n");
            abort();
        }
    }

    return 0;
}
