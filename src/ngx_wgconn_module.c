
/*
 * ngx_wgconn core module: the "wgconn {}" block and the engine's life in
 * the worker processes (init_process / exit_process hooks).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <sys/stat.h>

#include "ngx_wgconn.h"


#define NGX_WGCONN_CONF       0x02000000
#define NGX_WGCONN_PEER_CONF  0x04000000


static void *ngx_wgconn_create_conf(ngx_cycle_t *cycle);
static char *ngx_wgconn_init_conf(ngx_cycle_t *cycle, void *conf);
static char *ngx_wgconn_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_wgconn_peer_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_wgconn_parse_block(ngx_conf_t *cf, void *conf,
    ngx_uint_t cmd_type);
static char *ngx_wgconn_private_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_wgconn_private_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_wgconn_psk_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_wgconn_address(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_wgconn_allowed_ips(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_wgconn_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_wgconn_decode_key(ngx_str_t *text, u_char *key);
static ngx_int_t ngx_wgconn_read_key_file(ngx_conf_t *cf, u_char *key);
static ngx_int_t ngx_wgconn_parse_cidrs(ngx_conf_t *cf, ngx_array_t *cidrs,
    ngx_uint_t first);
static ngx_int_t ngx_wgconn_cidr_overlaps(ngx_cidr_t *a, ngx_cidr_t *b);
static char *ngx_wgconn_memory_limit_check(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_wgconn_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_wgconn_init_process(ngx_cycle_t *cycle);
static void ngx_wgconn_exit_process(ngx_cycle_t *cycle);


static ngx_conf_post_t  ngx_wgconn_memory_limit_post =
    { ngx_wgconn_memory_limit_check };


static ngx_command_t  ngx_wgconn_commands[] = {

    { ngx_string("wgconn"),
      NGX_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_NOARGS,
      ngx_wgconn_block,
      0,
      0,
      NULL },

    { ngx_string("private_key"),
      NGX_WGCONN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_wgconn_private_key,
      0,
      0,
      NULL },

    { ngx_string("private_key_file"),
      NGX_WGCONN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_wgconn_private_key_file,
      0,
      0,
      NULL },

    { ngx_string("address"),
      NGX_WGCONN_CONF|NGX_DIRECT_CONF|NGX_CONF_1MORE,
      ngx_wgconn_address,
      0,
      0,
      NULL },

    { ngx_string("listen_port"),
      NGX_WGCONN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_wgconn_conf_t, listen_port),
      NULL },

    { ngx_string("mtu"),
      NGX_WGCONN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_wgconn_conf_t, mtu),
      NULL },

    { ngx_string("memory_limit"),
      NGX_WGCONN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      0,
      offsetof(ngx_wgconn_conf_t, memory_limit),
      &ngx_wgconn_memory_limit_post },

    { ngx_string("peer"),
      NGX_WGCONN_CONF|NGX_DIRECT_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_wgconn_peer_block,
      0,
      0,
      NULL },

    { ngx_string("allowed_ips"),
      NGX_WGCONN_PEER_CONF|NGX_DIRECT_CONF|NGX_CONF_1MORE,
      ngx_wgconn_allowed_ips,
      0,
      0,
      NULL },

    { ngx_string("endpoint"),
      NGX_WGCONN_PEER_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_wgconn_endpoint,
      0,
      0,
      NULL },

    { ngx_string("persistent_keepalive"),
      NGX_WGCONN_PEER_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_wgconn_peer_conf_t, keepalive),
      NULL },

    { ngx_string("preshared_key_file"),
      NGX_WGCONN_PEER_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_wgconn_psk_file,
      0,
      0,
      NULL },

    { ngx_string("name"),
      NGX_WGCONN_PEER_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_wgconn_peer_conf_t, name),
      NULL },

      ngx_null_command
};


static ngx_core_module_t  ngx_wgconn_module_ctx = {
    ngx_string("wgconn"),
    ngx_wgconn_create_conf,
    ngx_wgconn_init_conf
};


ngx_module_t  ngx_wgconn_module = {
    NGX_MODULE_V1,
    &ngx_wgconn_module_ctx,                /* module context */
    ngx_wgconn_commands,                   /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_wgconn_init_module,                /* init module */
    ngx_wgconn_init_process,               /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_wgconn_exit_process,               /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_wgconn_conf_t *
ngx_wgconn_get_conf(ngx_cycle_t *cycle)
{
    return (ngx_wgconn_conf_t *) ngx_get_conf(cycle->conf_ctx,
                                              ngx_wgconn_module);
}


ngx_int_t
ngx_wgconn_routes(ngx_cycle_t *cycle, struct sockaddr *sa)
{
    ngx_wgconn_conf_t  *wcf;

    wcf = ngx_wgconn_get_conf(cycle);

    if (wcf == NULL || !wcf->enabled || wcf->routes.nelts == 0) {
        return 0;
    }

    return ngx_cidr_match(sa, &wcf->routes) == NGX_OK;
}


static void *
ngx_wgconn_create_conf(ngx_cycle_t *cycle)
{
    ngx_wgconn_conf_t  *wcf;

    wcf = ngx_pcalloc(cycle->pool, sizeof(ngx_wgconn_conf_t));
    if (wcf == NULL) {
        return NULL;
    }

    wcf->enabled = 0;
    wcf->listen_port = NGX_CONF_UNSET;
    wcf->mtu = NGX_CONF_UNSET_UINT;
    wcf->memory_limit = NGX_CONF_UNSET_SIZE;

    if (ngx_array_init(&wcf->addresses, cycle->pool, 2, sizeof(ngx_cidr_t))
        != NGX_OK
        || ngx_array_init(&wcf->peers, cycle->pool, 4,
                          sizeof(ngx_wgconn_peer_conf_t))
           != NGX_OK
        || ngx_array_init(&wcf->routes, cycle->pool, 4, sizeof(ngx_cidr_t))
           != NGX_OK
        || ngx_array_init(&wcf->hooks, cycle->pool, 8,
                          sizeof(ngx_wgconn_hook_t))
           != NGX_OK
        || ngx_array_init(&wcf->listens, cycle->pool, 4,
                          sizeof(ngx_wgconn_listen_t))
           != NGX_OK)
    {
        return NULL;
    }

    return wcf;
}


static char *
ngx_wgconn_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_wgconn_conf_t *wcf = conf;

    ngx_conf_init_value(wcf->listen_port, NGX_WGCONN_DEFAULT_PORT);
    ngx_conf_init_uint_value(wcf->mtu, NGX_WGCONN_DEFAULT_MTU);
    ngx_conf_init_size_value(wcf->memory_limit, NGX_WGCONN_DEFAULT_MEMORY);

    /* the http and stream blocks are parsed: their listeners exist */

    if (ngx_wgconn_listen_extract(cycle, wcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The block's directives are matched by ngx_conf_handler() like those of
 * "events {}": the module type stays CORE and a private command type
 * selects the directives valid inside; NGX_DIRECT_CONF makes the conf
 * pointer ((void **) cf->ctx)[module index].
 */

static char *
ngx_wgconn_parse_block(ngx_conf_t *cf, void *conf, ngx_uint_t cmd_type)
{
    char        *rv;
    void       **ctx;
    ngx_conf_t   pcf;

    ctx = ngx_pcalloc(cf->pool, cf->cycle->modules_n * sizeof(void *));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx[ngx_wgconn_module.index] = conf;

    pcf = *cf;
    cf->ctx = ctx;
    cf->module_type = NGX_CORE_MODULE;
    cf->cmd_type = cmd_type;

    rv = ngx_conf_parse(cf, NULL);

    *cf = pcf;

    return rv;
}


static char *
ngx_wgconn_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_wgconn_conf_t *wcf = *(ngx_wgconn_conf_t **) conf;

    char                    *rv;
    ngx_uint_t               i, j, k, l;
    ngx_cidr_t              *cidr, *route;
    ngx_wgconn_peer_conf_t  *peer;

    if (wcf->enabled) {
        return "is duplicate";
    }

    wcf->enabled = 1;

    rv = ngx_wgconn_parse_block(cf, wcf, NGX_WGCONN_CONF);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (!wcf->has_key) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"private_key_file\" in \"wgconn\" block");
        return NGX_CONF_ERROR;
    }

    if (ngx_wgconn_status_add_zone(cf, wcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (wcf->addresses.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"address\" in \"wgconn\" block");
        return NGX_CONF_ERROR;
    }

    if (wcf->listen_port != NGX_CONF_UNSET
        && (wcf->listen_port < 0 || wcf->listen_port > 65535))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"listen_port\" %i", wcf->listen_port);
        return NGX_CONF_ERROR;
    }

    if (wcf->mtu != NGX_CONF_UNSET_UINT
        && (wcf->mtu < 1280 || wcf->mtu > 9000))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"mtu\" %ui, must be 1280..9000",
                           wcf->mtu);
        return NGX_CONF_ERROR;
    }

    /* every allowed IP routes to exactly one peer */

    peer = wcf->peers.elts;

    for (i = 0; i < wcf->peers.nelts; i++) {
        cidr = peer[i].allowed_ips.elts;

        for (j = 0; j < peer[i].allowed_ips.nelts; j++) {

            for (k = i + 1; k < wcf->peers.nelts; k++) {
                route = peer[k].allowed_ips.elts;

                for (l = 0; l < peer[k].allowed_ips.nelts; l++) {
                    if (cidr[j].family == route[l].family
                        && ngx_wgconn_cidr_overlaps(&cidr[j], &route[l]))
                    {
                        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                                      "\"allowed_ips\" of peer in %V:%ui "
                                      "overlap those of peer in %V:%ui",
                                      &peer[k].file, peer[k].line,
                                      &peer[i].file, peer[i].line);
                        return NGX_CONF_ERROR;
                    }
                }
            }

            route = ngx_array_push(&wcf->routes);
            if (route == NULL) {
                return NGX_CONF_ERROR;
            }

            *route = cidr[j];
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_wgconn_peer_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_wgconn_conf_t *wcf = conf;

    char                    *rv;
    ngx_str_t               *value;
    ngx_uint_t               i;
    ngx_wgconn_peer_conf_t  *peer, *p;

    value = cf->args->elts;

    peer = ngx_array_push(&wcf->peers);
    if (peer == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(peer, sizeof(ngx_wgconn_peer_conf_t));

    peer->keepalive = NGX_CONF_UNSET_UINT;
    peer->file = cf->conf_file->file.name;
    peer->line = cf->conf_file->line;

    if (ngx_array_init(&peer->allowed_ips, cf->pool, 2, sizeof(ngx_cidr_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_wgconn_decode_key(&value[1], peer->public_key) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid public key \"%V\" in \"peer\": "
                           "expected 32 bytes in base64", &value[1]);
        return NGX_CONF_ERROR;
    }

    p = wcf->peers.elts;

    for (i = 0; i < wcf->peers.nelts - 1; i++) {
        if (ngx_memcmp(p[i].public_key, peer->public_key,
                       NGX_WGCONN_KEY_LEN)
            == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"peer\" %V, first defined "
                               "in %V:%ui", &value[1], &p[i].file,
                               p[i].line);
            return NGX_CONF_ERROR;
        }
    }

    rv = ngx_wgconn_parse_block(cf, peer, NGX_WGCONN_PEER_CONF);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (peer->name.len == 0) {
        /* as "wg show" abbreviates: the start of the public key */
        peer->name.data = value[1].data;
        peer->name.len = 8;

    } else if (peer->name.len > NGX_WGCONN_NAME_LEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "peer \"name\" is longer than %d characters",
                           NGX_WGCONN_NAME_LEN);
        return NGX_CONF_ERROR;
    }

    if (peer->keepalive == NGX_CONF_UNSET_UINT) {
        peer->keepalive = 0;

    } else if (peer->keepalive > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"persistent_keepalive\" %ui",
                           peer->keepalive);
        return NGX_CONF_ERROR;
    }

    if (peer->allowed_ips.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"peer\" %V has no \"allowed_ips\": nothing "
                           "will be routed to it", &value[1]);
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_wgconn_decode_key(ngx_str_t *text, u_char *key)
{
    u_char     buf[64];
    ngx_str_t  dst;

    /* 32 bytes are 44 base64 characters with one '=' of padding */

    if (text->len != 44 || text->data[43] != '=') {
        return NGX_ERROR;
    }

    dst.data = buf;

    if (ngx_decode_base64(&dst, text) != NGX_OK
        || dst.len != NGX_WGCONN_KEY_LEN)
    {
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_ERROR;
    }

    ngx_memcpy(key, buf, NGX_WGCONN_KEY_LEN);
    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_OK;
}


/* the directive's file argument: a key as "wg genkey" writes it */

static ngx_int_t
ngx_wgconn_read_key_file(ngx_conf_t *cf, u_char *key)
{
    u_char           buf[128];
    size_t           len;
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t        path, text, *value;
    ngx_int_t        rc;
    ngx_uint_t       mode;
    ngx_file_info_t  fi;

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": " ngx_open_file_n " \"%V\" failed",
                           &value[0], &path);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": " ngx_fd_info_n " \"%V\" failed",
                           &value[0], &path);
        goto done;
    }

    /* as ssh does for its keys: a secret readable by others is not one */

    if (fi.st_mode & (S_IRWXG|S_IRWXO)) {
        /* ngx_sprintf() has no octal */
        mode = fi.st_mode & 0777;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": key file \"%V\" is accessible by group "
                           "or others (mode 0%ui%ui%ui), use chmod 600",
                           &value[0], &path, mode >> 6, (mode >> 3) & 7,
                           mode & 7);
        goto done;
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));
    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": " ngx_read_fd_n " \"%V\" failed",
                           &value[0], &path);
        goto done;
    }

    len = n;

    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'
                   || buf[len - 1] == ' '))
    {
        len--;
    }

    text.data = buf;
    text.len = len;

    if (ngx_wgconn_decode_key(&text, key) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": key file \"%V\" does not hold a key: "
                           "expected 32 bytes in base64 (as \"wg genkey\" "
                           "writes)", &value[0], &path);
        goto done;
    }

    rc = NGX_OK;

done:

    ngx_explicit_memzero(buf, sizeof(buf));
    ngx_close_file(fd);

    return rc;
}


static char *
ngx_wgconn_private_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "a private key is never written into the "
                       "configuration, use \"private_key_file\"");

    return NGX_CONF_ERROR;
}


static char *
ngx_wgconn_private_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_wgconn_conf_t *wcf = conf;

    if (wcf->has_key) {
        return "is duplicate";
    }

    if (ngx_wgconn_read_key_file(cf, wcf->private_key) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    wcf->has_key = 1;

    return NGX_CONF_OK;
}


static char *
ngx_wgconn_psk_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_wgconn_peer_conf_t *peer = conf;

    if (peer->has_psk) {
        return "is duplicate";
    }

    if (ngx_wgconn_read_key_file(cf, peer->psk) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    peer->has_psk = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_wgconn_parse_cidrs(ngx_conf_t *cf, ngx_array_t *cidrs, ngx_uint_t first)
{
    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_cidr_t  *cidr;

    value = cf->args->elts;

    for (i = first; i < cf->args->nelts; i++) {
        cidr = ngx_array_push(cidrs);
        if (cidr == NULL) {
            return NGX_ERROR;
        }

        /* compared and hashed whole: no stale bytes in the union */
        ngx_memzero(cidr, sizeof(ngx_cidr_t));

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR
            || (cidr->family != AF_INET
#if (NGX_HAVE_INET6)
                && cidr->family != AF_INET6
#endif
               ))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address or prefix \"%V\" in \"%V\"",
                               &value[i], &value[0]);
            return NGX_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" in \"%V\" has host bits set after "
                               "the prefix length", &value[i], &value[0]);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static char *
ngx_wgconn_address(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_wgconn_conf_t *wcf = conf;

    u_char      *p;
    ngx_str_t   *value, text;
    ngx_uint_t   i, v4;
    ngx_cidr_t  *cidr;

    value = cf->args->elts;

    /*
     * the address is a host; a prefix length, as in wg-quick's
     * "Address = 10.0.0.1/24", is accepted and ignored
     */

    for (i = 1; i < cf->args->nelts; i++) {
        cidr = ngx_array_push(&wcf->addresses);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(cidr, sizeof(ngx_cidr_t));

        p = ngx_strlchr(value[i].data, value[i].data + value[i].len, '/');

        text.data = value[i].data;
        text.len = p ? (size_t) (p - value[i].data) : value[i].len;

        if (ngx_ptocidr(&text, cidr) != NGX_OK
            || (cidr->family != AF_INET
#if (NGX_HAVE_INET6)
                && cidr->family != AF_INET6
#endif
               ))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address \"%V\" in \"address\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    cidr = wcf->addresses.elts;
    v4 = 0;

    for (i = 0; i < wcf->addresses.nelts; i++) {
        if (cidr[i].family == AF_INET && ++v4 > 1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "more than one IPv4 \"address\" is not "
                               "supported");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_wgconn_allowed_ips(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_wgconn_peer_conf_t *peer = conf;

    if (ngx_wgconn_parse_cidrs(cf, &peer->allowed_ips, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_wgconn_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_wgconn_peer_conf_t *peer = conf;

    ngx_str_t  *value;
    ngx_url_t   u;

    if (peer->endpoint) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"endpoint\" \"%V\"", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.no_port || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"endpoint\" \"%V\" needs host:port", &u.url);
        return NGX_CONF_ERROR;
    }

    peer->endpoint = &u.addrs[0];

    return NGX_CONF_OK;
}


/* smaller, the first few connections would put the node under pressure */

static char *
ngx_wgconn_memory_limit_check(ngx_conf_t *cf, void *post, void *data)
{
    size_t *sp = data;

    if (*sp < NGX_WGCONN_MIN_MEMORY) {
        return "must be at least 1m";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_wgconn_cidr_overlaps(ngx_cidr_t *a, ngx_cidr_t *b)
{
    ngx_uint_t  i;

    /* two prefixes overlap iff they agree under the shorter mask */

    switch (a->family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        for (i = 0; i < 16; i++) {
            if ((a->u.in6.addr.s6_addr[i] ^ b->u.in6.addr.s6_addr[i])
                & a->u.in6.mask.s6_addr[i] & b->u.in6.mask.s6_addr[i])
            {
                return 0;
            }
        }

        return 1;
#endif

    default:
        return ((a->u.in.addr ^ b->u.in.addr)
                & a->u.in.mask & b->u.in.mask) == 0;
    }
}


static ngx_int_t
ngx_wgconn_init_module(ngx_cycle_t *cycle)
{
    ngx_wgconn_conf_t  *wcf;

    wcf = ngx_wgconn_get_conf(cycle);

    if (wcf == NULL || !wcf->enabled) {
        return NGX_OK;
    }

    if (ngx_wgconn_process_init_module(cycle, wcf) == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_wgconn_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                 n;
    ngx_wgconn_conf_t         *wcf;
    ngx_wgconn_listen_spec_t   specs[NGX_WGCONN_MAX_LISTEN];

    wcf = ngx_wgconn_get_conf(cycle);

    if (wcf == NULL || !wcf->enabled) {
        return NGX_OK;
    }

    switch (ngx_process) {

    case NGX_PROCESS_WORKER:
        /* workers reach the engine process through their channel */
        ngx_wgconn_process_close_lifeline();
        return ngx_wgconn_bridge_init_process(cycle);

    case NGX_PROCESS_SINGLE:
        /* master_process off: this one process is the node */
        if (ngx_wgconn_engine_start(cycle, wcf) != NGX_OK) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "wgconn: the overlay engine could not start");
            return NGX_ERROR;
        }

        n = ngx_wgconn_listen_specs(wcf, specs, NGX_WGCONN_MAX_LISTEN);
        ngx_wgconn_inbound_set(specs, n);

        return NGX_OK;

    default:
        /* cache manager and loader */
        ngx_wgconn_process_close_lifeline();
        return NGX_OK;
    }
}


static void
ngx_wgconn_exit_process(ngx_cycle_t *cycle)
{
    ngx_wgconn_bridge_exit_process();
    ngx_wgconn_engine_stop();
}
