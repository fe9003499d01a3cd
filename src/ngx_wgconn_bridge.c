
/*
 * The bridge between workers and the engine.  One node has one engine (in
 * worker 0), yet every worker proxies into the overlay: a worker opens a
 * local socket pair, keeps one end as its upstream connection and passes
 * the other end to the engine (SCM_RIGHTS) with the destination; the engine
 * answers once the overlay connection is established or has failed.
 *
 * The other way, the engine hands a worker each connection it accepted on
 * an overlay listener (ngx_wgconn_bridge_accept), round robin over the
 * workers of the newest generation.
 *
 * The channels are SOCK_SEQPACKET socket pairs, one per worker, made by the
 * master in init_module, so that every worker (also one respawned after a
 * crash) inherits its end; the engine process receives the other ends (see
 * ngx_wgconn_process.c).  They live as long as their cycle: the workers of
 * an old cycle keep theirs until they exit, so their flows drain.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"


typedef struct {
    uint64_t                   cookie;   /* the requester's pending pointer */
    int32_t                    type;
    uint32_t                   flags;    /* NGX_WGCONN_CLIENT_FIRST */
    uint32_t                   socklen;
    union {
        struct sockaddr        sa;
        struct sockaddr_in     in;
        struct sockaddr_in6    in6;
    } dst;
} ngx_wgconn_bridge_req_t;


#define NGX_WGCONN_BRIDGE_OPENED  1
#define NGX_WGCONN_BRIDGE_ACCEPT  2


/* engine to worker: an answer, or an accepted connection (fd attached) */
typedef struct {
    uint32_t                   op;
    int32_t                    rc;
    int32_t                    err;
    uint32_t                   reserved;
    uint64_t                   cookie;
    ngx_wgconn_accept_t        accept;
} ngx_wgconn_bridge_rep_t;


#define NGX_WGCONN_BRIDGE_REP_HEAD  offsetof(ngx_wgconn_bridge_rep_t, accept)


typedef struct {
    ngx_connection_t          *c;
    ngx_atomic_uint_t          number;
} ngx_wgconn_bridge_worker_t;


/* room for the descriptors of one message, aligned for cmsghdr */
typedef union {
    struct cmsghdr             cm;
    char                       space[CMSG_SPACE(sizeof(int)
                                                * NGX_WGCONN_MAX_FDS)];
} ngx_wgconn_cmsg_t;


/* what the engine keeps to answer one request */
typedef struct {
    ngx_connection_t          *channel;
    ngx_atomic_uint_t          number;
    uint64_t                   cookie;
} ngx_wgconn_bridge_ans_t;


typedef struct {
    ngx_uint_t                 n;
    ngx_socket_t             (*fds)[2];  /* [i][0] worker i, [i][1] engine */
} ngx_wgconn_bridge_t;


static void ngx_wgconn_bridge_cleanup(void *data);
static ngx_connection_t *ngx_wgconn_bridge_add(ngx_cycle_t *cycle,
    ngx_socket_t fd, ngx_event_handler_pt handler);
static void ngx_wgconn_bridge_engine_read(ngx_event_t *rev);
static void ngx_wgconn_bridge_answer(void *data, ngx_int_t rc, ngx_err_t err);
static void ngx_wgconn_bridge_worker_read(ngx_event_t *rev);
static void ngx_wgconn_bridge_engine_gone(ngx_connection_t *c);
static ngx_uint_t ngx_wgconn_bridge_workers_gone(ngx_err_t err);


static ngx_wgconn_bridge_t  *ngx_wgconn_bridge;
static ngx_connection_t     *ngx_wgconn_bridge_channel;

/* in the engine: the newest generation's channels, for accepts */
static ngx_wgconn_bridge_worker_t  *ngx_wgconn_bridge_workers;
static ngx_uint_t                   ngx_wgconn_bridge_nworkers;
static ngx_uint_t                   ngx_wgconn_bridge_next;


ngx_int_t
ngx_wgconn_bridge_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t            i;
    ngx_core_conf_t      *ccf;
    ngx_pool_cleanup_t   *cln;
    ngx_wgconn_bridge_t  *br;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    br = ngx_pcalloc(cycle->pool, sizeof(ngx_wgconn_bridge_t));
    if (br == NULL) {
        return NGX_ERROR;
    }

    br->n = ccf->worker_processes;
    br->fds = ngx_palloc(cycle->pool, br->n * sizeof(ngx_socket_t[2]));
    if (br->fds == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < br->n; i++) {
        br->fds[i][0] = -1;
        br->fds[i][1] = -1;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_wgconn_bridge_cleanup;
    cln->data = br;

    for (i = 0; i < br->n; i++) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, br->fds[i])
            == -1)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                          "wgconn: socketpair() failed");
            return NGX_ERROR;
        }
    }

    ngx_wgconn_bridge = br;

    return NGX_OK;
}


static void
ngx_wgconn_bridge_cleanup(void *data)
{
    ngx_wgconn_bridge_t *br = data;

    ngx_uint_t  i, j;

    for (i = 0; i < br->n; i++) {
        for (j = 0; j < 2; j++) {
            if (br->fds[i][j] != -1) {
                close(br->fds[i][j]);
                br->fds[i][j] = -1;
            }
        }
    }

    if (ngx_wgconn_bridge == br) {
        ngx_wgconn_bridge = NULL;
    }
}


/* in a worker: keep this worker's end, close the others */

ngx_int_t
ngx_wgconn_bridge_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t            i, j;
    ngx_socket_t          fd;
    ngx_connection_t     *c;
    ngx_wgconn_bridge_t  *br;

    br = ngx_wgconn_bridge;

    if (br == NULL) {
        return NGX_OK;
    }

    for (i = 0; i < br->n; i++) {
        for (j = 0; j < 2; j++) {
            fd = br->fds[i][j];

            if (fd == -1) {
                continue;
            }

            /* the connection owns it now, or it is closed */
            br->fds[i][j] = -1;

            if (j == 1 || i != ngx_worker) {
                close(fd);
                continue;
            }

            c = ngx_wgconn_bridge_add(cycle, fd,
                                      ngx_wgconn_bridge_worker_read);
            if (c == NULL) {
                return NGX_ERROR;
            }

            ngx_wgconn_bridge_channel = c;
        }
    }

    return NGX_OK;
}


/* a worker that exits closes its channel: the engine sees it go */

void
ngx_wgconn_bridge_exit_process(void)
{
    if (ngx_wgconn_bridge_channel) {
        ngx_close_connection(ngx_wgconn_bridge_channel);
        ngx_wgconn_bridge_channel = NULL;
    }
}


/* in the master: the engine ends, to pass to the engine process */

ngx_uint_t
ngx_wgconn_bridge_engine_fds(int *fds, ngx_uint_t max)
{
    ngx_uint_t            i, n;
    ngx_wgconn_bridge_t  *br;

    br = ngx_wgconn_bridge;
    n = 0;

    for (i = 0; br && i < br->n && n < max; i++) {
        if (br->fds[i][1] != -1) {
            fds[n++] = br->fds[i][1];
        }
    }

    return n;
}


void
ngx_wgconn_bridge_close_engine_fds(void)
{
    ngx_uint_t            i;
    ngx_wgconn_bridge_t  *br;

    br = ngx_wgconn_bridge;

    for (i = 0; br && i < br->n; i++) {
        if (br->fds[i][1] != -1) {
            close(br->fds[i][1]);
            br->fds[i][1] = -1;
        }
    }
}


/*
 * In the engine process: serve a new generation's channels.  The older
 * ones keep serving their workers' flows, but accepts go to the newest.
 */

ngx_int_t
ngx_wgconn_bridge_engine_generation(ngx_cycle_t *cycle, int *fds,
    ngx_uint_t n)
{
    ngx_int_t                    rc;
    ngx_uint_t                   i, k;
    ngx_connection_t            *c;
    ngx_wgconn_bridge_worker_t  *w;

    w = ngx_alloc((n ? n : 1) * sizeof(ngx_wgconn_bridge_worker_t),
                  cycle->log);
    if (w == NULL) {
        for (i = 0; i < n; i++) {
            close(fds[i]);
        }

        return NGX_ERROR;
    }

    rc = NGX_OK;
    k = 0;

    for (i = 0; i < n; i++) {
        c = ngx_wgconn_bridge_add(cycle, fds[i],
                                  ngx_wgconn_bridge_engine_read);
        if (c == NULL) {
            rc = NGX_ERROR;
            continue;
        }

        w[k].c = c;
        w[k].number = c->number;
        k++;
    }

    if (ngx_wgconn_bridge_workers) {
        ngx_free(ngx_wgconn_bridge_workers);
    }

    ngx_wgconn_bridge_workers = w;
    ngx_wgconn_bridge_nworkers = k;
    ngx_wgconn_bridge_next = 0;

    return rc;
}


/*
 * An overlay connection for nginx to serve; the fd is consumed.  With
 * the engine in this process nginx takes it at once.
 */

ngx_int_t
ngx_wgconn_bridge_accept(ngx_wgconn_accept_t *a, ngx_socket_t fd)
{
    ssize_t                      n;
    ngx_uint_t                   i, k;
    ngx_connection_t            *c;
    ngx_wgconn_bridge_rep_t      rep;
    ngx_wgconn_bridge_worker_t  *w;

    if (ngx_process == NGX_PROCESS_SINGLE) {
        ngx_wgconn_listen_accept(a, fd);
        return NGX_OK;
    }

    /* padding included: the message crosses a process boundary */
    ngx_memzero(&rep, sizeof(ngx_wgconn_bridge_rep_t));
    rep.op = NGX_WGCONN_BRIDGE_ACCEPT;
    ngx_memcpy(&rep.accept, a, sizeof(ngx_wgconn_accept_t));

    w = ngx_wgconn_bridge_workers;

    for (k = 0; k < ngx_wgconn_bridge_nworkers; k++) {
        i = (ngx_wgconn_bridge_next + k) % ngx_wgconn_bridge_nworkers;
        c = w[i].c;

        /* a channel closed since, and maybe its connection reused */
        if (c->fd == (ngx_socket_t) -1 || c->number != w[i].number) {
            continue;
        }

        n = ngx_wgconn_send_fds(c->fd, &rep, sizeof(rep), &fd, 1);

        if (n == (ssize_t) sizeof(rep)) {
            ngx_wgconn_bridge_next = i + 1;
            close(fd);
            return NGX_OK;
        }

        /* a full channel: that worker is busy, try the next one */
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, ngx_socket_errno,
                  "wgconn: no worker took an overlay connection to port %ui",
                  (ngx_uint_t) a->port);

    close(fd);

    return NGX_ERROR;
}


static ngx_connection_t *
ngx_wgconn_bridge_add(ngx_cycle_t *cycle, ngx_socket_t fd,
    ngx_event_handler_pt handler)
{
    ngx_connection_t  *c;

    if (ngx_nonblocking(fd) == -1) {
        close(fd);
        return NULL;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        close(fd);
        return NULL;
    }

    c->read->handler = handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NULL;
    }

    return c;
}


/*
 * Called by the upstream hook: with the engine in this process the flow
 * opens directly, otherwise the request and the fd travel to the engine.
 * The fd is consumed in every case.
 */

ngx_int_t
ngx_wgconn_bridge_open(int type, ngx_uint_t flags, struct sockaddr *dst,
    socklen_t socklen, ngx_socket_t fd, ngx_log_t *log,
    ngx_wgconn_open_done_pt done, void *data)
{
    ssize_t                   n;
    ngx_wgconn_bridge_req_t   req;

    if (ngx_wgconn_engine_get() != NULL) {
        return ngx_wgconn_flow_open(type, flags, dst, socklen, fd, log, done,
                                    data);
    }

    if (ngx_wgconn_bridge_channel == NULL
        || socklen > sizeof(req.dst))
    {
        close(fd);
        return NGX_DECLINED;
    }

    ngx_memzero(&req, sizeof(ngx_wgconn_bridge_req_t));

    req.cookie = (uintptr_t) data;
    req.type = type;
    req.flags = (uint32_t) flags;
    req.socklen = socklen;
    ngx_memcpy(&req.dst, dst, socklen);

    n = ngx_wgconn_send_fds(ngx_wgconn_bridge_channel->fd, &req, sizeof(req),
                            &fd, 1);

    /* the engine holds its own copy now */
    close(fd);

    if (n != (ssize_t) sizeof(req)) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_socket_errno,
                      "wgconn: cannot pass the connection to the engine");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_wgconn_bridge_engine_read(ngx_event_t *rev)
{
    int                       fd;
    ssize_t                   n;
    ngx_err_t                 err;
    ngx_int_t                 rc;
    ngx_uint_t                nfds;
    ngx_connection_t         *c;
    ngx_wgconn_bridge_req_t   req;
    ngx_wgconn_bridge_ans_t  *ans;

    c = rev->data;

    for ( ;; ) {
        nfds = 1;
        n = ngx_wgconn_recv_fds(c->fd, &req, sizeof(req), &fd, &nfds);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN) {
                return;
            }

            if (!ngx_wgconn_bridge_workers_gone(err)) {
                ngx_log_error(NGX_LOG_ALERT, c->log, err,
                              "wgconn: bridge recvmsg() failed");
                return;
            }

            ngx_log_error(NGX_LOG_INFO, c->log, err,
                          "wgconn: bridge recvmsg() failed");
        }

        if (n <= 0) {
            /* every worker of that generation has exited */
            ngx_close_connection(c);
            return;
        }

        if (nfds != 1 || n != (ssize_t) sizeof(req)
            || req.socklen > sizeof(req.dst))
        {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "wgconn: malformed bridge request");
            if (nfds) {
                close(fd);
            }
            continue;
        }

        ans = ngx_alloc(sizeof(ngx_wgconn_bridge_ans_t), c->log);
        if (ans == NULL) {
            close(fd);
            continue;
        }

        ans->channel = c;
        ans->number = c->number;
        ans->cookie = req.cookie;

        /*
         * the worker made the pair with SOCK_NONBLOCK, a flag of the open
         * file that SCM_RIGHTS passes along: no ioctl() per connection
         */

        rc = ngx_wgconn_flow_open(req.type, req.flags, &req.dst.sa,
                                  req.socklen, fd, c->log,
                                  ngx_wgconn_bridge_answer, ans);

        if (rc != NGX_OK) {
            ngx_wgconn_bridge_answer(ans, NGX_ERROR, NGX_ENETUNREACH);
        }
    }
}


static void
ngx_wgconn_bridge_answer(void *data, ngx_int_t rc, ngx_err_t err)
{
    ngx_wgconn_bridge_ans_t  *ans = data;

    ngx_err_t                 serr;
    ngx_uint_t                level;
    ngx_wgconn_bridge_rep_t   rep;

    if (ans->channel->number == ans->number
        && ans->channel->fd != (ngx_socket_t) -1)
    {
        ngx_memzero(&rep, NGX_WGCONN_BRIDGE_REP_HEAD);
        rep.op = NGX_WGCONN_BRIDGE_OPENED;
        rep.cookie = ans->cookie;
        rep.rc = (int32_t) rc;
        rep.err = (int32_t) err;

        if (send(ans->channel->fd, &rep, NGX_WGCONN_BRIDGE_REP_HEAD, 0)
            == -1)
        {
            /* a connect still under way outlived its worker (a reload) */
            serr = ngx_socket_errno;
            level = ngx_wgconn_bridge_workers_gone(serr) ? NGX_LOG_INFO
                                                         : NGX_LOG_ALERT;
            ngx_log_error(level, ans->channel->log, serr,
                          "wgconn: bridge send() failed");
        }
    }

    ngx_free(ans);
}


static void
ngx_wgconn_bridge_worker_read(ngx_event_t *rev)
{
    int                      fd;
    ssize_t                  n;
    ngx_uint_t               nfds;
    ngx_connection_t        *c;
    ngx_wgconn_bridge_rep_t  rep;

    c = rev->data;

    for ( ;; ) {
        nfds = 1;
        n = ngx_wgconn_recv_fds(c->fd, &rep, sizeof(rep), &fd, &nfds);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            return;
        }

        if (n <= 0) {
            ngx_wgconn_bridge_engine_gone(c);
            return;
        }

        if (rep.op == NGX_WGCONN_BRIDGE_ACCEPT
            && n == (ssize_t) sizeof(rep) && nfds == 1)
        {
            ngx_wgconn_listen_accept(&rep.accept, fd);
            continue;
        }

        if (nfds) {
            close(fd);
        }

        if (rep.op == NGX_WGCONN_BRIDGE_OPENED
            && n == (ssize_t) NGX_WGCONN_BRIDGE_REP_HEAD)
        {
            ngx_wgconn_upstream_opened((void *) (uintptr_t) rep.cookie,
                                       rep.rc, rep.err);
        }
    }
}


/* the master starts another engine (see ngx_wgconn_lifeline_watch()) */

static void
ngx_wgconn_bridge_engine_gone(ngx_connection_t *c)
{
    ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                  "wgconn: the engine process is gone");

    ngx_wgconn_bridge_channel = NULL;
    ngx_close_connection(c);
}


/*
 * One message with descriptors attached (SCM_RIGHTS), as the bridge and
 * the lifeline exchange them.
 */

ssize_t
ngx_wgconn_send_fds(ngx_socket_t s, void *buf, size_t len, int *fds,
    ngx_uint_t nfds)
{
    struct iovec        iov;
    struct msghdr       msg;
    struct cmsghdr     *cmsg;
    ngx_wgconn_cmsg_t   cmsgbuf;

    if (nfds > NGX_WGCONN_MAX_FDS) {
        ngx_set_socket_errno(NGX_EINVAL);
        return -1;
    }

    iov.iov_base = buf;
    iov.iov_len = len;

    ngx_memzero(&msg, sizeof(struct msghdr));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;

    if (nfds) {
        ngx_memzero(&cmsgbuf, sizeof(cmsgbuf));

        msg.msg_control = &cmsgbuf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);

        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        ngx_memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }

    return sendmsg(s, &msg, 0);
}


/* *nfds: in, room in fds; out, descriptors received (close-on-exec) */

ssize_t
ngx_wgconn_recv_fds(ngx_socket_t s, void *buf, size_t len, int *fds,
    ngx_uint_t *nfds)
{
    int                 fd;
    ssize_t             n;
    ngx_uint_t          got, i, max;
    struct iovec        iov;
    struct msghdr       msg;
    struct cmsghdr     *cmsg;
    ngx_wgconn_cmsg_t   cmsgbuf;

    max = *nfds;
    *nfds = 0;

    iov.iov_base = buf;
    iov.iov_len = len;

    ngx_memzero(&msg, sizeof(struct msghdr));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = &cmsgbuf;
    msg.msg_controllen = sizeof(cmsgbuf);

    n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);

    if (n == -1) {
        return -1;
    }

    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET
            || cmsg->cmsg_type != SCM_RIGHTS)
        {
            continue;
        }

        got = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

        for (i = 0; i < got; i++) {
            ngx_memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));

            if (*nfds < max) {
                fds[(*nfds)++] = fd;

            } else {
                /* more than the caller takes: do not leak them */
                close(fd);
            }
        }
    }

    return n;
}


/*
 * The workers of a channel's generation have all exited (a reload) and
 * closed it, with answers of the engine's still unread (ECONNRESET) or
 * while the engine was sending one (EPIPE): an end of file, not a fault.
 */

static ngx_uint_t
ngx_wgconn_bridge_workers_gone(ngx_err_t err)
{
    return err == NGX_EPIPE || err == NGX_ECONNRESET;
}
