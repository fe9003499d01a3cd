
/*
 * lwIP on one layer-3 netif: the node's overlay addresses.  Packets lwIP
 * sends go to the WireGuard device (routed by allowed IPs); packets the
 * device decrypts come in through ip_input().  lwIP's clock is nginx's
 * cached time and its timeouts run from one nginx timer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/priv/tcp_priv.h"

#include <sodium.h>


/* defined by patches/lwip-tcp-resent.patch (no lwIP header declares it) */
extern u64_t  tcp_segs_resent;


static err_t ngx_wgconn_netif_init(struct netif *netif);
static err_t ngx_wgconn_netif_output4(struct netif *netif, struct pbuf *p,
    const ip4_addr_t *ipaddr);
static err_t ngx_wgconn_netif_output6(struct netif *netif, struct pbuf *p,
    const ip6_addr_t *ipaddr);
static err_t ngx_wgconn_netif_output(struct netif *netif, struct pbuf *p);
static void ngx_wgconn_netstack_timer(ngx_event_t *ev);


static struct netif   ngx_wgconn_netif;
static wg_device_t   *ngx_wgconn_netstack_dev;
static ngx_event_t    ngx_wgconn_netstack_ev;
static ngx_uint_t     ngx_wgconn_netstack_batch;
static ngx_connection_t  ngx_wgconn_netstack_dummy;
static ngx_log_t     *ngx_wgconn_netstack_log;
static ngx_uint_t     ngx_wgconn_lwip_ready;
static u_char         ngx_wgconn_out_buf[65536];


ngx_int_t
ngx_wgconn_netstack_init(ngx_cycle_t *cycle, ngx_wgconn_conf_t *wcf,
    wg_device_t *dev)
{
    s8_t         idx;
    ngx_uint_t   i;
    ngx_cidr_t  *addr;
    ip4_addr_t   ip4, mask4, gw4;
    ip6_addr_t   ip6;

    ngx_wgconn_netstack_dev = dev;
    ngx_wgconn_netstack_log = cycle->log;
    wgc_mem.limit = wcf->memory_limit;

    /* lwIP keeps global state: initialize it once per process */

    if (!ngx_wgconn_lwip_ready) {
        lwip_init();
        ngx_wgconn_lwip_ready = 1;
    }

    ip4_addr_set_zero(&ip4);
    ip4_addr_set_u32(&mask4, PP_HTONL(0xffffffffUL));
    ip4_addr_set_zero(&gw4);

    addr = wcf->addresses.elts;

    for (i = 0; i < wcf->addresses.nelts; i++) {
        if (addr[i].family == AF_INET) {
            ip4_addr_set_u32(&ip4, addr[i].u.in.addr);
        }
    }

    if (netif_add(&ngx_wgconn_netif, &ip4, &mask4, &gw4, NULL,
                  ngx_wgconn_netif_init, ip_input)
        == NULL)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "wgconn: netif_add() failed");
        return NGX_ERROR;
    }

    ngx_wgconn_netif.mtu = (u16_t) wcf->mtu;
    ngx_wgconn_netif.mtu6 = (u16_t) wcf->mtu;

    for (i = 0; i < wcf->addresses.nelts; i++) {
        if (addr[i].family != AF_INET6) {
            continue;
        }

        IP6_ADDR(&ip6, 0, 0, 0, 0);
        ngx_memcpy(&ip6.addr, addr[i].u.in6.addr.s6_addr, 16);
        ip6_addr_clear_zone(&ip6);

        if (netif_add_ip6_address(&ngx_wgconn_netif, &ip6, &idx) != ERR_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "wgconn: too many IPv6 addresses");
            return NGX_ERROR;
        }

        /* no duplicate address detection on a point-to-point overlay */
        netif_ip6_addr_set_state(&ngx_wgconn_netif, idx, IP6_ADDR_PREFERRED);
    }

    netif_set_default(&ngx_wgconn_netif);
    netif_set_link_up(&ngx_wgconn_netif);
    netif_set_up(&ngx_wgconn_netif);

    /* timer debug logs read ev->data as a connection */
    ngx_wgconn_netstack_dummy.fd = (ngx_socket_t) -1;

    ngx_wgconn_netstack_ev.data = &ngx_wgconn_netstack_dummy;
    ngx_wgconn_netstack_ev.handler = ngx_wgconn_netstack_timer;
    ngx_wgconn_netstack_ev.log = cycle->log;
    ngx_wgconn_netstack_ev.cancelable = 1;

    ngx_add_timer(&ngx_wgconn_netstack_ev, 10);

    return NGX_OK;
}


/* inbound UDP answers from the address the datagram was sent to */

void *
ngx_wgconn_netstack_netif(void)
{
    return &ngx_wgconn_netif;
}


void
ngx_wgconn_netstack_done(void)
{
    if (ngx_wgconn_netstack_ev.timer_set) {
        ngx_del_timer(&ngx_wgconn_netstack_ev);
    }

    ngx_wgconn_netstack_input_done();

    if (ngx_wgconn_netstack_dev) {
        netif_remove(&ngx_wgconn_netif);
        ngx_wgconn_netstack_dev = NULL;
    }
}


/* for the status page, once a second: lwIP counts only what it resent */

void
ngx_wgconn_netstack_tcp_counts(uint64_t *active, uint64_t *time_wait,
    uint64_t *resent)
{
    struct tcp_pcb  *pcb;

    *active = 0;
    *time_wait = 0;
    *resent = tcp_segs_resent;

    for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next) {
        (*active)++;
    }

    for (pcb = tcp_tw_pcbs; pcb; pcb = pcb->next) {
        (*time_wait)++;
    }
}


void
ngx_wgconn_netstack_input(u_char *pkt, size_t len)
{
    struct pbuf  *p;

    if (len > 0xffff) {
        return;
    }

    p = pbuf_alloc(PBUF_RAW, (u16_t) len, PBUF_RAM);
    if (p == NULL) {
        return;
    }

    ngx_memcpy(p->payload, pkt, len);

    /* the packets of one read are a batch: see input_done() */
    if (!ngx_wgconn_netstack_batch) {
        ngx_wgconn_netstack_batch = 1;
        tcp_ack_batch_begin();
    }

    if (ngx_wgconn_netif.input(p, &ngx_wgconn_netif) != ERR_OK) {
        pbuf_free(p);
    }
}


/*
 * The end of a read of the UDP socket: the pure ACKs its packets called
 * for leave now, one per connection, queued before the datagrams go out
 */

void
ngx_wgconn_netstack_input_done(void)
{
    if (ngx_wgconn_netstack_batch) {
        ngx_wgconn_netstack_batch = 0;
        ngx_wgconn_flow_batch_done();
        tcp_ack_batch_flush();
    }
}


ngx_uint_t
ngx_wgconn_netstack_batching(void)
{
    return ngx_wgconn_netstack_batch;
}


static err_t
ngx_wgconn_netif_init(struct netif *netif)
{
    netif->name[0] = 'w';
    netif->name[1] = 'g';
    netif->output = ngx_wgconn_netif_output4;
    netif->output_ip6 = ngx_wgconn_netif_output6;
    netif->flags = 0;

    return ERR_OK;
}


static err_t
ngx_wgconn_netif_output4(struct netif *netif, struct pbuf *p,
    const ip4_addr_t *ipaddr)
{
    return ngx_wgconn_netif_output(netif, p);
}


static err_t
ngx_wgconn_netif_output6(struct netif *netif, struct pbuf *p,
    const ip6_addr_t *ipaddr)
{
    return ngx_wgconn_netif_output(netif, p);
}


static err_t
ngx_wgconn_netif_output(struct netif *netif, struct pbuf *p)
{
    u_char  *data;

    if (ngx_wgconn_netstack_dev == NULL) {
        return ERR_IF;
    }

    /* TCP segments come as one pbuf (LWIP_NETIF_TX_SINGLE_PBUF) */

    if (p->next == NULL) {
        data = p->payload;

    } else {
        data = ngx_wgconn_out_buf;
        pbuf_copy_partial(p, data, p->tot_len, 0);
    }

    /* a packet the device drops is lost as on any link: TCP resends it */

    (void) wg_device_output(ngx_wgconn_netstack_dev, data, p->tot_len,
                            ngx_wgconn_now());

    return ERR_OK;
}


#ifdef WGC_LWIP_TRACE

#include "lwip/priv/tcp_priv.h"
#include <stdarg.h>

void
wgc_lwip_diag(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "%lu lwip: ", (unsigned long) ngx_current_msec);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}


static void
ngx_wgconn_netstack_trace(void)
{
    static ngx_msec_t  last;
    struct tcp_pcb    *pcb;
    struct tcp_seg    *seg;
    ngx_uint_t         nun;

    if (ngx_current_msec - last < 100) {
        return;
    }

    last = ngx_current_msec;

    for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next) {
        nun = 0;
        for (seg = pcb->unacked; seg; seg = seg->next) {
            nun++;
        }
        fprintf(stderr, "%lu pcb %p st %d cwnd %u ssth %u sndwnd %u "
                "inflight %u unacked %lu qlen %u nrtx %d rto %d rtime %d "
                "sa %d sv %d dup %d flags %x lastack %u nxt %u\n",
                (unsigned long) ngx_current_msec, (void *) pcb,
                (int) pcb->state, (unsigned) pcb->cwnd,
                (unsigned) pcb->ssthresh, (unsigned) pcb->snd_wnd,
                (unsigned) (pcb->snd_nxt - pcb->lastack), (unsigned long) nun,
                (unsigned) pcb->snd_queuelen, (int) pcb->nrtx,
                (int) pcb->rto, (int) pcb->rtime, (int) pcb->sa,
                (int) pcb->sv, (int) pcb->dupacks, (unsigned) pcb->flags,
                (unsigned) pcb->lastack, (unsigned) pcb->snd_nxt);
    }
}

#endif


static void
ngx_wgconn_netstack_timer(ngx_event_t *ev)
{
    u32_t  sleep;

    sys_check_timeouts();
    ngx_wgconn_flow_mem_wake();

#ifdef WGC_LWIP_TRACE
    ngx_wgconn_netstack_trace();
#endif

    sleep = sys_timeouts_sleeptime();

#ifdef WGC_LWIP_TRACE
    if (sleep > 20) {
        sleep = 20;
    }
#endif

    if (sleep == SYS_TIMEOUTS_SLEEPTIME_INFINITE || sleep > 250) {
        sleep = 250;
    }

    ngx_add_timer(ev, sleep ? sleep : 1);
}


/* lwIP's platform hooks */

u32_t
sys_now(void)
{
    return (u32_t) ngx_current_msec;
}


unsigned int
wgc_lwip_rand(void)
{
    return randombytes_random();
}


void
wgc_lwip_assert(const char *msg, const char *file, int line)
{
    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "wgconn: lwIP assertion \"%s\" failed at %s:%d",
                  msg, file, line);
    ngx_debug_point();
    abort();
}
