
/*
 * The node's UDP socket on nginx's event loop.  Datagrams are read in
 * batches (recvmmsg) until the socket is drained, and written in batches
 * (sendmmsg) from a transmit ring that is flushed at the end of each event
 * loop iteration (a posted event) or when a batch is full.  When the kernel
 * buffer is full the ring waits for the write event instead of dropping:
 * lwIP sends bursts of up to a window's worth of segments, and a dropped
 * burst costs a retransmission timeout.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"


#define NGX_WGCONN_UDP_BATCH     64
#define NGX_WGCONN_UDP_RING      4096
#define NGX_WGCONN_UDP_SOCKBUF   (8 * 1024 * 1024)


struct ngx_wgconn_udp_s {
    ngx_connection_t          *c;
    ngx_wgconn_udp_recv_pt     recv;
    void                      *data;
    ngx_log_t                 *log;

    /* transmit ring */
    u_char                    *slots;      /* NGX_WGCONN_UDP_RING * slot */
    size_t                     slot;
    struct sockaddr_in6       *to;
    uint16_t                  *lens;
    ngx_uint_t                 head;       /* next to send */
    ngx_uint_t                 count;      /* queued */
    ngx_event_t                flush;

    /* receive batch */
    u_char                    *rbufs;
    wg_endpoint_t             *from;

    uint64_t                   tx_dropped;
    uint64_t                   rx_truncated;
};


static void ngx_wgconn_udp_read(ngx_event_t *rev);
static void ngx_wgconn_udp_write(ngx_event_t *wev);
static void ngx_wgconn_udp_flush_handler(ngx_event_t *ev);
static void ngx_wgconn_udp_flush(ngx_wgconn_udp_t *u);
static void ngx_wgconn_udp_sockbuf(ngx_socket_t s, int opt, int force);


ngx_wgconn_udp_t *
ngx_wgconn_udp_open(ngx_cycle_t *cycle, in_port_t port, size_t max_msg,
    ngx_wgconn_udp_recv_pt recv, void *data)
{
    int                   zero;
    ngx_socket_t          s;
    ngx_connection_t     *c;
    ngx_wgconn_udp_t     *u;
    struct sockaddr_in6   sin6;

    u = ngx_pcalloc(cycle->pool, sizeof(ngx_wgconn_udp_t));
    if (u == NULL) {
        return NULL;
    }

    u->slot = ngx_align(max_msg, 64);
    u->slots = ngx_palloc(cycle->pool, NGX_WGCONN_UDP_RING * u->slot);
    u->to = ngx_palloc(cycle->pool,
                       NGX_WGCONN_UDP_RING * sizeof(struct sockaddr_in6));
    u->lens = ngx_palloc(cycle->pool, NGX_WGCONN_UDP_RING * sizeof(uint16_t));
    u->rbufs = ngx_palloc(cycle->pool, NGX_WGCONN_UDP_BATCH * u->slot);
    u->from = ngx_palloc(cycle->pool,
                         NGX_WGCONN_UDP_BATCH * sizeof(wg_endpoint_t));

    if (u->slots == NULL || u->to == NULL || u->lens == NULL
        || u->rbufs == NULL || u->from == NULL)
    {
        return NULL;
    }

    u->recv = recv;
    u->data = data;
    u->log = cycle->log;

    /* one dual-stack socket carries IPv4 and IPv6 peers */

    s = ngx_socket(AF_INET6, SOCK_DGRAM, 0);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "wgconn: " ngx_socket_n " failed");
        return NULL;
    }

    zero = 0;
    (void) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(int));

    ngx_wgconn_udp_sockbuf(s, SO_RCVBUF, SO_RCVBUFFORCE);
    ngx_wgconn_udp_sockbuf(s, SO_SNDBUF, SO_SNDBUFFORCE);

    ngx_memzero(&sin6, sizeof(struct sockaddr_in6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);

    if (bind(s, (struct sockaddr *) &sin6, sizeof(sin6)) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "wgconn: bind() to udp port %d failed", (int) port);
        ngx_close_socket(s);
        return NULL;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_close_socket(s);
        return NULL;
    }

    c = ngx_get_connection(s, cycle->log);
    if (c == NULL) {
        ngx_close_socket(s);
        return NULL;
    }

    c->type = SOCK_DGRAM;
    c->data = u;
    c->read->handler = ngx_wgconn_udp_read;
    c->write->handler = ngx_wgconn_udp_write;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    if (ngx_add_conn(c) == NGX_ERROR) {
        ngx_close_connection(c);
        return NULL;
    }

    u->c = c;

    u->flush.handler = ngx_wgconn_udp_flush_handler;
    u->flush.data = c;
    u->flush.log = cycle->log;

    return u;
}


void
ngx_wgconn_udp_close(ngx_wgconn_udp_t *u)
{
    if (u->flush.posted) {
        ngx_delete_posted_event(&u->flush);
    }

    if (u->c) {
        ngx_close_connection(u->c);
        u->c = NULL;
    }
}


static void
ngx_wgconn_udp_sockbuf(ngx_socket_t s, int opt, int force)
{
    int  size;

    /*
     * a burst of full-sized datagrams must not overflow the buffers; past
     * net.core.[rw]mem_max only with CAP_NET_ADMIN, else as large as allowed
     */

    size = NGX_WGCONN_UDP_SOCKBUF;

    if (setsockopt(s, SOL_SOCKET, force, &size, sizeof(int)) == -1) {
        (void) setsockopt(s, SOL_SOCKET, opt, &size, sizeof(int));
    }
}


void
ngx_wgconn_udp_send(ngx_wgconn_udp_t *u, const wg_endpoint_t *ep,
    const u_char *msg, size_t len)
{
    ngx_uint_t            i;
    struct sockaddr_in6  *to;

    if (u->c == NULL || len > u->slot) {
        u->tx_dropped++;
        return;
    }

    if (u->count == NGX_WGCONN_UDP_RING) {
        /* a full ring is a full link: lose the packet, as a wire would */
        u->tx_dropped++;
        return;
    }

    i = (u->head + u->count) % NGX_WGCONN_UDP_RING;
    to = &u->to[i];

    /* the socket is dual-stack: IPv4 peers are addressed v4-mapped */

    if (ep->addr.sa.sa_family == AF_INET) {
        ngx_memzero(to, sizeof(struct sockaddr_in6));
        to->sin6_family = AF_INET6;
        to->sin6_port = ep->addr.in.sin_port;
        to->sin6_addr.s6_addr[10] = 0xff;
        to->sin6_addr.s6_addr[11] = 0xff;
        ngx_memcpy(&to->sin6_addr.s6_addr[12], &ep->addr.in.sin_addr, 4);

    } else {
        *to = ep->addr.in6;
    }

    ngx_memcpy(u->slots + i * u->slot, msg, len);
    u->lens[i] = (uint16_t) len;
    u->count++;

    if (u->count >= NGX_WGCONN_UDP_BATCH && u->c->write->ready) {
        ngx_wgconn_udp_flush(u);
        return;
    }

    if (!u->flush.posted) {
        ngx_post_event(&u->flush, &ngx_posted_events);
    }
}


static void
ngx_wgconn_udp_flush_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    ngx_wgconn_udp_flush(c->data);
}


static void
ngx_wgconn_udp_write(ngx_event_t *wev)
{
    ngx_connection_t  *c;

    c = wev->data;

    ngx_wgconn_udp_flush(c->data);
}


static void
ngx_wgconn_udp_flush(ngx_wgconn_udp_t *u)
{
    int                   n;
    ngx_err_t             err;
    ngx_uint_t            i, k, batch;
    struct iovec          iov[NGX_WGCONN_UDP_BATCH];
    struct mmsghdr        msgs[NGX_WGCONN_UDP_BATCH];

    while (u->count) {
        batch = ngx_min(u->count, NGX_WGCONN_UDP_BATCH);

        for (k = 0; k < batch; k++) {
            i = (u->head + k) % NGX_WGCONN_UDP_RING;

            iov[k].iov_base = u->slots + i * u->slot;
            iov[k].iov_len = u->lens[i];

            ngx_memzero(&msgs[k], sizeof(struct mmsghdr));
            msgs[k].msg_hdr.msg_name = &u->to[i];
            msgs[k].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }

        n = sendmmsg(u->c->fd, msgs, batch, 0);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN) {
                /* resume when the socket has room again */
                u->c->write->ready = 0;
                (void) ngx_handle_write_event(u->c->write, 0);
                return;
            }

            if (err == NGX_EINTR) {
                continue;
            }

            /* unreachable and the like: the datagram is lost, not the rest */
            ngx_log_error(NGX_LOG_INFO, u->log, err,
                          "wgconn: sendmmsg() failed");
            n = 1;
            u->tx_dropped++;
        }

        u->head = (u->head + n) % NGX_WGCONN_UDP_RING;
        u->count -= n;
    }

    u->c->write->ready = 1;
}


/*
 * The read handler drains the socket: with edge-triggered epoll a
 * partial read would strand datagrams until the next one arrives.
 */

static void
ngx_wgconn_udp_read(ngx_event_t *rev)
{
    int                 i, n;
    ngx_err_t           err;
    ngx_connection_t   *c;
    ngx_wgconn_udp_t   *u;
    struct iovec        iov[NGX_WGCONN_UDP_BATCH];
    struct mmsghdr      msgs[NGX_WGCONN_UDP_BATCH];

    c = rev->data;
    u = c->data;

    for ( ;; ) {

        for (i = 0; i < NGX_WGCONN_UDP_BATCH; i++) {
            iov[i].iov_base = u->rbufs + i * u->slot;
            iov[i].iov_len = u->slot;

            ngx_memzero(&msgs[i], sizeof(struct mmsghdr));
            msgs[i].msg_hdr.msg_name = &u->from[i].addr;
            msgs[i].msg_hdr.msg_namelen = sizeof(u->from[i].addr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }

        n = recvmmsg(c->fd, msgs, NGX_WGCONN_UDP_BATCH, 0, NULL);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN) {
                rev->ready = 0;
                break;
            }

            if (err == NGX_EINTR) {
                continue;
            }

            /* ICMP errors for earlier sends surface here: not fatal */
            ngx_log_error(NGX_LOG_INFO, u->log, err,
                          "wgconn: recvmmsg() failed");
            continue;
        }

        for (i = 0; i < n; i++) {
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                u->rx_truncated++;
                continue;
            }

            u->from[i].len = msgs[i].msg_hdr.msg_namelen;
            ngx_wgconn_udp_unmap(&u->from[i]);

            u->recv(u->data, u->rbufs + i * u->slot, msgs[i].msg_len,
                    &u->from[i]);
        }

        if (n < NGX_WGCONN_UDP_BATCH) {
            break;
        }
    }
}


/* v4-mapped senders become plain IPv4 endpoints, as peers configure them */

void
ngx_wgconn_udp_unmap(wg_endpoint_t *ep)
{
    struct sockaddr_in   sin;
    struct sockaddr_in6 *sin6;

    if (ep->addr.sa.sa_family != AF_INET6) {
        return;
    }

    sin6 = &ep->addr.in6;

    if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
        return;
    }

    ngx_memzero(&sin, sizeof(struct sockaddr_in));
    sin.sin_family = AF_INET;
    sin.sin_port = sin6->sin6_port;
    ngx_memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);

    ngx_memzero(&ep->addr, sizeof(ep->addr));
    ep->addr.in = sin;
    ep->len = sizeof(struct sockaddr_in);
}
