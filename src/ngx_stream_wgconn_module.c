
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


static ngx_int_t ngx_stream_wgconn_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_stream_wgconn_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us);


static ngx_stream_module_t  ngx_stream_wgconn_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_stream_wgconn_postconfiguration,   /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL                                   /* merge server configuration */
};


ngx_module_t  ngx_stream_wgconn_module = {
    NGX_MODULE_V1,
    &ngx_stream_wgconn_module_ctx,           /* module context */
    NULL,                                  /* module directives */
    NGX_STREAM_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


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

    return ngx_wgconn_upstream_wrap(&s->upstream->peer, s->connection->pool);
}
