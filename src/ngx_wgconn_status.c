
/*
 * Status: the engine publishes a snapshot of the node (peers, sessions,
 * transfer, every drop counter) into a shared memory zone once a second;
 * any worker renders it for the "wgconn_status" handler.  A sequence
 * counter (odd while the engine writes) lets readers retry a torn read
 * instead of taking a lock the engine would have to wait for.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"


#define NGX_WGCONN_STATUS_ZONE      (1024 * 1024)
#define NGX_WGCONN_STATUS_SIZE      (768 * 1024)     /* from the slab pool */
#define NGX_WGCONN_STATUS_NAME_LEN  32


typedef struct {
    u_char                     key[NGX_WGCONN_KEY_LEN];
    u_char                     name[NGX_WGCONN_STATUS_NAME_LEN];
    wg_endpoint_t              endpoint;
    time_t                     handshake;          /* wall clock, 0 never */
    uint64_t                   rx_bytes;
    uint64_t                   tx_bytes;
    uint32_t                   has_session;
} ngx_wgconn_status_peer_t;


typedef struct {
    ngx_atomic_t               seq;
    time_t                     updated;
    ngx_pid_t                  pid;
    u_char                     key[NGX_WGCONN_KEY_LEN];
    uint32_t                   listen_port;
    uint32_t                   npeers;
    wg_device_stats_t          dev;
    uint64_t                   flows;
    uint64_t                   tcp_active;     /* lwIP's connections */
    uint64_t                   tcp_time_wait;
    uint64_t                   tcp_resent;     /* segments sent again */
    wgc_mem_t                  mem;            /* lwIP's heap */
    uint32_t                   nlistens;
    ngx_wgconn_listen_stat_t   listens[NGX_WGCONN_MAX_LISTEN];
    ngx_wgconn_status_peer_t   peers[1];
} ngx_wgconn_status_t;


static ngx_int_t ngx_wgconn_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static u_char *ngx_wgconn_status_counter(u_char *p, u_char *last,
    const char *name, uint64_t value);


static ngx_uint_t  ngx_wgconn_status_max_peers =
    (NGX_WGCONN_STATUS_SIZE - sizeof(ngx_wgconn_status_t) - 4096)
    / sizeof(ngx_wgconn_status_peer_t);


/* from the wgconn{} block: one fixed-size zone, kept across reloads */

ngx_int_t
ngx_wgconn_status_add_zone(ngx_conf_t *cf, ngx_wgconn_conf_t *wcf)
{
    ngx_str_t  name = ngx_string("wgconn_status");

    wcf->status_zone = ngx_shared_memory_add(cf, &name,
                                             NGX_WGCONN_STATUS_ZONE,
                                             &ngx_wgconn_module);
    if (wcf->status_zone == NULL) {
        return NGX_ERROR;
    }

    wcf->status_zone->init = ngx_wgconn_status_init_zone;
    wcf->status_zone->data = wcf;

    return NGX_OK;
}


static ngx_int_t
ngx_wgconn_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t      *shpool;
    ngx_wgconn_status_t  *st;

    /*
     * a zone kept from the previous cycle holds the snapshot the engine
     * (which outlives the cycle) keeps writing to
     */

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    /* the zone starts with nginx's slab pool header: allocate from it */

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    st = ngx_slab_alloc(shpool, NGX_WGCONN_STATUS_SIZE);
    if (st == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(st, sizeof(ngx_wgconn_status_t));

    shm_zone->data = st;

    return NGX_OK;
}


/* in the engine */

void
ngx_wgconn_status_publish(ngx_wgconn_conf_t *wcf, wg_device_t *dev,
    wg_peer_t **peers, ngx_uint_t npeers, uint64_t flows)
{
    size_t                     len;
    time_t                     now;
    uint64_t                   mono;
    ngx_uint_t                 i;
    wg_peer_stats_t            ps;
    ngx_wgconn_status_t       *st;
    ngx_wgconn_peer_conf_t    *pcf;
    ngx_wgconn_status_peer_t  *sp;

    if (wcf->status_zone == NULL || wcf->status_zone->data == NULL) {
        return;
    }

    st = wcf->status_zone->data;

    now = ngx_time();
    mono = ngx_wgconn_now();

    npeers = ngx_min(npeers, ngx_wgconn_status_max_peers);

    (void) ngx_atomic_fetch_add(&st->seq, 1);
    ngx_memory_barrier();

    st->updated = now;
    st->pid = ngx_pid;
    wg_device_public_key(dev, st->key);
    st->listen_port = (uint32_t) wcf->listen_port;
    st->dev = *wg_device_stats(dev);
    st->flows = flows;
    ngx_wgconn_netstack_tcp_counts(&st->tcp_active, &st->tcp_time_wait,
                                   &st->tcp_resent);
    st->mem = wgc_mem;
    st->npeers = (uint32_t) npeers;
    st->nlistens = (uint32_t) ngx_wgconn_inbound_stats(st->listens,
                                                       NGX_WGCONN_MAX_LISTEN);

    for (i = 0; i < npeers; i++) {
        sp = &st->peers[i];
        pcf = wg_peer_data(peers[i]);

        wg_peer_public_key(peers[i], sp->key);
        wg_peer_get_stats(peers[i], &ps);

        len = ngx_min(pcf->name.len, NGX_WGCONN_STATUS_NAME_LEN - 1);
        ngx_memcpy(sp->name, pcf->name.data, len);
        sp->name[len] = '\0';

        sp->endpoint = ps.endpoint;
        sp->rx_bytes = ps.rx_bytes;
        sp->tx_bytes = ps.tx_bytes;
        sp->has_session = ps.has_session;
        sp->handshake = ps.last_handshake_ns
                        ? now - (time_t) ((mono - ps.last_handshake_ns)
                                          / 1000000000)
                        : 0;
    }

    ngx_memory_barrier();
    (void) ngx_atomic_fetch_add(&st->seq, 1);
}


/* in a worker: the snapshot as text, into a buffer from pool */

ngx_buf_t *
ngx_wgconn_status_render(ngx_pool_t *pool, ngx_wgconn_conf_t *wcf)
{
    u_char                    *p, *last;
    size_t                     size;
    time_t                     now;
    ngx_str_t                  key, b64;
    ngx_buf_t                 *b;
    ngx_uint_t                 i, try, seq;
    ngx_wgconn_status_t       *st, *copy;
    ngx_wgconn_status_peer_t  *sp;

    if (wcf->status_zone == NULL || wcf->status_zone->data == NULL) {
        return NULL;
    }

    st = wcf->status_zone->data;

    copy = ngx_palloc(pool, NGX_WGCONN_STATUS_SIZE);
    if (copy == NULL) {
        return NULL;
    }

    for (try = 0; try < 100; try++) {
        seq = st->seq;
        ngx_memory_barrier();

        ngx_memcpy(copy, st, sizeof(ngx_wgconn_status_t)
                             + ngx_min(st->npeers, ngx_wgconn_status_max_peers)
                               * sizeof(ngx_wgconn_status_peer_t));

        ngx_memory_barrier();

        if (!(seq & 1) && seq == st->seq) {
            break;
        }
    }

    size = 1024 + copy->npeers * 256 + WG_DROP_MAX * 64
           + copy->nlistens * 80;

    b = ngx_create_temp_buf(pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;
    last = b->end;
    now = ngx_time();

    key.len = NGX_WGCONN_KEY_LEN;
    b64.data = ngx_pnalloc(pool, ngx_base64_encoded_length(key.len));
    if (b64.data == NULL) {
        return NULL;
    }

    if (copy->updated == 0) {
        p = ngx_slprintf(p, last, "engine: not running\n");
        b->last = p;
        return b;
    }

    key.data = copy->key;
    ngx_encode_base64(&b64, &key);

    p = ngx_slprintf(p, last,
                     "node: public key %V, udp port %uD, engine pid %P, "
                     "updated %T s ago\n"
                     "flows: %uL\n"
                     "tcp: %uL connections, %uL in time-wait\n"
                     "tcp resent: %uL segments\n"
                     "memory: %uz bytes of %uz, peak %uz, "
                     "%ul segments dropped, %ul allocations refused\n"
                     "rx: %uL packets, %uL bytes\n"
                     "tx: %uL packets, %uL bytes\n",
                     &b64, copy->listen_port, copy->pid, now - copy->updated,
                     copy->flows, copy->tcp_active, copy->tcp_time_wait,
                     copy->tcp_resent,
                     copy->mem.used, copy->mem.limit, copy->mem.peak,
                     copy->mem.dropped, copy->mem.refused,
                     copy->dev.rx_packets, copy->dev.rx_bytes,
                     copy->dev.tx_packets, copy->dev.tx_bytes);

    p = ngx_slprintf(p, last, "dropped:");

    for (i = 1; i < WG_DROP_MAX; i++) {
        p = ngx_wgconn_status_counter(p, last,
                                      wg_result_str((wg_result_t) i),
                                      copy->dev.drops[i]);
    }

    p = ngx_slprintf(p, last, "\n");

    for (i = 0; i < copy->nlistens && i < NGX_WGCONN_MAX_LISTEN; i++) {
        p = ngx_slprintf(p, last, "listen: %s %uD accepted %uL dropped %uL\n",
                         copy->listens[i].type == SOCK_DGRAM ? "udp" : "tcp",
                         (uint32_t) copy->listens[i].port,
                         copy->listens[i].accepted,
                         copy->listens[i].dropped);
    }

    for (i = 0; i < copy->npeers; i++) {
        sp = &copy->peers[i];

        key.data = sp->key;
        ngx_encode_base64(&b64, &key);

        p = ngx_slprintf(p, last, "peer: %s key %V endpoint ", sp->name,
                         &b64);
        p = ngx_wgconn_endpoint_text(p, last, &sp->endpoint);

        if (sp->handshake) {
            p = ngx_slprintf(p, last, " handshake %T s ago",
                             now - sp->handshake);

        } else {
            p = ngx_slprintf(p, last, " handshake never");
        }

        p = ngx_slprintf(p, last, " session %s rx %uL tx %uL\n",
                         sp->has_session ? "yes" : "no",
                         sp->rx_bytes, sp->tx_bytes);
    }

    b->last = p;

    return b;
}


/* a peer's endpoint as "addr:port", or "none": the status page and logs */

u_char *
ngx_wgconn_endpoint_text(u_char *p, u_char *last, wg_endpoint_t *ep)
{
    u_char  text[NGX_SOCKADDR_STRLEN];
    size_t  len;

    if (ep->len == 0) {
        return ngx_slprintf(p, last, "none");
    }

    len = ngx_sock_ntop(&ep->addr.sa, ep->len, text, NGX_SOCKADDR_STRLEN, 1);

    return ngx_slprintf(p, last, "%*s", len, text);
}


/* " name_with_underscores=value": one token per counter, easy to parse */

static u_char *
ngx_wgconn_status_counter(u_char *p, u_char *last, const char *name,
    uint64_t value)
{
    if (p < last) {
        *p++ = ' ';
    }

    while (*name && p < last) {
        *p++ = (*name == ' ') ? '_' : *name;
        name++;
    }

    return ngx_slprintf(p, last, "=%uL", value);
}
