
/*
 * ngx_http_wgconn_module: http upstreams reach overlay peers.  At
 * postconfiguration, after every upstream's init_upstream has run, each
 * upstream's per-request init is wrapped, so that whatever balancer it
 * uses (round robin, hash, keepalive on top) hands its chosen peer to the
 * overlay when the address lies inside it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_wgconn.h"


static ngx_int_t ngx_http_wgconn_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_wgconn_postconfiguration(ngx_conf_t *cf);
static char *ngx_http_wgconn_listen(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_wgconn_peer_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static char *ngx_http_wgconn_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_wgconn_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_wgconn_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);


static ngx_command_t  ngx_http_wgconn_commands[] = {

    { ngx_string("wgconn_listen"),
      NGX_HTTP_SRV_CONF|NGX_CONF_1MORE,
      ngx_http_wgconn_listen,
      0,
      0,
      NULL },

    { ngx_string("wgconn_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_wgconn_status,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_wgconn_module_ctx = {
    ngx_http_wgconn_add_variables,         /* preconfiguration */
    ngx_http_wgconn_postconfiguration,     /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_wgconn_module = {
    NGX_MODULE_V1,
    &ngx_http_wgconn_module_ctx,           /* module context */
    ngx_http_wgconn_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_wgconn_vars[] = {

    { ngx_string("wgconn_peer_key"), NULL, ngx_http_wgconn_peer_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("wgconn_peer_name"), NULL, ngx_http_wgconn_peer_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_wgconn_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_wgconn_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* the overlay peer a client connection came from; empty otherwise */

static ngx_int_t
ngx_http_wgconn_peer_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    return ngx_wgconn_listen_variable(r->connection, v, data);
}


static char *
ngx_http_wgconn_listen(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_wgconn_listen_conf(cf, &ngx_http_core_module,
                  ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module),
                  0);
}


static ngx_int_t
ngx_http_wgconn_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                       i;
    ngx_http_upstream_srv_conf_t   **uscfp;
    ngx_http_upstream_main_conf_t   *umcf;

    if (!ngx_wgconn_get_conf(cf->cycle)->enabled) {
        return NGX_OK;
    }

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if (uscfp[i]->peer.init == NULL) {
            continue;
        }

        if (ngx_wgconn_upstream_hook(cf, uscfp[i],
                                     (ngx_wgconn_init_pt) uscfp[i]->peer.init)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        uscfp[i]->peer.init = ngx_http_wgconn_init_peer;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_wgconn_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_wgconn_init_pt  init;

    init = ngx_wgconn_upstream_original(us);

    if (init == NULL || init(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_wgconn_upstream_wrap(&r->upstream->peer, r->pool,
                                    NGX_WGCONN_CLIENT_FIRST);
}


static char *
ngx_http_wgconn_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_wgconn_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_wgconn_status_handler(ngx_http_request_t *r)
{
    ngx_int_t           rc;
    ngx_buf_t          *b;
    ngx_chain_t         out;
    ngx_wgconn_conf_t  *wcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    wcf = ngx_wgconn_get_conf((ngx_cycle_t *) ngx_cycle);

    if (!wcf->enabled) {
        return NGX_HTTP_NOT_FOUND;
    }

    b = ngx_wgconn_status_render(r->pool, wcf);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
