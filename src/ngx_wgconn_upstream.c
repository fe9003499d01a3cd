
/*
 * The upstream hook shared by http and stream: it wraps a balancer's peer
 * functions, as the keepalive module does, and when the balancer picks an
 * address inside the overlay it hands nginx one end of a local socket pair
 * whose other end is bridged to the overlay connection.  nginx keeps a
 * real fd, so keepalive, proxy_ssl, timeouts and sendfile all work as
 * with any upstream.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"


typedef struct {
    void                            *data;
    ngx_uint_t                       flags;      /* NGX_WGCONN_CLIENT_FIRST */
    ngx_event_get_peer_pt            get;
    ngx_event_free_peer_pt           free;
    ngx_event_notify_peer_pt         notify;
#if (NGX_SSL || NGX_COMPAT)
    ngx_event_set_peer_session_pt    set_session;
    ngx_event_save_peer_session_pt   save_session;
#endif
} ngx_wgconn_upstream_peer_t;


/* an nginx-side connection waiting for its overlay connection */
typedef struct {
    ngx_connection_t                *c;
    ngx_atomic_uint_t                number;
    ngx_str_t                       *name;
} ngx_wgconn_pending_t;


static ngx_int_t ngx_wgconn_upstream_get(ngx_peer_connection_t *pc,
    void *data);
static void ngx_wgconn_upstream_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
static void ngx_wgconn_upstream_notify(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t type);
#if (NGX_SSL || NGX_COMPAT)
static ngx_int_t ngx_wgconn_upstream_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_wgconn_upstream_save_session(ngx_peer_connection_t *pc,
    void *data);
#endif
static ngx_int_t ngx_wgconn_upstream_connect(ngx_peer_connection_t *pc,
    ngx_uint_t flags);


/*
 * The original per-request init of each wrapped upstream, http or stream:
 * kept in the cycle's configuration, so a reload starts from a clean table.
 */

ngx_int_t
ngx_wgconn_upstream_hook(ngx_conf_t *cf, void *uscf, ngx_wgconn_init_pt init)
{
    ngx_wgconn_conf_t  *wcf;
    ngx_wgconn_hook_t  *hook;

    wcf = ngx_wgconn_get_conf(cf->cycle);

    hook = ngx_array_push(&wcf->hooks);
    if (hook == NULL) {
        return NGX_ERROR;
    }

    hook->uscf = uscf;
    hook->init = init;

    return NGX_OK;
}


ngx_wgconn_init_pt
ngx_wgconn_upstream_original(void *uscf)
{
    ngx_uint_t          i;
    ngx_wgconn_conf_t  *wcf;
    ngx_wgconn_hook_t  *hook;

    wcf = ngx_wgconn_get_conf((ngx_cycle_t *) ngx_cycle);

    hook = wcf->hooks.elts;

    for (i = 0; i < wcf->hooks.nelts; i++) {
        if (hook[i].uscf == uscf) {
            return hook[i].init;
        }
    }

    return NULL;
}


ngx_int_t
ngx_wgconn_upstream_wrap(ngx_peer_connection_t *pc, ngx_pool_t *pool,
    ngx_uint_t flags)
{
    ngx_wgconn_upstream_peer_t  *wp;

    wp = ngx_palloc(pool, sizeof(ngx_wgconn_upstream_peer_t));
    if (wp == NULL) {
        return NGX_ERROR;
    }

    wp->data = pc->data;
    wp->flags = flags;
    wp->get = pc->get;
    wp->free = pc->free;
    wp->notify = pc->notify;

    /* every hook nginx calls with pc->data must see the original data */

    pc->data = wp;
    pc->get = ngx_wgconn_upstream_get;
    pc->free = ngx_wgconn_upstream_free;

    if (pc->notify) {
        pc->notify = ngx_wgconn_upstream_notify;
    }

#if (NGX_SSL || NGX_COMPAT)
    wp->set_session = pc->set_session;
    wp->save_session = pc->save_session;

    if (pc->set_session) {
        pc->set_session = ngx_wgconn_upstream_set_session;
    }

    if (pc->save_session) {
        pc->save_session = ngx_wgconn_upstream_save_session;
    }
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_wgconn_upstream_get(ngx_peer_connection_t *pc, void *data)
{
    ngx_wgconn_upstream_peer_t  *wp = data;

    ngx_int_t  rc;

    rc = wp->get(pc, wp->data);

    /* NGX_DONE: the keepalive module handed over a cached connection */

    if (rc != NGX_OK || !ngx_wgconn_routes((ngx_cycle_t *) ngx_cycle,
                                           pc->sockaddr))
    {
        return rc;
    }

    return ngx_wgconn_upstream_connect(pc, wp->flags);
}


static void
ngx_wgconn_upstream_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_wgconn_upstream_peer_t  *wp = data;

    wp->free(pc, wp->data, state);
}


static void
ngx_wgconn_upstream_notify(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t type)
{
    ngx_wgconn_upstream_peer_t  *wp = data;

    wp->notify(pc, wp->data, type);
}


#if (NGX_SSL || NGX_COMPAT)

static ngx_int_t
ngx_wgconn_upstream_set_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_wgconn_upstream_peer_t  *wp = data;

    return wp->set_session(pc, wp->data);
}


static void
ngx_wgconn_upstream_save_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_wgconn_upstream_peer_t  *wp = data;

    wp->save_session(pc, wp->data);
}

#endif


/*
 * Returns NGX_AGAIN with pc->connection set but not yet in the event
 * loop: nginx arms proxy_connect_timeout on its write event, and the write
 * event fires only when the overlay connection is established.  NGX_OK
 * would make nginx open a socket of its own.
 */

static ngx_int_t
ngx_wgconn_upstream_connect(ngx_peer_connection_t *pc, ngx_uint_t flags)
{
    int                    type, sv[2];
    ngx_int_t              rc;
    ngx_connection_t      *c;
    ngx_wgconn_pending_t  *pending;

    type = pc->type ? pc->type : SOCK_STREAM;

    /* SEQPACKET keeps datagram boundaries and still reports a close */

    if (socketpair(AF_UNIX,
                   (type == SOCK_STREAM ? SOCK_STREAM : SOCK_SEQPACKET)
                   | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   0, sv)
        == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                      "wgconn: socketpair() failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(sv[0], pc->log);
    if (c == NULL) {
        close(sv[0]);
        close(sv[1]);
        return NGX_ERROR;
    }

    c->type = type;

    if (type == SOCK_STREAM) {
        c->recv = ngx_recv;
        c->send = ngx_send;
        c->recv_chain = ngx_recv_chain;
        c->send_chain = ngx_send_chain;
        c->sendfile = 1;
        c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;
        c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;

    } else {
        c->recv = ngx_udp_recv;
        c->send = ngx_send;
        c->send_chain = ngx_udp_send_chain;
    }

    c->log_error = pc->log_error;
    c->read->log = pc->log;
    c->write->log = pc->log;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

    pc->connection = c;

    pending = ngx_alloc(sizeof(ngx_wgconn_pending_t), pc->log);
    if (pending == NULL) {
        goto failed;
    }

    pending->c = c;
    pending->number = c->number;
    pending->name = pc->name;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, pc->log, 0,
                   "wgconn: overlay connect to %V #%uA", pc->name,
                   c->number);

    /* sv[1] is consumed; on NGX_OK the callback comes exactly once */

    rc = ngx_wgconn_bridge_open(type, flags, pc->sockaddr, pc->socklen,
                                sv[1], pc->log, ngx_wgconn_upstream_opened,
                                pending);
    sv[1] = -1;

    if (rc != NGX_OK) {
        goto declined;
    }

    if (type == SOCK_STREAM) {
        return NGX_AGAIN;
    }

    /*
     * UDP is "connected" at once, as a UDP socket is: nginx buffers client
     * datagrams until its upstream is writable and truncates those that
     * do not fit, while the socket pair takes them now and the engine
     * reads them as soon as the flow exists.  NGX_DONE hands the
     * connection over as the keepalive module does.
     */

    if (!c->read->active && ngx_add_conn(c) == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_DONE;

declined:

    ngx_free(pending);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                      "wgconn: %V is in the overlay but the overlay engine "
                      "is not reachable", pc->name);
        ngx_close_connection(c);
        pc->connection = NULL;
        return NGX_DECLINED;
    }

failed:

    if (sv[1] != -1) {
        close(sv[1]);
    }

    ngx_close_connection(c);
    pc->connection = NULL;

    return NGX_ERROR;
}


void
ngx_wgconn_upstream_opened(void *data, ngx_int_t rc, ngx_err_t err)
{
    ngx_wgconn_pending_t  *pending = data;

    ngx_connection_t  *c;

    c = pending->c;

    /* nginx may have closed (and reused) the connection meanwhile */

    if (c->number != pending->number || c->fd == (ngx_socket_t) -1) {
        ngx_free(pending);
        return;
    }

    if (rc != NGX_OK) {
        /*
         * The flow closes its end: nginx's first write fails and
         * proxy_next_upstream moves on at once.
         */
        ngx_log_error(NGX_LOG_ERR, c->log, err,
                      "wgconn: connect() to %V over the overlay failed",
                      pending->name);
    }

    ngx_free(pending);

    if (!c->read->active && ngx_add_conn(c) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "wgconn: cannot add connection to the event loop");
    }
}
