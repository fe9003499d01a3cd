
/*
 * nginx servers on the overlay ("wgconn_listen PORT [options]").
 *
 * The directive is nginx's own "listen" given an address that no host can
 * have, once for IPv4 and once for IPv6, so that every option nginx knows
 * (ssl, http2, default_server, udp, proxy_protocol) and its choice of
 * virtual server work unchanged.  When the http and stream blocks are
 * built, the listening structures made for those addresses are taken out
 * of the cycle, so no socket is ever opened for them, and kept per port.
 *
 * The engine accepts on the overlay and passes a worker each connection's
 * descriptor with the addresses and the calling peer; the worker does what
 * ngx_event_accept() would do and calls the listening's handler, so
 * $remote_addr, allow/deny and the logs see the overlay peer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"


/* 0.0.0.0/8 is "this network", never a destination; 100::/64 discards */
#define NGX_WGCONN_LISTEN_INET   "0.0.0.1"
#define NGX_WGCONN_LISTEN_INET6  "[100::1]"


/* who is calling on an overlay connection, for $wgconn_peer_* */
typedef struct {
    ngx_str_t                  key;      /* base64, as in "wg show" */
    ngx_str_t                  name;
} ngx_wgconn_ident_t;


typedef struct {
    ngx_atomic_uint_t          number;
    ngx_wgconn_ident_t        *ident;
} ngx_wgconn_ident_slot_t;


static ngx_wgconn_listen_t *ngx_wgconn_listen_find(ngx_wgconn_conf_t *wcf,
    ngx_uint_t type, in_port_t port);
static char *ngx_wgconn_listen_call(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf, const char *addr, ngx_str_t *port, ngx_array_t *opts);
static ngx_int_t ngx_wgconn_listen_family(struct sockaddr *sa);
static void ngx_wgconn_listening_move(ngx_listening_t *dst,
    ngx_listening_t *src);
static ngx_int_t ngx_wgconn_listen_first_datagram(ngx_connection_t *c);
static ngx_int_t ngx_wgconn_ident_set(ngx_connection_t *c,
    ngx_wgconn_accept_t *a);


static ngx_wgconn_ident_slot_t  *ngx_wgconn_idents;
static ngx_uint_t                ngx_wgconn_nidents;


static ngx_str_t  ngx_wgconn_listen_http_opts[] = {
    ngx_string("ssl"),
    ngx_string("http2"),
    ngx_string("default_server"),
    ngx_string("default"),
    ngx_string("proxy_protocol"),
    ngx_null_string
};


static ngx_str_t  ngx_wgconn_listen_stream_opts[] = {
    ngx_string("udp"),
    ngx_string("ssl"),
    ngx_string("proxy_protocol"),
    ngx_null_string
};


/* the "wgconn_listen" directive of http and stream server blocks */

char *
ngx_wgconn_listen_conf(ngx_conf_t *cf, ngx_module_t *core,
    void *core_srv_conf, ngx_uint_t stream)
{
    char                 *rv;
    ngx_int_t             port;
    ngx_str_t            *value, *known, *opt;
    ngx_uint_t            i, type, bind;
    ngx_array_t           opts;
    ngx_command_t        *cmd;
    ngx_wgconn_conf_t    *wcf;
    ngx_wgconn_listen_t  *l;

    value = cf->args->elts;

    port = ngx_atoi(value[1].data, value[1].len);

    if (port < 1 || port > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid port \"%V\" in \"wgconn_listen\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&opts, cf->temp_pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    type = SOCK_STREAM;

    for (i = 2; i < cf->args->nelts; i++) {

        known = stream ? ngx_wgconn_listen_stream_opts
                       : ngx_wgconn_listen_http_opts;

        for ( /* void */ ; known->len; known++) {
            if (known->len == value[i].len
                && ngx_strncmp(known->data, value[i].data, known->len) == 0)
            {
                break;
            }
        }

        if (known->len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of "
                               "\"wgconn_listen\"; it takes %s", &value[i],
                               stream ? "udp, ssl and proxy_protocol"
                                      : "ssl, http2, default_server and "
                                        "proxy_protocol");
            return NGX_CONF_ERROR;
        }

        if (ngx_strcmp(value[i].data, "udp") == 0) {
            type = SOCK_DGRAM;
        }

        opt = ngx_array_push(&opts);
        if (opt == NULL) {
            return NGX_CONF_ERROR;
        }

        *opt = value[i];
    }

    wcf = ngx_wgconn_get_conf(cf->cycle);

    l = ngx_wgconn_listen_find(wcf, type, (in_port_t) port);

    if (l && stream) {
        /* stream servers do not share a port */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate \"wgconn_listen %V%s\", first in "
                           "%V:%ui", &value[1],
                           type == SOCK_DGRAM ? " udp" : "",
                           &l->file, l->line);
        return NGX_CONF_ERROR;
    }

    /*
     * http servers share a port by name; the first "wgconn_listen" of a
     * port asks for a socket of its own ("bind"), so that it never merges
     * with a wildcard "listen" on the same port
     */
    bind = (l == NULL);

    if (l == NULL) {
        if (wcf->listens.nelts == NGX_WGCONN_MAX_LISTEN) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "too many \"wgconn_listen\" ports, at most %d",
                               NGX_WGCONN_MAX_LISTEN);
            return NGX_CONF_ERROR;
        }

        l = ngx_array_push(&wcf->listens);
        if (l == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(l, sizeof(ngx_wgconn_listen_t));
        l->type = type;
        l->port = (in_port_t) port;
        l->file = cf->conf_file->file.name;
        l->line = cf->conf_file->line;
    }

    if (bind) {
        opt = ngx_array_push(&opts);
        if (opt == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(opt, "bind");
    }

    for (cmd = core->commands; cmd->name.len; cmd++) {
        if (ngx_strcmp(cmd->name.data, "listen") == 0) {
            break;
        }
    }

    if (cmd->name.len == 0) {
        return "cannot find the \"listen\" directive";
    }

    rv = ngx_wgconn_listen_call(cf, cmd, core_srv_conf,
                                NGX_WGCONN_LISTEN_INET, &value[1], &opts);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_wgconn_listen_call(cf, cmd, core_srv_conf,
                                  NGX_WGCONN_LISTEN_INET6, &value[1], &opts);
}


static ngx_wgconn_listen_t *
ngx_wgconn_listen_find(ngx_wgconn_conf_t *wcf, ngx_uint_t type,
    in_port_t port)
{
    ngx_uint_t            i;
    ngx_wgconn_listen_t  *l;

    l = wcf->listens.elts;

    for (i = 0; i < wcf->listens.nelts; i++) {
        if (l[i].type == type && l[i].port == port) {
            return &l[i];
        }
    }

    return NULL;
}


/* run nginx's "listen" with our address; its errors point at our line */

static char *
ngx_wgconn_listen_call(ngx_conf_t *cf, ngx_command_t *cmd, void *conf,
    const char *addr, ngx_str_t *port, ngx_array_t *opts)
{
    char         *rv;
    size_t        len;
    ngx_str_t    *arg;
    ngx_array_t  *saved, args;

    if (ngx_array_init(&args, cf->temp_pool, opts->nelts + 2,
                       sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    arg = ngx_array_push_n(&args, opts->nelts + 2);
    if (arg == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&arg[0], "listen");

    len = ngx_strlen(addr) + 1 + port->len;

    arg[1].data = ngx_pnalloc(cf->pool, len + 1);
    if (arg[1].data == NULL) {
        return NGX_CONF_ERROR;
    }

    arg[1].len = ngx_sprintf(arg[1].data, "%s:%V%Z", addr, port)
                 - arg[1].data - 1;

    ngx_memcpy(&arg[2], opts->elts, opts->nelts * sizeof(ngx_str_t));

    saved = cf->args;
    cf->args = &args;

    rv = cmd->set(cf, cmd, conf);

    cf->args = saved;

    return rv;
}


/*
 * core module init_conf, after the http and stream blocks: take our
 * listening structures out of the cycle, keeping the others in order
 */

ngx_int_t
ngx_wgconn_listen_extract(ngx_cycle_t *cycle, ngx_wgconn_conf_t *wcf)
{
    u_char               *p;
    ngx_int_t             family;
    ngx_uint_t            i, kept;
    ngx_listening_t      *ls, *copy;
    ngx_wgconn_listen_t  *l;

    if (wcf->listens.nelts == 0) {
        return NGX_OK;
    }

    if (!wcf->enabled) {
        l = wcf->listens.elts;
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"wgconn_listen\" in %V:%ui needs a \"wgconn\" block "
                      "(the node it listens on)", &l->file, l->line);
        return NGX_ERROR;
    }

    ls = cycle->listening.elts;
    kept = 0;

    for (i = 0; i < cycle->listening.nelts; i++) {

        family = ngx_wgconn_listen_family(ls[i].sockaddr);

        if (family == NGX_DECLINED) {
            if (kept != i) {
                ngx_wgconn_listening_move(&ls[kept], &ls[i]);
            }

            kept++;
            continue;
        }

        l = ngx_wgconn_listen_find(wcf, ls[i].type,
                                   ngx_inet_get_port(ls[i].sockaddr));
        if (l == NULL) {
            continue;
        }

        copy = ngx_palloc(cycle->pool, sizeof(ngx_listening_t));
        if (copy == NULL) {
            return NGX_ERROR;
        }

        ngx_wgconn_listening_move(copy, &ls[i]);

        /* what logs show as the server: "wgconn:443" */

        p = ngx_pnalloc(cycle->pool, sizeof("wgconn:65535 udp") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        copy->addr_text.data = p;
        copy->addr_text.len = ngx_sprintf(p, "wgconn:%d%s", (int) l->port,
                                          l->type == SOCK_DGRAM ? " udp" : "")
                              - p;

        l->ls[family] = copy;
    }

    cycle->listening.nelts = kept;

    return NGX_OK;
}


static ngx_int_t
ngx_wgconn_listen_family(struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;
    static u_char         v6[16] = { 0x01, 0x00, 0, 0, 0, 0, 0, 0,
                                     0, 0, 0, 0, 0, 0, 0, 0x01 };

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return (sin->sin_addr.s_addr == htonl(1)) ? 0 : NGX_DECLINED;

    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        return (ngx_memcmp(sin6->sin6_addr.s6_addr, v6, 16) == 0)
               ? 1 : NGX_DECLINED;

    default:
        return NGX_DECLINED;
    }
}


/* a listening structure points into itself: keep that true when moved */

static void
ngx_wgconn_listening_move(ngx_listening_t *dst, ngx_listening_t *src)
{
    *dst = *src;

    if (src->log.data == &src->addr_text) {
        dst->log.data = &dst->addr_text;
    }

    if (src->rbtree.root == &src->sentinel) {
        ngx_rbtree_init(&dst->rbtree, &dst->sentinel, src->rbtree.insert);
    }
}


ngx_uint_t
ngx_wgconn_listen_specs(ngx_wgconn_conf_t *wcf,
    ngx_wgconn_listen_spec_t *specs, ngx_uint_t max)
{
    ngx_uint_t            i, n;
    ngx_wgconn_listen_t  *l;

    l = wcf->listens.elts;
    n = ngx_min(wcf->listens.nelts, max);

    for (i = 0; i < n; i++) {
        specs[i].port = l[i].port;
        specs[i].type = (uint16_t) l[i].type;
    }

    return n;
}


/* in a worker: an overlay connection the engine accepted; fd is consumed */

void
ngx_wgconn_listen_accept(ngx_wgconn_accept_t *a, ngx_socket_t fd)
{
    ngx_log_t            *log;
    ngx_uint_t            family;
    ngx_listening_t      *ls;
    ngx_connection_t     *c;
    ngx_wgconn_listen_t  *l;

    family = (a->peer.sockaddr.sa_family == AF_INET6) ? 1 : 0;

    l = ngx_wgconn_listen_find(ngx_wgconn_get_conf((ngx_cycle_t *) ngx_cycle),
                               a->type, (in_port_t) a->port);

    ls = l ? l->ls[family] : NULL;

    if (ls == NULL
        || a->peer_len > sizeof(ngx_sockaddr_t)
        || a->local_len > sizeof(ngx_sockaddr_t))
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "wgconn: no server for overlay port %ui",
                      (ngx_uint_t) a->port);
        close(fd);
        return;
    }

#if (NGX_STAT_STUB)
    (void) ngx_atomic_fetch_add(ngx_stat_accepted, 1);
#endif

    c = ngx_get_connection(fd, ngx_cycle->log);
    if (c == NULL) {
        close(fd);
        return;
    }

    c->type = a->type;

#if (NGX_STAT_STUB)
    (void) ngx_atomic_fetch_add(ngx_stat_active, 1);
#endif

    c->pool = ngx_create_pool(ls->pool_size, ngx_cycle->log);
    if (c->pool == NULL) {
        goto failed;
    }

    c->sockaddr = ngx_palloc(c->pool, a->peer_len);
    c->local_sockaddr = ngx_palloc(c->pool, a->local_len);
    log = ngx_palloc(c->pool, sizeof(ngx_log_t));

    if (c->sockaddr == NULL || c->local_sockaddr == NULL || log == NULL) {
        goto failed;
    }

    ngx_memcpy(c->sockaddr, &a->peer, a->peer_len);
    c->socklen = a->peer_len;
    ngx_memcpy(c->local_sockaddr, &a->local, a->local_len);
    c->local_socklen = a->local_len;

    *log = ls->log;

    c->log = log;
    c->pool->log = log;
    c->read->log = log;
    c->write->log = log;
    c->listening = ls;

    if (a->type == SOCK_DGRAM) {
        c->recv = ngx_udp_recv;
        c->send = ngx_udp_send;
        c->send_chain = ngx_udp_send_chain;

    } else {
        c->recv = ngx_recv;
        c->send = ngx_send;
        c->recv_chain = ngx_recv_chain;
        c->send_chain = ngx_send_chain;
    }

    /* a local socket pair has no TCP options to set */
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;

    c->write->ready = 1;

    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

#if (NGX_STAT_STUB)
    (void) ngx_atomic_fetch_add(ngx_stat_handled, 1);
#endif

    if (ls->addr_ntop) {
        c->addr_text.data = ngx_pnalloc(c->pool, ls->addr_text_max_len);
        if (c->addr_text.data == NULL) {
            goto failed;
        }

        c->addr_text.len = ngx_sock_ntop(c->sockaddr, c->socklen,
                                         c->addr_text.data,
                                         ls->addr_text_max_len, 0);
        if (c->addr_text.len == 0) {
            goto failed;
        }
    }

    if (ngx_wgconn_ident_set(c, a) != NGX_OK) {
        goto failed;
    }

    if (a->type == SOCK_DGRAM
        && ngx_wgconn_listen_first_datagram(c) != NGX_OK)
    {
        goto failed;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, log, 0,
                   "*%uA wgconn accept: %V fd:%d", c->number, &c->addr_text,
                   c->fd);

    log->data = NULL;
    log->handler = NULL;

    ls->handler(c);

    return;

failed:

#if (NGX_STAT_STUB)
    (void) ngx_atomic_fetch_add(ngx_stat_active, -1);
#endif

    if (c->pool) {
        ngx_destroy_pool(c->pool);
    }

    ngx_close_connection(c);
}


/* as nginx's UDP listeners do: the session starts with its first datagram */

static ngx_int_t
ngx_wgconn_listen_first_datagram(ngx_connection_t *c)
{
    ssize_t  n;
    u_char   buf[65536];

    n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n == -1) {
        return (ngx_socket_errno == NGX_EAGAIN) ? NGX_OK : NGX_ERROR;
    }

    c->buffer = ngx_create_temp_buf(c->pool, n ? n : 1);
    if (c->buffer == NULL) {
        return NGX_ERROR;
    }

    c->buffer->last = ngx_cpymem(c->buffer->last, buf, n);

    return NGX_OK;
}


/*
 * The calling peer, by descriptor: HTTP/2 streams run on copies of the
 * connection (same fd and number), and the connection's number tells a
 * reused descriptor apart, so a stale slot is never followed.
 */

static ngx_int_t
ngx_wgconn_ident_set(ngx_connection_t *c, ngx_wgconn_accept_t *a)
{
    ngx_str_t                 raw;
    ngx_uint_t                n;
    ngx_wgconn_ident_t       *id;
    ngx_wgconn_ident_slot_t  *slots;

    if ((ngx_uint_t) c->fd >= ngx_wgconn_nidents) {
        n = ngx_max((ngx_uint_t) c->fd + 1, ngx_wgconn_nidents * 2);
        n = ngx_max(n, 256);

        slots = ngx_calloc(n * sizeof(ngx_wgconn_ident_slot_t), c->log);
        if (slots == NULL) {
            return NGX_ERROR;
        }

        if (ngx_wgconn_idents) {
            ngx_memcpy(slots, ngx_wgconn_idents,
                       ngx_wgconn_nidents * sizeof(ngx_wgconn_ident_slot_t));
            ngx_free(ngx_wgconn_idents);
        }

        ngx_wgconn_idents = slots;
        ngx_wgconn_nidents = n;
    }

    id = ngx_palloc(c->pool, sizeof(ngx_wgconn_ident_t));
    if (id == NULL) {
        return NGX_ERROR;
    }

    id->key.data = ngx_pnalloc(c->pool,
                               ngx_base64_encoded_length(NGX_WGCONN_KEY_LEN));
    id->name.data = ngx_pnalloc(c->pool, a->name_len);

    if (id->key.data == NULL || id->name.data == NULL) {
        return NGX_ERROR;
    }

    raw.data = a->key;
    raw.len = NGX_WGCONN_KEY_LEN;
    ngx_encode_base64(&id->key, &raw);

    id->name.len = ngx_min(a->name_len, NGX_WGCONN_NAME_LEN);
    ngx_memcpy(id->name.data, a->name, id->name.len);

    ngx_wgconn_idents[c->fd].number = c->number;
    ngx_wgconn_idents[c->fd].ident = id;

    return NGX_OK;
}


ngx_int_t
ngx_wgconn_listen_peer(ngx_connection_t *c, ngx_str_t *key, ngx_str_t *name)
{
    ngx_wgconn_ident_slot_t  *slot;

    if (c->fd == (ngx_socket_t) -1
        || (ngx_uint_t) c->fd >= ngx_wgconn_nidents)
    {
        return NGX_DECLINED;
    }

    slot = &ngx_wgconn_idents[c->fd];

    if (slot->ident == NULL || slot->number != c->number) {
        return NGX_DECLINED;
    }

    if (key) {
        *key = slot->ident->key;
    }

    if (name) {
        *name = slot->ident->name;
    }

    return NGX_OK;
}


/* $wgconn_peer_key (data 0) and $wgconn_peer_name (1), http and stream */

ngx_int_t
ngx_wgconn_listen_variable(ngx_connection_t *c, ngx_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t  key, name, *val;

    if (ngx_wgconn_listen_peer(c, &key, &name) != NGX_OK) {
        v->not_found = 1;
        return NGX_OK;
    }

    val = data ? &name : &key;

    v->len = val->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = val->data;

    return NGX_OK;
}
