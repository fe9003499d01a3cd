
/*
 * The overlay engine on nginx's event loop: the WireGuard device, its UDP
 * socket (an nginx connection with a read handler) and the device's timer.
 * One engine per node; it runs in the first worker process.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"


struct ngx_wgconn_engine_s {
    ngx_cycle_t               *cycle;
    ngx_log_t                 *log;
    wg_device_t               *dev;
    ngx_wgconn_udp_t          *udp;
    ngx_event_t                timer;
    ngx_connection_t           dummy;      /* the timer's ev->data */
    ngx_wgconn_conf_t         *wcf;
    ngx_pool_t                *pool;       /* wcf's, after a reload */
    wg_peer_t                **peers;      /* for the status, npeers */
    ngx_uint_t                 npeers;
    ngx_msec_t                 published;
};


static ngx_int_t ngx_wgconn_engine_add_peers(ngx_wgconn_engine_t *eng,
    ngx_wgconn_conf_t *wcf);
static wg_peer_t *ngx_wgconn_engine_set_peer(ngx_wgconn_engine_t *eng,
    ngx_wgconn_peer_conf_t *pcf);
static unsigned ngx_wgconn_prefix_len(ngx_cidr_t *cidr);
static void ngx_wgconn_engine_input(void *data, u_char *buf, size_t len,
    wg_endpoint_t *from);
static void ngx_wgconn_engine_timer(ngx_event_t *ev);
static void ngx_wgconn_engine_publish(ngx_wgconn_engine_t *eng);
static void ngx_wgconn_engine_arm(ngx_wgconn_engine_t *eng, uint64_t next);
static void ngx_wgconn_dev_send(void *ctx, wg_peer_t *peer,
    const wg_endpoint_t *ep, const uint8_t *msg, size_t len);
static uint8_t *ngx_wgconn_dev_buffer(void *ctx, const wg_endpoint_t *ep,
    size_t len);
static void ngx_wgconn_dev_recv(void *ctx, wg_peer_t *peer, uint8_t *pkt,
    size_t len);
static void ngx_wgconn_dev_event(void *ctx, wg_peer_t *peer, wg_event_t ev);


static ngx_wgconn_engine_t  *ngx_wgconn_engine;


ngx_wgconn_engine_t *
ngx_wgconn_engine_get(void)
{
    return ngx_wgconn_engine;
}


ngx_wgconn_peer_conf_t *
ngx_wgconn_engine_peer_of(int family, const void *addr)
{
    wg_peer_t  *peer;

    if (ngx_wgconn_engine == NULL) {
        return NULL;
    }

    peer = wg_device_route(ngx_wgconn_engine->dev, family, addr);

    return peer ? wg_peer_data(peer) : NULL;
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
    eng->wcf = wcf;

    eng->peers = ngx_calloc((wcf->peers.nelts + 1) * sizeof(wg_peer_t *),
                            cycle->log);
    if (eng->peers == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&ops, sizeof(wg_device_ops_t));

    ops.ctx = eng;
    ops.send = ngx_wgconn_dev_send;
    ops.buffer = ngx_wgconn_dev_buffer;
    ops.recv = ngx_wgconn_dev_recv;
    ops.event = ngx_wgconn_dev_event;

    eng->dev = wg_device_create(wcf->private_key, &ops);
    if (eng->dev == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "wgconn: cannot create the WireGuard device");
        return NGX_ERROR;
    }

    wg_device_set_mtu(eng->dev, wcf->mtu);

    /* a datagram is at most an MTU-sized packet, padded, plus overhead */

    eng->udp = ngx_wgconn_udp_open(cycle, (in_port_t) wcf->listen_port,
                                   wcf->mtu + 16 + WG_MSG_OVERHEAD + 64,
                                   ngx_wgconn_engine_input, eng);

    if (eng->udp == NULL
        || ngx_wgconn_engine_add_peers(eng, wcf) != NGX_OK
        || ngx_wgconn_netstack_init(cycle, wcf, eng->dev) != NGX_OK)
    {
        if (eng->udp) {
            ngx_wgconn_udp_close(eng->udp);
        }

        wg_device_destroy(eng->dev);
        return NGX_ERROR;
    }

    /* timer debug logs read ev->data as a connection */
    eng->dummy.fd = (ngx_socket_t) -1;
    eng->dummy.data = eng;

    eng->timer.handler = ngx_wgconn_engine_timer;
    eng->timer.data = &eng->dummy;
    eng->timer.log = cycle->log;
    eng->timer.cancelable = 1;

    ngx_wgconn_engine = eng;

    ngx_wgconn_engine_arm(eng, wg_device_tick(eng->dev, ngx_wgconn_now()));
    ngx_wgconn_engine_publish(eng);

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
    ngx_wgconn_inbound_close_all();
    ngx_wgconn_netstack_done();

    if (eng->timer.timer_set) {
        ngx_del_timer(&eng->timer);
    }

    if (eng->udp) {
        ngx_wgconn_udp_close(eng->udp);
        eng->udp = NULL;
    }

    wg_device_destroy(eng->dev);

    ngx_free(eng->peers);

    if (eng->pool) {
        ngx_destroy_pool(eng->pool);
    }
}


static ngx_int_t
ngx_wgconn_engine_add_peers(ngx_wgconn_engine_t *eng, ngx_wgconn_conf_t *wcf)
{
    ngx_uint_t               i;
    ngx_wgconn_peer_conf_t  *peer;

    peer = wcf->peers.elts;

    for (i = 0; i < wcf->peers.nelts; i++) {
        eng->peers[i] = ngx_wgconn_engine_set_peer(eng, &peer[i]);

        if (eng->peers[i] == NULL) {
            return NGX_ERROR;
        }
    }

    eng->npeers = wcf->peers.nelts;

    return NGX_OK;
}


/*
 * A reload's configuration, in the running engine: peers that are gone are
 * removed, new ones added, kept ones updated in place so their sessions
 * and flows carry on.  The UDP port, addresses and MTU do not change here
 * (the master starts a new engine when they do).
 */

ngx_int_t
ngx_wgconn_engine_reconfigure(ngx_wgconn_conf_t *wcf, ngx_pool_t *pool)
{
    ngx_uint_t               i, j, added, removed;
    wg_peer_t              **peers, *wp;
    ngx_wgconn_engine_t     *eng;
    ngx_wgconn_peer_conf_t  *old, *peer;

    eng = ngx_wgconn_engine;

    if (eng == NULL) {
        return NGX_ERROR;
    }

    peers = ngx_calloc((wcf->peers.nelts + 1) * sizeof(wg_peer_t *),
                       eng->log);
    if (peers == NULL) {
        return NGX_ERROR;
    }

    old = eng->wcf->peers.elts;
    peer = wcf->peers.elts;
    added = 0;
    removed = 0;

    for (i = 0; i < eng->wcf->peers.nelts; i++) {
        for (j = 0; j < wcf->peers.nelts; j++) {
            if (ngx_memcmp(old[i].public_key, peer[j].public_key,
                           NGX_WGCONN_KEY_LEN)
                == 0)
            {
                break;
            }
        }

        wp = (j == wcf->peers.nelts)
             ? wg_device_find_peer(eng->dev, old[i].public_key) : NULL;

        if (wp) {
            wg_device_remove_peer(eng->dev, wp);
            removed++;
        }
    }

    if (ngx_memcmp(eng->wcf->private_key, wcf->private_key,
                   NGX_WGCONN_KEY_LEN)
        != 0)
    {
        ngx_log_error(NGX_LOG_NOTICE, eng->log, 0,
                      "wgconn: new private key, sessions start over");
        wg_device_set_private_key(eng->dev, wcf->private_key);
    }

    /* an allowed IP may move from one kept peer to another */

    for (i = 0; i < wcf->peers.nelts; i++) {
        wp = wg_device_find_peer(eng->dev, peer[i].public_key);

        if (wp) {
            wg_peer_clear_allowed_ips(wp);

        } else {
            added++;
        }
    }

    /* a peer that cannot be added (out of memory) is left out, logged */

    for (i = 0, j = 0; i < wcf->peers.nelts; i++) {
        peers[j] = ngx_wgconn_engine_set_peer(eng, &peer[i]);

        if (peers[j]) {
            j++;
        }
    }

    eng->npeers = j;

    wcf->status_zone = eng->wcf->status_zone;

    ngx_free(eng->peers);
    eng->peers = peers;
    eng->wcf = wcf;

    wgc_mem.limit = wcf->memory_limit;

    if (eng->pool) {
        ngx_destroy_pool(eng->pool);
    }

    eng->pool = pool;

    ngx_log_error(NGX_LOG_NOTICE, eng->log, 0,
                  "wgconn: configuration applied: %ui peers, %ui added, "
                  "%ui removed", wcf->peers.nelts, added, removed);

    ngx_wgconn_engine_publish(eng);

    return NGX_OK;
}


/* add a peer, or bring an existing one in line with its configuration */

static wg_peer_t *
ngx_wgconn_engine_set_peer(ngx_wgconn_engine_t *eng,
    ngx_wgconn_peer_conf_t *pcf)
{
    void                    *addr;
    ngx_uint_t               j;
    wg_peer_t               *wp;
    ngx_cidr_t              *cidr;
    wg_endpoint_t            ep;
    ngx_wgconn_peer_conf_t  *old;

    old = NULL;
    wp = wg_device_find_peer(eng->dev, pcf->public_key);

    if (wp) {
        old = wg_peer_data(wp);

        if (old->has_psk != pcf->has_psk
            || ngx_memcmp(old->psk, pcf->psk, NGX_WGCONN_KEY_LEN) != 0)
        {
            /* the handshake state holds the old key: start over */
            wg_device_remove_peer(eng->dev, wp);
            wp = NULL;
            old = NULL;
        }
    }

    if (wp == NULL) {
        wp = wg_device_add_peer(eng->dev, pcf->public_key,
                                pcf->has_psk ? pcf->psk : NULL);
        if (wp == NULL) {
            ngx_log_error(NGX_LOG_EMERG, eng->log, 0,
                          "wgconn: cannot add peer \"%V\"", &pcf->name);
            return NULL;
        }

    } else {
        wg_peer_clear_allowed_ips(wp);
    }

    wg_peer_set_data(wp, pcf);

    cidr = pcf->allowed_ips.elts;

    for (j = 0; j < pcf->allowed_ips.nelts; j++) {
        addr = (cidr[j].family == AF_INET)
               ? (void *) &cidr[j].u.in.addr
               : (void *) &cidr[j].u.in6.addr;

        if (wg_peer_add_allowed_ip(wp, cidr[j].family, addr,
                                   ngx_wgconn_prefix_len(&cidr[j]))
            != 0)
        {
            ngx_log_error(NGX_LOG_ALERT, eng->log, 0,
                          "wgconn: cannot route a prefix to peer \"%V\"",
                          &pcf->name);
        }
    }

    /* a configured endpoint applies when new; a roamed one is kept */

    if (pcf->endpoint
        && (old == NULL || old->endpoint == NULL
            || old->endpoint->socklen != pcf->endpoint->socklen
            || ngx_memcmp(old->endpoint->sockaddr, pcf->endpoint->sockaddr,
                          pcf->endpoint->socklen)
               != 0))
    {
        ngx_memzero(&ep, sizeof(wg_endpoint_t));
        ngx_memcpy(&ep.addr, pcf->endpoint->sockaddr, pcf->endpoint->socklen);
        ep.len = pcf->endpoint->socklen;
        wg_peer_set_endpoint(wp, &ep);
    }

    if (old ? old->keepalive != pcf->keepalive : pcf->keepalive != 0) {
        wg_peer_set_keepalive(wp, pcf->keepalive);
    }

    return wp;
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


static void
ngx_wgconn_engine_input(void *data, u_char *buf, size_t len,
    wg_endpoint_t *from)
{
    ngx_wgconn_engine_t *eng = data;

    wg_result_t  rc;

    if (buf == NULL) {
        ngx_wgconn_netstack_input_done();
        return;
    }

    rc = wg_device_input(eng->dev, buf, len, from, ngx_wgconn_now());

    if (rc != WG_OK) {
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, eng->log, 0,
                       "wgconn: dropped datagram of %uz bytes: %s",
                       len, wg_result_str(rc));
    }
}


static void
ngx_wgconn_engine_timer(ngx_event_t *ev)
{
    ngx_connection_t     *c;
    ngx_wgconn_engine_t  *eng;

    c = ev->data;
    eng = c->data;

    if (ngx_current_msec - eng->published >= 1000) {
        ngx_wgconn_engine_publish(eng);
    }

    ngx_wgconn_engine_arm(eng, wg_device_tick(eng->dev, ngx_wgconn_now()));
}


static void
ngx_wgconn_engine_publish(ngx_wgconn_engine_t *eng)
{
    eng->published = ngx_current_msec;

    ngx_wgconn_status_publish(eng->wcf, eng->dev, eng->peers, eng->npeers,
                              ngx_wgconn_flow_count());
}


static void
ngx_wgconn_engine_arm(ngx_wgconn_engine_t *eng, uint64_t next)
{
    uint64_t    now;
    ngx_msec_t  delay;

    now = ngx_wgconn_now();

    delay = (next > now) ? (ngx_msec_t) ((next - now) / 1000000) : 1;

    /*
     * input and output can bring a deadline earlier without telling us:
     * a cap bounds how late such a timer runs
     */
    if (delay > 250) {
        delay = 250;
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

    if (eng->udp) {
        ngx_wgconn_udp_send(eng->udp, ep, msg, len);
    }
}


static uint8_t *
ngx_wgconn_dev_buffer(void *ctx, const wg_endpoint_t *ep, size_t len)
{
    ngx_wgconn_engine_t *eng = ctx;

    return eng->udp ? ngx_wgconn_udp_buffer(eng->udp, len) : NULL;
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

    u_char                  *p;
    wg_peer_stats_t          ps;
    ngx_wgconn_peer_conf_t  *pcf;
    u_char                   ep[NGX_SOCKADDR_STRLEN];

    pcf = wg_peer_data(peer);

    switch (ev) {

    case WG_EV_HANDSHAKE_UNANSWERED:
        wg_peer_get_stats(peer, &ps);
        p = ngx_wgconn_endpoint_text(ep, ep + sizeof(ep), &ps.endpoint);
        ngx_log_error(NGX_LOG_WARN, eng->log, 0,
                      "wgconn: peer \"%V\" has not answered a handshake "
                      "in 5s (endpoint %*s), retrying", &pcf->name,
                      p - ep, ep);
        break;

    case WG_EV_HANDSHAKE_DONE:
        ngx_log_error(NGX_LOG_INFO, eng->log, 0,
                      "wgconn: handshake with peer \"%V\" completed",
                      &pcf->name);
        ngx_wgconn_engine_publish(eng);
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
