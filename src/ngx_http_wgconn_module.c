
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


static ngx_int_t ngx_http_wgconn_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_wgconn_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);


static ngx_http_module_t  ngx_http_wgconn_module_ctx = {
    NULL,                                  /* preconfiguration */
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
    NULL,                                  /* module directives */
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

    return ngx_wgconn_upstream_wrap(&r->upstream->peer, r->pool);
}
