
/*
 * ngx_stream_wgconn_module: stream upstreams reach overlay peers.  At
 * postconfiguration, after every upstream's init_upstream has run, each
 * upstream's per-request init is wrapped, so that whatever balancer it
 * uses (round robin, hash, keepalive on top) hands its chosen peer to the
 * overlay when the address lies inside it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_wgconn.h"


static ngx_int_t ngx_stream_wgconn_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_stream_wgconn_postconfiguration(ngx_conf_t *cf);
static char *ngx_stream_wgconn_listen(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_stream_wgconn_peer_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);


static ngx_command_t  ngx_stream_wgconn_commands[] = {

    { ngx_string("wgconn_listen"),
      NGX_STREAM_SRV_CONF|NGX_CONF_1MORE,
      ngx_stream_wgconn_listen,
      0,
      0,
      NULL },

      ngx_null_command
};
static ngx_int_t ngx_stream_wgconn_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us);


static ngx_stream_module_t  ngx_stream_wgconn_module_ctx = {
    ngx_stream_wgconn_add_variables,       /* preconfiguration */
    ngx_stream_wgconn_postconfiguration,   /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL                                   /* merge server configuration */
};


ngx_module_t  ngx_stream_wgconn_module = {
    NGX_MODULE_V1,
    &ngx_stream_wgconn_module_ctx,         /* module context */
    ngx_stream_wgconn_commands,            /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_stream_variable_t  ngx_stream_wgconn_vars[] = {

    { ngx_string("wgconn_peer_key"), NULL, ngx_stream_wgconn_peer_variable,
      0, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("wgconn_peer_name"), NULL, ngx_stream_wgconn_peer_variable,
      1, NGX_STREAM_VAR_NOCACHEABLE, 0 },

      ngx_stream_null_variable
};


static ngx_int_t
ngx_stream_wgconn_add_variables(ngx_conf_t *cf)
{
    ngx_stream_variable_t  *var, *v;

    for (v = ngx_stream_wgconn_vars; v->name.len; v++) {
        var = ngx_stream_add_variable(cf, &v->name, v->flags);
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
ngx_stream_wgconn_peer_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    return ngx_wgconn_listen_variable(s->connection, v, data);
}


static char *
ngx_stream_wgconn_listen(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_wgconn_listen_conf(cf, &ngx_stream_core_module,
              ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module),
              1);
}


static ngx_int_t
ngx_stream_wgconn_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                       i;
    ngx_stream_upstream_srv_conf_t   **uscfp;
    ngx_stream_upstream_main_conf_t   *umcf;

    if (!ngx_wgconn_get_conf(cf->cycle)->enabled) {
        return NGX_OK;
    }

    umcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_upstream_module);
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

        uscfp[i]->peer.init = ngx_stream_wgconn_init_peer;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_wgconn_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us)
{
    ngx_wgconn_init_pt  init;

    init = ngx_wgconn_upstream_original(us);

    if (init == NULL || init(s, us) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_wgconn_upstream_wrap(&s->upstream->peer, s->connection->pool,
                                    0);
}
