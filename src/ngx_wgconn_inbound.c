
/*
 * The engine's overlay listeners: one dual-stack lwIP pcb per
 * "wgconn_listen" port.  An accepted TCP connection, or a datagram from a
 * UDP client without a session yet, becomes a flow whose other socket-pair
 * end goes to a worker with who is calling (ngx_wgconn_bridge_accept);
 * the worker serves it as if nginx's own listening socket had accepted it.
 * The set of ports follows the newest generation of workers, so a reload
 * may add or drop ports.  Ports without a listener are closed the way a
 * host closes them: lwIP answers a SYN with RST and a datagram with ICMP
 * port unreachable.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"

#include "lwip/ip.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"


typedef struct {
    ngx_wgconn_listen_spec_t   spec;
    struct tcp_pcb            *tpcb;
    struct udp_pcb            *upcb;
    uint64_t                   accepted;
    uint64_t                   dropped;
} ngx_wgconn_inbound_t;


static ngx_int_t ngx_wgconn_inbound_open(ngx_wgconn_inbound_t *l);
static void ngx_wgconn_inbound_close(ngx_wgconn_inbound_t *l);
static err_t ngx_wgconn_inbound_accept(void *arg, struct tcp_pcb *pcb,
    err_t err);
static void ngx_wgconn_inbound_recv(void *arg, struct udp_pcb *pcb,
    struct pbuf *p, const ip_addr_t *addr, u16_t port);
static void ngx_wgconn_inbound_describe(ngx_wgconn_accept_t *a,
    ngx_uint_t type, const ip_addr_t *rip, u16_t rport,
    const ip_addr_t *lip, u16_t lport);
static socklen_t ngx_wgconn_ip_to_sockaddr(const ip_addr_t *ip, u16_t port,
    ngx_sockaddr_t *sa);


static ngx_wgconn_inbound_t  ngx_wgconn_inbound[NGX_WGCONN_MAX_LISTEN];
static ngx_uint_t            ngx_wgconn_ninbound;


void
ngx_wgconn_inbound_set(ngx_wgconn_listen_spec_t *specs, ngx_uint_t n)
{
    ngx_uint_t             i, j;
    ngx_wgconn_inbound_t  *l;

    /* ports the new generation no longer serves */

    for (i = 0; i < ngx_wgconn_ninbound; /* void */ ) {
        l = &ngx_wgconn_inbound[i];

        for (j = 0; j < n; j++) {
            if (specs[j].port == l->spec.port
                && specs[j].type == l->spec.type)
            {
                break;
            }
        }

        if (j < n) {
            i++;
            continue;
        }

        ngx_wgconn_inbound_close(l);
        *l = ngx_wgconn_inbound[--ngx_wgconn_ninbound];
    }

    /* and the ones it adds */

    for (j = 0; j < n && ngx_wgconn_ninbound < NGX_WGCONN_MAX_LISTEN; j++) {

        for (i = 0; i < ngx_wgconn_ninbound; i++) {
            l = &ngx_wgconn_inbound[i];

            if (specs[j].port == l->spec.port
                && specs[j].type == l->spec.type)
            {
                break;
            }
        }

        if (i < ngx_wgconn_ninbound) {
            continue;
        }

        l = &ngx_wgconn_inbound[ngx_wgconn_ninbound];
        ngx_memzero(l, sizeof(ngx_wgconn_inbound_t));
        l->spec = specs[j];

        if (ngx_wgconn_inbound_open(l) == NGX_OK) {
            ngx_wgconn_ninbound++;
        }
    }
}


void
ngx_wgconn_inbound_close_all(void)
{
    while (ngx_wgconn_ninbound) {
        ngx_wgconn_inbound_close(&ngx_wgconn_inbound[--ngx_wgconn_ninbound]);
    }
}


ngx_uint_t
ngx_wgconn_inbound_stats(ngx_wgconn_listen_stat_t *stats, ngx_uint_t max)
{
    ngx_uint_t             i;
    ngx_wgconn_inbound_t  *l;

    for (i = 0; i < ngx_wgconn_ninbound && i < max; i++) {
        l = &ngx_wgconn_inbound[i];

        stats[i].port = l->spec.port;
        stats[i].type = l->spec.type;
        stats[i].reserved = 0;
        stats[i].accepted = l->accepted;
        stats[i].dropped = l->dropped;
    }

    return i;
}


static ngx_int_t
ngx_wgconn_inbound_open(ngx_wgconn_inbound_t *l)
{
    const char      *proto;
    struct tcp_pcb  *pcb, *lpcb;

    proto = (l->spec.type == SOCK_DGRAM) ? "udp" : "tcp";

    if (l->spec.type == SOCK_DGRAM) {
        l->upcb = udp_new_ip_type(IPADDR_TYPE_ANY);

        if (l->upcb == NULL
            || udp_bind(l->upcb, IP_ANY_TYPE, l->spec.port) != ERR_OK)
        {
            goto failed;
        }

        udp_recv(l->upcb, ngx_wgconn_inbound_recv, l);

    } else {
        pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
        if (pcb == NULL) {
            goto failed;
        }

        if (tcp_bind(pcb, IP_ANY_TYPE, l->spec.port) != ERR_OK) {
            tcp_abort(pcb);
            goto failed;
        }

        lpcb = tcp_listen_with_backlog(pcb, TCP_DEFAULT_LISTEN_BACKLOG);
        if (lpcb == NULL) {
            tcp_abort(pcb);
            goto failed;
        }

        l->tpcb = lpcb;

        tcp_arg(lpcb, l);
        tcp_accept(lpcb, ngx_wgconn_inbound_accept);
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "wgconn: serving overlay %s port %d", proto,
                  (int) l->spec.port);

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "wgconn: cannot listen on overlay %s port %d", proto,
                  (int) l->spec.port);

    if (l->upcb) {
        udp_remove(l->upcb);
        l->upcb = NULL;
    }

    return NGX_ERROR;
}


static void
ngx_wgconn_inbound_close(ngx_wgconn_inbound_t *l)
{
    /* accepted connections stay: they belong to their workers now */

    if (l->tpcb) {
        tcp_accept(l->tpcb, NULL);

        if (tcp_close(l->tpcb) != ERR_OK) {
            tcp_abort(l->tpcb);
        }

        l->tpcb = NULL;
    }

    if (l->upcb) {
        ngx_wgconn_flow_udp_detach(l->upcb);
        udp_remove(l->upcb);
        l->upcb = NULL;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "wgconn: no longer serving overlay %s port %d",
                  l->spec.type == SOCK_DGRAM ? "udp" : "tcp",
                  (int) l->spec.port);
}


static err_t
ngx_wgconn_inbound_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    ngx_wgconn_inbound_t *l = arg;

    ngx_socket_t         sv[2];
    ngx_wgconn_accept_t  a;

    if (err != ERR_OK || pcb == NULL) {
        return ERR_VAL;
    }

    ngx_wgconn_inbound_describe(&a, SOCK_STREAM, &pcb->remote_ip,
                                pcb->remote_port, &pcb->local_ip,
                                l->spec.port);

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv)
        == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_socket_errno,
                      "wgconn: socketpair() failed");
        l->dropped++;
        tcp_abort(pcb);
        return ERR_ABRT;
    }

    /* the worker's end goes first: if no worker takes it, reset */

    if (ngx_wgconn_bridge_accept(&a, sv[1]) != NGX_OK) {
        l->dropped++;
        close(sv[0]);
        tcp_abort(pcb);
        return ERR_ABRT;
    }

    l->accepted++;

    if (ngx_wgconn_flow_accept_tcp(pcb, sv[0]) != NGX_OK) {
        return ERR_ABRT;
    }

    return ERR_OK;
}


static void
ngx_wgconn_inbound_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p,
    const ip_addr_t *addr, u16_t port)
{
    ngx_wgconn_inbound_t *l = arg;

    ngx_socket_t         sv[2];
    ngx_wgconn_flow_t   *flow;
    ngx_wgconn_accept_t  a;

    flow = ngx_wgconn_flow_udp_find(pcb, addr, port, ip_current_dest_addr());

    if (flow) {
        ngx_wgconn_flow_udp_input(flow, p);
        return;
    }

    /* a new client: who it is goes to the worker with the session */

    ngx_wgconn_inbound_describe(&a, SOCK_DGRAM, addr, port,
                                ip_current_dest_addr(), l->spec.port);

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   0, sv)
        == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_socket_errno,
                      "wgconn: socketpair() failed");
        l->dropped++;
        pbuf_free(p);
        return;
    }

    flow = ngx_wgconn_flow_accept_udp(pcb, &a, sv[0]);
    if (flow == NULL) {
        l->dropped++;
        close(sv[1]);
        pbuf_free(p);
        return;
    }

    /* the first datagram waits in the socket for the worker */
    ngx_wgconn_flow_udp_input(flow, p);

    if (ngx_wgconn_bridge_accept(&a, sv[1]) != NGX_OK) {
        l->dropped++;
        ngx_wgconn_flow_close(flow);
        return;
    }

    l->accepted++;
}


static void
ngx_wgconn_inbound_describe(ngx_wgconn_accept_t *a, ngx_uint_t type,
    const ip_addr_t *rip, u16_t rport, const ip_addr_t *lip, u16_t lport)
{
    ngx_wgconn_peer_conf_t  *pcf;

    ngx_memzero(a, sizeof(ngx_wgconn_accept_t));

    a->type = type;
    a->port = lport;
    a->peer_len = ngx_wgconn_ip_to_sockaddr(rip, rport, &a->peer);
    a->local_len = ngx_wgconn_ip_to_sockaddr(lip, lport, &a->local);

    /* the source passed the allowed-IPs check: it names one peer */

    if (IP_IS_V6(rip)) {
        pcf = ngx_wgconn_engine_peer_of(AF_INET6, ip_2_ip6(rip)->addr);

    } else {
        pcf = ngx_wgconn_engine_peer_of(AF_INET, &ip_2_ip4(rip)->addr);
    }

    if (pcf) {
        ngx_memcpy(a->key, pcf->public_key, NGX_WGCONN_KEY_LEN);
        a->name_len = ngx_min(pcf->name.len, NGX_WGCONN_NAME_LEN);
        ngx_memcpy(a->name, pcf->name.data, a->name_len);
    }
}


static socklen_t
ngx_wgconn_ip_to_sockaddr(const ip_addr_t *ip, u16_t port,
    ngx_sockaddr_t *sa)
{
    if (IP_IS_V6(ip)) {
        sa->sockaddr_in6.sin6_family = AF_INET6;
        sa->sockaddr_in6.sin6_port = htons(port);
        ngx_memcpy(sa->sockaddr_in6.sin6_addr.s6_addr, ip_2_ip6(ip)->addr,
                   16);
        return sizeof(struct sockaddr_in6);
    }

    sa->sockaddr_in.sin_family = AF_INET;
    sa->sockaddr_in.sin_port = htons(port);
    sa->sockaddr_in.sin_addr.s_addr = ip4_addr_get_u32(ip_2_ip4(ip));

    return sizeof(struct sockaddr_in);
}
