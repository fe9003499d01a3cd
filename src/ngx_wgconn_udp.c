
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

#include <netinet/udp.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT  103
#endif

#ifndef UDP_GRO
#define UDP_GRO      104
#endif


#define NGX_WGCONN_UDP_BATCH     64
#define NGX_WGCONN_UDP_GSO_SEGS  64      /* kernel's UDP_MAX_SEGMENTS */
#define NGX_WGCONN_UDP_GSO_BYTES 65000   /* one GSO send is one IP packet */
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
    unsigned                   gso:1;      /* UDP_SEGMENT works here */

    /* receive batch */
    u_char                    *rbufs;
    size_t                     rslot;      /* a datagram, or a GRO train */
    wg_endpoint_t             *from;

    uint64_t                   tx_dropped;
    uint64_t                   rx_truncated;
};


static void ngx_wgconn_udp_read(ngx_event_t *rev);
static void ngx_wgconn_udp_write(ngx_event_t *wev);
static void ngx_wgconn_udp_flush_handler(ngx_event_t *ev);
static void ngx_wgconn_udp_flush(ngx_wgconn_udp_t *u);
static void ngx_wgconn_udp_sockbuf(ngx_socket_t s, int opt, int force);
static ngx_int_t ngx_wgconn_udp_next(ngx_wgconn_udp_t *u, size_t len);


/* the datagram being input came in a GRO train of several */
static ngx_uint_t  ngx_wgconn_udp_in_train;


ngx_wgconn_udp_t *
ngx_wgconn_udp_open(ngx_cycle_t *cycle, in_port_t port, size_t max_msg,
    ngx_wgconn_udp_recv_pt recv, void *data)
{
    int                   zero, one;
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
    u->from = ngx_palloc(cycle->pool,
                         NGX_WGCONN_UDP_BATCH * sizeof(wg_endpoint_t));

    if (u->slots == NULL || u->to == NULL || u->lens == NULL
        || u->from == NULL)
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
    one = 1;
    (void) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(int));

    ngx_wgconn_udp_sockbuf(s, SO_RCVBUF, SO_RCVBUFFORCE);
    ngx_wgconn_udp_sockbuf(s, SO_SNDBUF, SO_SNDBUFFORCE);

    /*
     * receive offload: the kernel hands over a train of datagrams from one
     * sender in one read; each buffer must then hold a whole train
     */
    u->rslot = u->slot;

    if (setsockopt(s, SOL_UDP, UDP_GRO, &one, sizeof(int)) == 0) {
        u->rslot = 65536;
    }

    u->rbufs = ngx_palloc(cycle->pool, NGX_WGCONN_UDP_BATCH * u->rslot);
    if (u->rbufs == NULL) {
        ngx_close_socket(s);
        return NULL;
    }

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
    u->gso = 1;

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
    u_char               *slot;
    ngx_int_t             i;
    struct sockaddr_in6  *to;

    i = ngx_wgconn_udp_next(u, len);

    if (i == NGX_ERROR) {
        /* a full ring is a full link: lose the packet, as a wire would;
         * so is a packet with no socket or too long for a slot */
        u->tx_dropped++;
        return;
    }

    slot = u->slots + i * u->slot;
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

    if (msg != slot) {
        ngx_memcpy(slot, msg, len);
    }

    u->lens[i] = (uint16_t) len;
    u->count++;

    if (u->count >= NGX_WGCONN_UDP_BATCH && u->c->write->ready) {
        ngx_wgconn_udp_flush(u);
        return;
    }

    if (!u->flush.posted) {
        /*
         * first in line: the datagrams leave before the writes to the
         * workers, whose wake-up may preempt the engine
         */
        u->flush.posted = 1;
        ngx_queue_insert_head(&ngx_posted_events, &u->flush.queue);
    }
}


/*
 * The slot the next ngx_wgconn_udp_send() fills: the device seals a data
 * message there, not in a buffer of its own to be copied.  NULL: the
 * message cannot be sent (no socket, too long, the ring full).
 */

u_char *
ngx_wgconn_udp_buffer(ngx_wgconn_udp_t *u, size_t len)
{
    ngx_int_t  i;

    i = ngx_wgconn_udp_next(u, len);

    return (i == NGX_ERROR) ? NULL : u->slots + i * u->slot;
}


/* the ring index of that slot, or NGX_ERROR */

static ngx_int_t
ngx_wgconn_udp_next(ngx_wgconn_udp_t *u, size_t len)
{
    if (u->c == NULL || len > u->slot || u->count == NGX_WGCONN_UDP_RING) {
        return NGX_ERROR;
    }

    return (u->head + u->count) % NGX_WGCONN_UDP_RING;
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


/*
 * Runs of datagrams to the same endpoint with the same size (the last may
 * be shorter) leave as one UDP_SEGMENT send: the kernel segments them, so
 * a window of full-sized segments costs a few system calls, not one each.
 */

static void
ngx_wgconn_udp_flush(ngx_wgconn_udp_t *u)
{
    int              n;
    size_t           seg;
    uint16_t        *gso;
    ngx_err_t        err;
    ngx_uint_t       i, k, m, j, first, limit, segs, max, sent;
    struct iovec     iov[NGX_WGCONN_UDP_BATCH];
    struct cmsghdr  *cmsg;
    struct mmsghdr   msgs[NGX_WGCONN_UDP_BATCH];
    ngx_uint_t       nsegs[NGX_WGCONN_UDP_BATCH];
    union {
        char            buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr  align;
    } ctl[NGX_WGCONN_UDP_BATCH];

    while (u->count) {
        limit = ngx_min(u->count, NGX_WGCONN_UDP_BATCH);
        k = 0;
        m = 0;

        while (k < limit) {
            first = (u->head + k) % NGX_WGCONN_UDP_RING;
            seg = u->lens[first];
            max = u->gso ? ngx_min(NGX_WGCONN_UDP_GSO_SEGS,
                                   NGX_WGCONN_UDP_GSO_BYTES / seg)
                         : 1;

            iov[k].iov_base = u->slots + first * u->slot;
            iov[k].iov_len = seg;

            ngx_memzero(&msgs[m], sizeof(struct mmsghdr));
            msgs[m].msg_hdr.msg_name = &u->to[first];
            msgs[m].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
            msgs[m].msg_hdr.msg_iov = &iov[k];

            segs = 1;
            k++;

            while (k < limit && segs < max) {
                i = (u->head + k) % NGX_WGCONN_UDP_RING;

                if (u->lens[i] > seg
                    || ngx_memcmp(&u->to[i], &u->to[first],
                                  sizeof(struct sockaddr_in6))
                       != 0)
                {
                    break;
                }

                iov[k].iov_base = u->slots + i * u->slot;
                iov[k].iov_len = u->lens[i];
                segs++;
                k++;

                if (u->lens[i] < seg) {
                    /* only the last segment may be shorter */
                    break;
                }
            }

            msgs[m].msg_hdr.msg_iovlen = segs;

            if (segs > 1) {
                /* the control buffer's padding goes to the kernel too */
                ngx_memzero(&ctl[m], sizeof(ctl[m]));
                msgs[m].msg_hdr.msg_control = &ctl[m];
                msgs[m].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));

                cmsg = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
                cmsg->cmsg_level = SOL_UDP;
                cmsg->cmsg_type = UDP_SEGMENT;
                cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));

                gso = (uint16_t *) CMSG_DATA(cmsg);
                *gso = (uint16_t) seg;
            }

            nsegs[m++] = segs;
        }

        n = sendmmsg(u->c->fd, msgs, m, 0);

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

            if (u->gso && nsegs[0] > 1 && (err == EIO || err == EINVAL)) {
                /* no segmentation offload on this path: send one by one */
                ngx_log_error(NGX_LOG_NOTICE, u->log, err,
                              "wgconn: UDP segmentation offload is not "
                              "available, sending datagrams one by one");
                u->gso = 0;
                continue;
            }

            /* unreachable and the like: that message is lost, not the rest */
            ngx_log_error(NGX_LOG_INFO, u->log, err,
                          "wgconn: sendmmsg() failed");
            n = 1;
            u->tx_dropped += nsegs[0];
        }

        sent = 0;

        for (j = 0; j < (ngx_uint_t) n; j++) {
            sent += nsegs[j];
        }

        u->head = (u->head + sent) % NGX_WGCONN_UDP_RING;
        u->count -= sent;
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
    int                 i, n, gso;
    size_t              len, off, seg;
    u_char             *buf;
    ngx_err_t           err;
    struct cmsghdr     *cmsg;
    ngx_connection_t   *c;
    ngx_wgconn_udp_t   *u;
    struct iovec        iov[NGX_WGCONN_UDP_BATCH];
    struct mmsghdr      msgs[NGX_WGCONN_UDP_BATCH];
    union {
        char            buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr  align;
    } ctl[NGX_WGCONN_UDP_BATCH];

    c = rev->data;
    u = c->data;

    for ( ;; ) {

        for (i = 0; i < NGX_WGCONN_UDP_BATCH; i++) {
            iov[i].iov_base = u->rbufs + i * u->rslot;
            iov[i].iov_len = u->rslot;

            ngx_memzero(&msgs[i], sizeof(struct mmsghdr));
            msgs[i].msg_hdr.msg_name = &u->from[i].addr;
            msgs[i].msg_hdr.msg_namelen = sizeof(u->from[i].addr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = &ctl[i];
            msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
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

            gso = 0;

            for (cmsg = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
                 cmsg != NULL;
                 cmsg = CMSG_NXTHDR(&msgs[i].msg_hdr, cmsg))
            {
                if (cmsg->cmsg_level == SOL_UDP
                    && cmsg->cmsg_type == UDP_GRO)
                {
                    ngx_memcpy(&gso, CMSG_DATA(cmsg), sizeof(int));
                }
            }

            buf = u->rbufs + i * u->rslot;
            len = msgs[i].msg_len;
            seg = (gso > 0) ? (size_t) gso : len;

            if (len == 0) {
                /* still a datagram: the device counts it as malformed */
                u->recv(u->data, buf, 0, &u->from[i]);
                continue;
            }

            /* a GRO train: datagrams of gso bytes, the last may be shorter */

            ngx_wgconn_udp_in_train = (len > seg);

            for (off = 0; off < len; off += seg) {
                u->recv(u->data, buf + off, ngx_min(seg, len - off),
                        &u->from[i]);
            }

            ngx_wgconn_udp_in_train = 0;
        }

        if (n < NGX_WGCONN_UDP_BATCH) {
            break;
        }
    }

    /* the end of what this read brought in */
    u->recv(u->data, NULL, 0, NULL);
}


/*
 * The sender handed its kernel a run of datagrams at once (UDP GSO), or
 * they arrived back to back: the receive window (src/arch/rcvwnd.h) asks.
 */

ngx_uint_t
ngx_wgconn_udp_train(void)
{
    return ngx_wgconn_udp_in_train;
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
