
/*
 * The "wgconn {}" configuration as a message from the master to the engine
 * process, so that a reload reaches a running engine: the master packs its
 * new cycle's configuration into an anonymous file (memfd) passed with the
 * cycle message, and the engine unpacks it into memory of its own.  Both
 * ends are the same binary on the same host: fixed-size records in host
 * order, every length checked on the way in.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <sys/mman.h>

#include "ngx_wgconn.h"


#define NGX_WGCONN_CONF_MAGIC    0x77676331   /* "wgc1" */
#define NGX_WGCONN_CONF_MAX      (16 * 1024 * 1024)


typedef struct {
    uint32_t                   magic;
    uint32_t                   npeers;
    u_char                     private_key[NGX_WGCONN_KEY_LEN];
    int32_t                    listen_port;
    uint32_t                   mtu;
    uint32_t                   naddresses;
    uint64_t                   memory_limit;
} ngx_wgconn_conf_hdr_t;


typedef struct {
    u_char                     public_key[NGX_WGCONN_KEY_LEN];
    u_char                     psk[NGX_WGCONN_KEY_LEN];
    uint32_t                   has_psk;
    uint32_t                   keepalive;
    uint32_t                   name_len;
    uint32_t                   nallowed;
    uint32_t                   endpoint_len;        /* 0: none */
    ngx_sockaddr_t             endpoint;
} ngx_wgconn_conf_peer_t;


static size_t ngx_wgconn_conf_size(ngx_wgconn_conf_t *wcf);
static u_char *ngx_wgconn_conf_take(u_char **p, u_char *last, size_t n);


/* in the master: an fd holding the packed configuration, or -1 */

ngx_socket_t
ngx_wgconn_conf_pack(ngx_wgconn_conf_t *wcf, ngx_log_t *log)
{
    int                       fd;
    u_char                   *buf, *p;
    size_t                    size;
    ssize_t                   n;
    ngx_uint_t                i;
    ngx_wgconn_conf_hdr_t     hdr;
    ngx_wgconn_conf_peer_t    rec;
    ngx_wgconn_peer_conf_t   *peer;

    size = ngx_wgconn_conf_size(wcf);

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        return (ngx_socket_t) -1;
    }

    ngx_memzero(&hdr, sizeof(ngx_wgconn_conf_hdr_t));
    hdr.magic = NGX_WGCONN_CONF_MAGIC;
    hdr.npeers = wcf->peers.nelts;
    ngx_memcpy(hdr.private_key, wcf->private_key, NGX_WGCONN_KEY_LEN);
    hdr.listen_port = (int32_t) wcf->listen_port;
    hdr.mtu = (uint32_t) wcf->mtu;
    hdr.memory_limit = wcf->memory_limit;
    hdr.naddresses = wcf->addresses.nelts;

    p = ngx_cpymem(buf, &hdr, sizeof(ngx_wgconn_conf_hdr_t));
    p = ngx_cpymem(p, wcf->addresses.elts,
                   wcf->addresses.nelts * sizeof(ngx_cidr_t));

    peer = wcf->peers.elts;

    for (i = 0; i < wcf->peers.nelts; i++) {
        ngx_memzero(&rec, sizeof(ngx_wgconn_conf_peer_t));
        ngx_memcpy(rec.public_key, peer[i].public_key, NGX_WGCONN_KEY_LEN);
        ngx_memcpy(rec.psk, peer[i].psk, NGX_WGCONN_KEY_LEN);
        rec.has_psk = peer[i].has_psk;
        rec.keepalive = (uint32_t) peer[i].keepalive;
        rec.name_len = (uint32_t) peer[i].name.len;
        rec.nallowed = peer[i].allowed_ips.nelts;

        if (peer[i].endpoint) {
            rec.endpoint_len = peer[i].endpoint->socklen;
            ngx_memcpy(&rec.endpoint, peer[i].endpoint->sockaddr,
                       peer[i].endpoint->socklen);
        }

        p = ngx_cpymem(p, &rec, sizeof(ngx_wgconn_conf_peer_t));
        p = ngx_cpymem(p, peer[i].name.data, peer[i].name.len);
        p = ngx_cpymem(p, peer[i].allowed_ips.elts,
                       peer[i].allowed_ips.nelts * sizeof(ngx_cidr_t));
    }

    fd = memfd_create("wgconn-conf", MFD_CLOEXEC);

    n = (fd == -1) ? -1 : write(fd, buf, size);

    /* the keys go no further than the engine */
    ngx_explicit_memzero(buf, size);
    ngx_free(buf);

    if (n != (ssize_t) size) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "wgconn: cannot pass the configuration to the engine");
        if (fd != -1) {
            close(fd);
        }

        return (ngx_socket_t) -1;
    }

    return fd;
}


static size_t
ngx_wgconn_conf_size(ngx_wgconn_conf_t *wcf)
{
    size_t                   size;
    ngx_uint_t               i;
    ngx_wgconn_peer_conf_t  *peer;

    size = sizeof(ngx_wgconn_conf_hdr_t)
           + wcf->addresses.nelts * sizeof(ngx_cidr_t);

    peer = wcf->peers.elts;

    for (i = 0; i < wcf->peers.nelts; i++) {
        size += sizeof(ngx_wgconn_conf_peer_t) + peer[i].name.len
                + peer[i].allowed_ips.nelts * sizeof(ngx_cidr_t);
    }

    return size;
}


/*
 * In the engine: read the configuration the master packed into fd (which
 * is closed) into a new ngx_wgconn_conf_t allocated from pool.
 */

ngx_wgconn_conf_t *
ngx_wgconn_conf_unpack(ngx_socket_t fd, ngx_pool_t *pool, ngx_log_t *log)
{
    u_char                  *buf, *p, *last, *d;
    size_t                   n;
    struct stat              st;
    ngx_uint_t               i;
    ngx_wgconn_conf_t       *wcf;
    ngx_wgconn_conf_hdr_t    hdr;
    ngx_wgconn_conf_peer_t   rec;
    ngx_wgconn_peer_conf_t  *peer;

    wcf = NULL;
    buf = MAP_FAILED;

    if (fstat(fd, &st) == -1
        || st.st_size < (off_t) sizeof(ngx_wgconn_conf_hdr_t)
        || st.st_size > NGX_WGCONN_CONF_MAX)
    {
        goto done;
    }

    buf = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (buf == MAP_FAILED) {
        goto done;
    }

    p = buf;
    last = buf + st.st_size;

    d = ngx_wgconn_conf_take(&p, last, sizeof(ngx_wgconn_conf_hdr_t));
    ngx_memcpy(&hdr, d, sizeof(ngx_wgconn_conf_hdr_t));

    if (hdr.magic != NGX_WGCONN_CONF_MAGIC
        || hdr.naddresses > 1024
        || hdr.npeers > (uint32_t) (st.st_size
                                    / sizeof(ngx_wgconn_conf_peer_t)))
    {
        goto done;
    }

    wcf = ngx_pcalloc(pool, sizeof(ngx_wgconn_conf_t));
    if (wcf == NULL
        || ngx_array_init(&wcf->addresses, pool, hdr.naddresses + 1,
                          sizeof(ngx_cidr_t))
           != NGX_OK
        || ngx_array_init(&wcf->peers, pool, hdr.npeers + 1,
                          sizeof(ngx_wgconn_peer_conf_t))
           != NGX_OK)
    {
        wcf = NULL;
        goto done;
    }

    wcf->enabled = 1;
    wcf->has_key = 1;
    ngx_memcpy(wcf->private_key, hdr.private_key, NGX_WGCONN_KEY_LEN);
    wcf->listen_port = hdr.listen_port;
    wcf->mtu = hdr.mtu;
    wcf->memory_limit = (size_t) hdr.memory_limit;

    n = hdr.naddresses * sizeof(ngx_cidr_t);
    d = ngx_wgconn_conf_take(&p, last, n);

    if (d == NULL) {
        goto bad;
    }

    ngx_memcpy(ngx_array_push_n(&wcf->addresses, hdr.naddresses), d, n);

    for (i = 0; i < hdr.npeers; i++) {
        d = ngx_wgconn_conf_take(&p, last, sizeof(ngx_wgconn_conf_peer_t));
        if (d == NULL) {
            goto bad;
        }

        ngx_memcpy(&rec, d, sizeof(ngx_wgconn_conf_peer_t));

        if (rec.name_len > NGX_WGCONN_NAME_LEN
            || rec.endpoint_len > sizeof(ngx_sockaddr_t)
            || rec.nallowed > (uint32_t) (last - p) / sizeof(ngx_cidr_t))
        {
            goto bad;
        }

        peer = ngx_array_push(&wcf->peers);
        if (peer == NULL) {
            goto bad;
        }

        ngx_memzero(peer, sizeof(ngx_wgconn_peer_conf_t));
        ngx_memcpy(peer->public_key, rec.public_key, NGX_WGCONN_KEY_LEN);
        ngx_memcpy(peer->psk, rec.psk, NGX_WGCONN_KEY_LEN);
        peer->has_psk = rec.has_psk ? 1 : 0;
        peer->keepalive = rec.keepalive;

        d = ngx_wgconn_conf_take(&p, last, rec.name_len);
        peer->name.data = ngx_pnalloc(pool, rec.name_len + 1);
        if (d == NULL || peer->name.data == NULL) {
            goto bad;
        }

        ngx_memcpy(peer->name.data, d, rec.name_len);
        peer->name.len = rec.name_len;

        n = rec.nallowed * sizeof(ngx_cidr_t);
        d = ngx_wgconn_conf_take(&p, last, n);

        if (d == NULL
            || ngx_array_init(&peer->allowed_ips, pool, rec.nallowed + 1,
                              sizeof(ngx_cidr_t))
               != NGX_OK)
        {
            goto bad;
        }

        ngx_memcpy(ngx_array_push_n(&peer->allowed_ips, rec.nallowed), d, n);

        if (rec.endpoint_len) {
            peer->endpoint = ngx_pcalloc(pool, sizeof(ngx_addr_t));
            if (peer->endpoint == NULL) {
                goto bad;
            }

            peer->endpoint->sockaddr = ngx_pnalloc(pool, rec.endpoint_len);
            if (peer->endpoint->sockaddr == NULL) {
                goto bad;
            }

            ngx_memcpy(peer->endpoint->sockaddr, &rec.endpoint,
                       rec.endpoint_len);
            peer->endpoint->socklen = rec.endpoint_len;
        }

        ngx_explicit_memzero(&rec, sizeof(ngx_wgconn_conf_peer_t));
    }

    if (p == last) {
        goto done;
    }

bad:

    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "wgconn: malformed configuration from the master");
    wcf = NULL;

done:

    ngx_explicit_memzero(&hdr, sizeof(ngx_wgconn_conf_hdr_t));

    if (buf != MAP_FAILED) {
        munmap(buf, st.st_size);
    }

    close(fd);

    return wcf;
}


static u_char *
ngx_wgconn_conf_take(u_char **p, u_char *last, size_t n)
{
    u_char  *d;

    if ((size_t) (last - *p) < n) {
        return NULL;
    }

    d = *p;
    *p += n;

    return d;
}
