
/*
 * The overlay engine on nginx's event loop: the WireGuard device, its UDP
 * socket (an nginx connection with a read handler) and the device's timer.
 * One engine per node; it runs in the first worker process.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"


#define NGX_WGCONN_RECV_BATCH   64
#define NGX_WGCONN_RECV_SIZE    2048
#define NGX_WGCONN_SOCKBUF      (8 * 1024 * 1024)


struct ngx_wgconn_engine_s {
    ngx_cycle_t               *cycle;
    ngx_log_t                 *log;
    wg_device_t               *dev;
    ngx_connection_t          *udp;
    ngx_event_t                timer;
    ngx_uint_t                 mtu;
    uint64_t                   oversize;   /* truncated datagrams */
};


static ngx_int_t ngx_wgconn_engine_add_peers(ngx_wgconn_engine_t *eng,
    ngx_wgconn_conf_t *wcf);
static unsigned ngx_wgconn_prefix_len(ngx_cidr_t *cidr);
static ngx_int_t ngx_wgconn_engine_listen(ngx_wgconn_engine_t *eng,
    ngx_wgconn_conf_t *wcf);
static void ngx_wgconn_engine_read(ngx_event_t *rev);
static void ngx_wgconn_engine_timer(ngx_event_t *ev);
static void ngx_wgconn_engine_arm(ngx_wgconn_engine_t *eng, uint64_t next);
static void ngx_wgconn_dev_send(void *ctx, wg_peer_t *peer,
    const wg_endpoint_t *ep, const uint8_t *msg, size_t len);
static void ngx_wgconn_dev_recv(void *ctx, wg_peer_t *peer, uint8_t *pkt,
    size_t len);
static void ngx_wgconn_dev_event(void *ctx, wg_peer_t *peer, wg_event_t ev);


static ngx_wgconn_engine_t  *ngx_wgconn_engine;


ngx_wgconn_engine_t *
ngx_wgconn_engine_get(void)
{
    return ngx_wgconn_engine;
}


wg_device_t *
ngx_wgconn_engine_device(ngx_wgconn_engine_t *eng)
{
    return eng->dev;
}


uint64_t
ngx_wgconn_now(void)
{
    /* nginx's cached clock, refreshed once per event loop iteration */
    return (uint64_t) ngx_current_msec * 1000000;
}


ngx_int_t
ngx_wgconn_engine_start(ngx_cycle_t *cycle, ngx_wgconn_conf_t *wcf)
{
    wg_device_ops_t       ops;
    ngx_wgconn_engine_t  *eng;

    eng = ngx_pcalloc(cycle->pool, sizeof(ngx_wgconn_engine_t));
    if (eng == NULL) {
        return NGX_ERROR;
    }

    eng->cycle = cycle;
    eng->log = cycle->log;
    eng->mtu = wcf->mtu;

    ngx_memzero(&ops, sizeof(wg_device_ops_t));

    ops.ctx = eng;
    ops.send = ngx_wgconn_dev_send;
    ops.recv = ngx_wgconn_dev_recv;
    ops.event = ngx_wgconn_dev_event;

    eng->dev = wg_device_create(wcf->private_key, &ops);
    if (eng->dev == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "wgconn: cannot create the WireGuard device");
        return NGX_ERROR;
    }

    wg_device_set_mtu(eng->dev, wcf->mtu);

    if (ngx_wgconn_engine_add_peers(eng, wcf) != NGX_OK
        || ngx_wgconn_netstack_init(cycle, wcf, eng->dev) != NGX_OK
        || ngx_wgconn_engine_listen(eng, wcf) != NGX_OK)
    {
        wg_device_destroy(eng->dev);
        return NGX_ERROR;
    }

    /* timer debug logs read ev->data as a connection */
    eng->timer.handler = ngx_wgconn_engine_timer;
    eng->timer.data = eng->udp;
    eng->timer.log = cycle->log;
    eng->timer.cancelable = 1;

    ngx_wgconn_engine = eng;

    ngx_wgconn_engine_arm(eng, wg_device_tick(eng->dev, ngx_wgconn_now()));

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "wgconn: engine started, %ui peers, udp port %i",
                  wcf->peers.nelts, wcf->listen_port);

    return NGX_OK;
}


void
ngx_wgconn_engine_stop(void)
{
    ngx_wgconn_engine_t  *eng;

    eng = ngx_wgconn_engine;

    if (eng == NULL) {
        return;
    }

    ngx_wgconn_engine = NULL;

    ngx_wgconn_flow_close_all();
    ngx_wgconn_netstack_done();

    if (eng->timer.timer_set) {
        ngx_del_timer(&eng->timer);
    }

    if (eng->udp) {
        ngx_close_connection(eng->udp);
        eng->udp = NULL;
    }

    wg_device_destroy(eng->dev);
}


static ngx_int_t
ngx_wgconn_engine_add_peers(ngx_wgconn_engine_t *eng, ngx_wgconn_conf_t *wcf)
{
    void                    *addr;
    ngx_uint_t               i, j;
    wg_peer_t               *wp;
    ngx_cidr_t              *cidr;
    wg_endpoint_t            ep;
    ngx_wgconn_peer_conf_t  *peer;

    peer = wcf->peers.elts;

    for (i = 0; i < wcf->peers.nelts; i++) {
        wp = wg_device_add_peer(eng->dev, peer[i].public_key,
                                peer[i].has_psk ? peer[i].psk : NULL);
        if (wp == NULL) {
            ngx_log_error(NGX_LOG_EMERG, eng->log, 0,
                          "wgconn: cannot add peer defined in %V:%ui",
                          &peer[i].file, peer[i].line);
            return NGX_ERROR;
        }

        wg_peer_set_data(wp, &peer[i]);

        cidr = peer[i].allowed_ips.elts;

        for (j = 0; j < peer[i].allowed_ips.nelts; j++) {
            addr = (cidr[j].family == AF_INET)
                   ? (void *) &cidr[j].u.in.addr
                   : (void *) &cidr[j].u.in6.addr;

            if (wg_peer_add_allowed_ip(wp, cidr[j].family, addr,
                                       ngx_wgconn_prefix_len(&cidr[j]))
                != 0)
            {
                return NGX_ERROR;
            }
        }

        if (peer[i].endpoint) {
            ngx_memzero(&ep, sizeof(wg_endpoint_t));
            ngx_memcpy(&ep.addr, peer[i].endpoint->sockaddr,
                       peer[i].endpoint->socklen);
            ep.len = peer[i].endpoint->socklen;
            wg_peer_set_endpoint(wp, &ep);
        }

        if (peer[i].keepalive) {
            wg_peer_set_keepalive(wp, peer[i].keepalive);
        }
    }

    return NGX_OK;
}


static unsigned
ngx_wgconn_prefix_len(ngx_cidr_t *cidr)
{
    u_char    *m;
    unsigned   bits, i, n;

    if (cidr->family == AF_INET) {
        m = (u_char *) &cidr->u.in.mask;
        n = 4;

    } else {
        m = cidr->u.in6.mask.s6_addr;
        n = 16;
    }

    bits = 0;

    for (i = 0; i < n; i++) {
        bits += __builtin_popcount(m[i]);
    }

    return bits;
}


static ngx_int_t
ngx_wgconn_engine_listen(ngx_wgconn_engine_t *eng, ngx_wgconn_conf_t *wcf)
{
    int                   zero, size;
    ngx_socket_t          s;
    ngx_connection_t     *c;
    struct sockaddr_in6   sin6;

    /* one dual-stack socket carries IPv4 and IPv6 peers */

    s = ngx_socket(AF_INET6, SOCK_DGRAM, 0);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_EMERG, eng->log, ngx_socket_errno,
                      "wgconn: " ngx_socket_n " failed");
        return NGX_ERROR;
    }

    zero = 0;
    size = NGX_WGCONN_SOCKBUF;

    (void) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(int));

    /*
     * a burst of full-sized datagrams must not overflow the buffers; past
     * net.core.rmem_max only with CAP_NET_ADMIN, else as large as allowed
     */
    if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(int)) == -1) {
        (void) setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof(int));
    }

    if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(int)) == -1) {
        (void) setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof(int));
    }

    ngx_memzero(&sin6, sizeof(struct sockaddr_in6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((in_port_t) wcf->listen_port);

    if (bind(s, (struct sockaddr *) &sin6, sizeof(sin6)) == -1) {
        ngx_log_error(NGX_LOG_EMERG, eng->log, ngx_socket_errno,
                      "wgconn: bind() to udp port %i failed",
                      wcf->listen_port);
        ngx_close_socket(s);
        return NGX_ERROR;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_close_socket(s);
        return NGX_ERROR;
    }

    c = ngx_get_connection(s, eng->log);
    if (c == NULL) {
        ngx_close_socket(s);
        return NGX_ERROR;
    }

    c->type = SOCK_DGRAM;
    c->data = eng;
    c->read->handler = ngx_wgconn_engine_read;
    c->read->log = eng->log;
    c->write->log = eng->log;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    eng->udp = c;

    return NGX_OK;
}


/*
 * The read handler drains the socket: with edge-triggered epoll a
 * partial read would strand datagrams until the next one arrives.
 */

static void
ngx_wgconn_engine_read(ngx_event_t *rev)
{
    int                   i, n;
    ngx_err_t             err;
    wg_result_t           rc;
    ngx_connection_t     *c;
    ngx_wgconn_engine_t  *eng;

    static wg_endpoint_t  from[NGX_WGCONN_RECV_BATCH];
    static struct iovec   iov[NGX_WGCONN_RECV_BATCH];
    static struct mmsghdr msgs[NGX_WGCONN_RECV_BATCH];
    static u_char         bufs[NGX_WGCONN_RECV_BATCH][NGX_WGCONN_RECV_SIZE];

    c = rev->data;
    eng = c->data;

    for ( ;; ) {

        for (i = 0; i < NGX_WGCONN_RECV_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = NGX_WGCONN_RECV_SIZE;
            msgs[i].msg_hdr.msg_name = &from[i].addr;
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i].addr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = NULL;
            msgs[i].msg_hdr.msg_controllen = 0;
            msgs[i].msg_hdr.msg_flags = 0;
        }

        n = recvmmsg(c->fd, msgs, NGX_WGCONN_RECV_BATCH, 0, NULL);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN || err == NGX_EINTR) {
                break;
            }

            ngx_log_error(NGX_LOG_ALERT, eng->log, err,
                          "wgconn: recvmmsg() failed");
            break;
        }

        for (i = 0; i < n; i++) {
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                eng->oversize++;
                continue;
            }

            from[i].len = msgs[i].msg_hdr.msg_namelen;

            rc = wg_device_input(eng->dev, bufs[i], msgs[i].msg_len,
                                 &from[i], ngx_wgconn_now());

            if (rc != WG_OK) {
                ngx_log_debug2(NGX_LOG_DEBUG_EVENT, eng->log, 0,
                               "wgconn: dropped datagram of %ui bytes: %s",
                               (ngx_uint_t) msgs[i].msg_len,
                               wg_result_str(rc));
            }
        }

        if (n < NGX_WGCONN_RECV_BATCH) {
            break;
        }
    }

    ngx_wgconn_engine_arm(eng, wg_device_tick(eng->dev, ngx_wgconn_now()));
}


static void
ngx_wgconn_engine_timer(ngx_event_t *ev)
{
    ngx_connection_t     *c;
    ngx_wgconn_engine_t  *eng;

    c = ev->data;
    eng = c->data;

    ngx_wgconn_engine_arm(eng, wg_device_tick(eng->dev, ngx_wgconn_now()));
}


static void
ngx_wgconn_engine_arm(ngx_wgconn_engine_t *eng, uint64_t next)
{
    uint64_t    now;
    ngx_msec_t  delay;

    now = ngx_wgconn_now();

    delay = (next > now) ? (ngx_msec_t) ((next - now) / 1000000) : 1;

    /* a coarse cap keeps a missed deadline from stalling the device */
    if (delay > 1000) {
        delay = 1000;
    }

    if (delay == 0) {
        delay = 1;
    }

    ngx_add_timer(&eng->timer, delay);
}


static void
ngx_wgconn_dev_send(void *ctx, wg_peer_t *peer, const wg_endpoint_t *ep,
    const uint8_t *msg, size_t len)
{
    ngx_wgconn_engine_t *eng = ctx;

    ssize_t              n;
    ngx_err_t            err;
    struct sockaddr_in6  sin6;
    struct sockaddr     *sa;
    socklen_t            socklen;

    if (eng->udp == NULL) {
        return;
    }

    sa = (struct sockaddr *) &ep->addr;
    socklen = ep->len;

    /* the socket is dual-stack: IPv4 peers are addressed v4-mapped */

    if (sa->sa_family == AF_INET) {
        ngx_memzero(&sin6, sizeof(struct sockaddr_in6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = ep->addr.in.sin_port;
        sin6.sin6_addr.s6_addr[10] = 0xff;
        sin6.sin6_addr.s6_addr[11] = 0xff;
        ngx_memcpy(&sin6.sin6_addr.s6_addr[12], &ep->addr.in.sin_addr, 4);
        sa = (struct sockaddr *) &sin6;
        socklen = sizeof(struct sockaddr_in6);
    }

    n = sendto(eng->udp->fd, msg, len, 0, sa, socklen);

    if (n == -1) {
        err = ngx_socket_errno;

        /* UDP: a full socket buffer is a lost packet, as on a wire */
        if (err != NGX_EAGAIN) {
            ngx_log_error(NGX_LOG_ERR, eng->log, err,
                          "wgconn: sendto() failed");
        }
    }
}


static void
ngx_wgconn_dev_recv(void *ctx, wg_peer_t *peer, uint8_t *pkt, size_t len)
{
    ngx_wgconn_netstack_input(pkt, len);
}


static void
ngx_wgconn_dev_event(void *ctx, wg_peer_t *peer, wg_event_t ev)
{
    ngx_wgconn_engine_t *eng = ctx;

    ngx_wgconn_peer_conf_t  *pcf;

    pcf = wg_peer_data(peer);

    switch (ev) {

    case WG_EV_HANDSHAKE_DONE:
        ngx_log_error(NGX_LOG_INFO, eng->log, 0,
                      "wgconn: handshake with peer \"%V\" completed",
                      &pcf->name);
        break;

    case WG_EV_HANDSHAKE_FAILED:
        ngx_log_error(NGX_LOG_WARN, eng->log, 0,
                      "wgconn: no handshake with peer \"%V\" after 90s, "
                      "giving up until new traffic", &pcf->name);
        break;

    case WG_EV_ENDPOINT_CHANGED:
        ngx_log_error(NGX_LOG_INFO, eng->log, 0,
                      "wgconn: peer \"%V\" roamed to a new endpoint",
                      &pcf->name);
        break;

    default:
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, eng->log, 0,
                       "wgconn: peer \"%V\" event %d", &pcf->name, ev);
        break;
    }
}
