
/*
 * The engine process.  One node identity has one engine, and a reload
 * must neither change the node nor break flows of the old generation, so
 * with a master process the engine lives in a process of its own that
 * outlives reloads: the master forks it once (init_module of the first
 * cycle) and hands it, at every cycle, the engine ends of that cycle's
 * worker channels over a "lifeline" socket.  Old workers keep their
 * channels until they exit, so their flows drain while new workers use
 * new channels to the same engine.  The engine exits when the master does
 * (the lifeline reads EOF).
 *
 * The lifeline's master end is found again at the next cycle through an
 * environment variable, as nginx itself passes listening sockets on.
 *
 * Should the engine die, the lifeline turns readable (end of file) and,
 * being set up for signal-driven I/O, sends the master SIGHUP: the reload
 * finds the engine gone and starts a new one from the current
 * configuration.  nginx offers modules no hook in the master's loop; this
 * uses the master's own reconfiguration path instead.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <sys/prctl.h>
#include <pthread.h>

#include <sodium.h>

#include "ngx_wgconn.h"


#define NGX_WGCONN_ENV          "NGX_WGCONN_ENGINE"


typedef struct {
    uint32_t                   nfds;         /* worker channels */
    uint32_t                   has_conf;     /* and then a memfd */
    u_char                     digest[32];   /* of the wgconn{} block */
    uint32_t                   nlisten;
    ngx_wgconn_listen_spec_t   listen[NGX_WGCONN_MAX_LISTEN];
} ngx_wgconn_cycle_msg_t;


static ngx_socket_t ngx_wgconn_lifeline_get(void);
static void ngx_wgconn_lifeline_watch(ngx_cycle_t *cycle,
    ngx_socket_t lifeline);
static ngx_socket_t ngx_wgconn_engine_spawn(ngx_cycle_t *cycle,
    ngx_wgconn_conf_t *wcf);
static void ngx_wgconn_engine_main(ngx_cycle_t *cycle,
    ngx_wgconn_conf_t *wcf, ngx_socket_t lifeline);
static void ngx_wgconn_engine_detach(ngx_cycle_t *cycle,
    ngx_core_conf_t *ccf);
static ngx_int_t ngx_wgconn_engine_privileges(ngx_cycle_t *cycle);
static void ngx_wgconn_daemon_forked(void);
static ngx_int_t ngx_wgconn_send_cycle(ngx_socket_t lifeline,
    ngx_wgconn_conf_t *wcf);
static void ngx_wgconn_lifeline_read(ngx_event_t *rev);
static void ngx_wgconn_conf_digest(ngx_wgconn_conf_t *wcf, u_char *out,
    ngx_uint_t node_only);
static void ngx_wgconn_engine_replace(ngx_cycle_t *cycle,
    ngx_socket_t lifeline);
static void ngx_wgconn_engine_apply(ngx_log_t *log, ngx_socket_t fd,
    u_char *digest);


static u_char  ngx_wgconn_running_digest[32];

/* in the master: the engine it started, and what it cannot change live */
static ngx_pid_t     ngx_wgconn_engine_pid;
static u_char        ngx_wgconn_node_digest[32];
static ngx_uint_t    ngx_wgconn_node_known;

/* the first cycle's lifeline, until the daemon's master owns its signal */
static ngx_socket_t  ngx_wgconn_daemon_lifeline = (ngx_socket_t) -1;


/*
 * In the master (init_module of every cycle).  NGX_DECLINED: no engine
 * process here (nginx -t, or master_process off: the single process runs
 * the engine itself).
 */

ngx_int_t
ngx_wgconn_process_init_module(ngx_cycle_t *cycle, ngx_wgconn_conf_t *wcf)
{
    u_char            digest[32];
    ngx_int_t         rc;
    ngx_socket_t      lifeline;
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ngx_test_config || !ccf->master) {
        return NGX_DECLINED;
    }

    if (ngx_wgconn_bridge_init_module(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    lifeline = ngx_wgconn_lifeline_get();

    /*
     * a new UDP port, address or MTU: the engine's socket and netif are
     * built from them, so a new engine takes over (peers and keys change
     * live, see ngx_wgconn_engine_reconfigure())
     */

    ngx_wgconn_conf_digest(wcf, digest, 1);

    if (lifeline != (ngx_socket_t) -1
        && ngx_wgconn_node_known
        && ngx_memcmp(digest, ngx_wgconn_node_digest, 32) != 0)
    {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "wgconn: listen_port, address or mtu changed, "
                      "starting a new engine process");
        ngx_wgconn_engine_replace(cycle, lifeline);
        lifeline = (ngx_socket_t) -1;
    }

    ngx_memcpy(ngx_wgconn_node_digest, digest, 32);
    ngx_wgconn_node_known = 1;

    if (lifeline != (ngx_socket_t) -1) {
        if (ngx_wgconn_send_cycle(lifeline, wcf) == NGX_OK) {
            ngx_wgconn_bridge_close_engine_fds();
            ngx_wgconn_lifeline_watch(cycle, lifeline);
            return NGX_OK;
        }

        /*
         * the engine died (a worker that saw it go asked for this
         * reload): start a new one, built from this cycle's configuration
         */
        ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_socket_errno,
                      "wgconn: the engine process is gone, starting a "
                      "new one");
        close(lifeline);
    }

    lifeline = ngx_wgconn_engine_spawn(cycle, wcf);

    rc = NGX_ERROR;

    if (lifeline != (ngx_socket_t) -1) {
        rc = ngx_wgconn_send_cycle(lifeline, wcf);

        if (rc == NGX_OK) {
            ngx_wgconn_lifeline_watch(cycle, lifeline);

        } else {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                          "wgconn: cannot reach the engine process");
        }
    }

    /* the engine holds its own copies now */
    ngx_wgconn_bridge_close_engine_fds();

    return rc;
}


static ngx_socket_t
ngx_wgconn_lifeline_get(void)
{
    char       *v;
    ngx_int_t   fd;

    v = getenv(NGX_WGCONN_ENV);

    if (v == NULL) {
        return (ngx_socket_t) -1;
    }

    fd = ngx_atoi((u_char *) v, ngx_strlen(v));

    /* an engine that died leaves a closed or reused descriptor behind */

    if (fd == NGX_ERROR || fcntl(fd, F_GETFD) == -1) {
        return (ngx_socket_t) -1;
    }

    return (ngx_socket_t) fd;
}


static ngx_socket_t
ngx_wgconn_engine_spawn(ngx_cycle_t *cycle, ngx_wgconn_conf_t *wcf)
{
    int     sv[2];
    char    buf[NGX_INT_T_LEN + 1];
    pid_t   pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "wgconn: socketpair() failed");
        return (ngx_socket_t) -1;
    }

    pid = fork();

    switch (pid) {

    case -1:
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "wgconn: fork() of the engine process failed");
        close(sv[0]);
        close(sv[1]);
        return (ngx_socket_t) -1;

    case 0:
        close(sv[0]);
        ngx_wgconn_engine_main(cycle, wcf, sv[1]);
        exit(2);

    default:
        break;
    }

    close(sv[1]);

    ngx_wgconn_engine_pid = pid;

    ngx_sprintf((u_char *) buf, "%d%Z", sv[0]);

    if (setenv(NGX_WGCONN_ENV, buf, 1) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "wgconn: setenv() failed");
        close(sv[0]);
        return (ngx_socket_t) -1;
    }

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "wgconn: engine process %P started", pid);

    return sv[0];
}


/* end the running engine (it exits on the lifeline's end of file) */

static void
ngx_wgconn_engine_replace(ngx_cycle_t *cycle, ngx_socket_t lifeline)
{
    int         status;
    ngx_uint_t  i;

    /* this end of file is ours: no SIGHUP for it */
    (void) fcntl(lifeline, F_SETFL, fcntl(lifeline, F_GETFL) & ~O_ASYNC);

    close(lifeline);
    unsetenv(NGX_WGCONN_ENV);

    if (ngx_wgconn_engine_pid <= 0) {
        return;
    }

    /* the new engine binds the same UDP port: wait for the old one */

    for (i = 0; i < 300; i++) {
        if (waitpid(ngx_wgconn_engine_pid, &status, WNOHANG)
            == ngx_wgconn_engine_pid
            || (kill(ngx_wgconn_engine_pid, 0) == -1 && ngx_errno == ESRCH))
        {
            break;
        }

        ngx_msleep(10);
    }

    ngx_wgconn_engine_pid = 0;
}


/*
 * SIGHUP to this process when the engine's end closes.  Set at every
 * cycle.  With "daemon on" the first cycle runs in the process that forks
 * the master and exits, and nginx calls no module in the new master before
 * its first reload; fork() does call pthread_atfork() handlers, though,
 * and the child of that fork is the master, still root.  (A worker could
 * not correct the owner: a signal owner set by an unprivileged process
 * cannot signal a master running as root.)
 */

static void
ngx_wgconn_lifeline_watch(ngx_cycle_t *cycle, ngx_socket_t lifeline)
{
    int               flags;
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ccf->daemon && !ngx_daemonized && !ngx_inherited) {
        if (ngx_wgconn_daemon_lifeline == (ngx_socket_t) -1
            && pthread_atfork(NULL, NULL, ngx_wgconn_daemon_forked) != 0)
        {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "wgconn: pthread_atfork() failed, the engine "
                          "process will be restarted only after the "
                          "first reload");
        }

        ngx_wgconn_daemon_lifeline = lifeline;
    }

    flags = fcntl(lifeline, F_GETFL);

    if (flags == -1
        || fcntl(lifeline, F_SETOWN, getpid()) == -1
        || fcntl(lifeline, F_SETSIG,
                 ngx_signal_value(NGX_RECONFIGURE_SIGNAL)) == -1
        || fcntl(lifeline, F_SETFL, flags | O_ASYNC) == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "wgconn: cannot watch the engine process, it will "
                      "not be restarted should it die");
    }
}


/* in the child of every fork(): acts once, in the new daemon's master */

static void
ngx_wgconn_daemon_forked(void)
{
    if (ngx_wgconn_daemon_lifeline == (ngx_socket_t) -1 || ngx_daemonized) {
        return;
    }

    (void) fcntl(ngx_wgconn_daemon_lifeline, F_SETOWN, ngx_getpid());

    ngx_wgconn_daemon_lifeline = (ngx_socket_t) -1;
}


/* the master's end is inherited by workers, which must not hold it */

void
ngx_wgconn_process_close_lifeline(void)
{
    ngx_socket_t  fd;

    fd = ngx_wgconn_lifeline_get();

    if (fd != (ngx_socket_t) -1) {
        close(fd);
    }
}


static ngx_int_t
ngx_wgconn_send_cycle(ngx_socket_t lifeline, ngx_wgconn_conf_t *wcf)
{
    int                      fds[NGX_WGCONN_MAX_FDS];
    ssize_t                  n;
    ngx_socket_t             conf;
    ngx_wgconn_cycle_msg_t   cm;

    ngx_memzero(&cm, sizeof(ngx_wgconn_cycle_msg_t));

    ngx_wgconn_conf_digest(wcf, cm.digest, 0);
    /* room for the configuration's descriptor after the channels */
    cm.nfds = ngx_wgconn_bridge_engine_fds(fds, NGX_WGCONN_MAX_FDS - 1);
    cm.nlisten = ngx_wgconn_listen_specs(wcf, cm.listen,
                                         NGX_WGCONN_MAX_LISTEN);

    conf = ngx_wgconn_conf_pack(wcf, ngx_cycle->log);

    if (conf != (ngx_socket_t) -1) {
        fds[cm.nfds] = conf;
        cm.has_conf = 1;
    }

    n = ngx_wgconn_send_fds(lifeline, &cm, sizeof(cm), fds,
                            cm.nfds + cm.has_conf);

    if (conf != (ngx_socket_t) -1) {
        close(conf);
    }

    return (n == (ssize_t) sizeof(cm)) ? NGX_OK : NGX_ERROR;
}


static void
ngx_wgconn_engine_main(ngx_cycle_t *cycle, ngx_wgconn_conf_t *wcf,
    ngx_socket_t lifeline)
{
    ngx_uint_t         i;
    sigset_t           set;
    struct rlimit      rlmt;
    ngx_listening_t   *ls;
    ngx_core_conf_t   *ccf;
    ngx_connection_t  *c;

    /* forked inside ngx_init_cycle(): the new cycle is not global yet */
    ngx_cycle = cycle;
    ngx_process = NGX_PROCESS_HELPER;
    ngx_parent = ngx_pid;
    ngx_pid = ngx_getpid();

    ngx_wgconn_conf_digest(wcf, ngx_wgconn_running_digest, 0);

    /*
     * at the first start the master forks us before it installs its
     * signal handlers: take nginx's (SIGPIPE ignored, QUIT/TERM noted)
     */
    if (ngx_init_signals(cycle->log) != NGX_OK) {
        exit(2);
    }

    sigemptyset(&set);

    if (sigprocmask(SIG_SETMASK, &set, NULL) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "wgconn: sigprocmask() failed");
    }

    /* every flow holds a descriptor here: take the workers' limit */

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ccf->rlimit_nofile != NGX_CONF_UNSET) {
        rlmt.rlim_cur = (rlim_t) ccf->rlimit_nofile;
        rlmt.rlim_max = (rlim_t) ccf->rlimit_nofile;

        if (setrlimit(RLIMIT_NOFILE, &rlmt) == -1) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "wgconn: setrlimit(RLIMIT_NOFILE, %i) failed",
                          ccf->rlimit_nofile);
        }
    }

    ngx_wgconn_engine_detach(cycle, ccf);

    /* the workers accept; the engine keeps none of the listening sockets */

    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].fd != (ngx_socket_t) -1) {
            close(ls[i].fd);
        }
    }

    cycle->listening.nelts = 0;

    ngx_setproctitle("wgconn engine");

    if (ngx_event_core_module.init_process(cycle) != NGX_OK) {
        exit(2);
    }

    /* no accept mutex: this process never accepts */
    ngx_use_accept_mutex = 0;

    if (ngx_wgconn_engine_start(cycle, wcf) != NGX_OK
        || ngx_wgconn_engine_privileges(cycle) != NGX_OK)
    {
        exit(2);
    }

    (void) ngx_nonblocking(lifeline);

    c = ngx_get_connection(lifeline, cycle->log);
    if (c == NULL) {
        exit(2);
    }

    c->read->handler = ngx_wgconn_lifeline_read;
    c->read->log = cycle->log;
    c->write->log = cycle->log;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        exit(2);
    }

    for ( ;; ) {
        ngx_process_events_and_timers(cycle);

        if (ngx_terminate || ngx_quit) {
            ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                          "wgconn: engine process exiting");
            ngx_wgconn_engine_stop();
            exit(0);
        }
    }
}


/*
 * With "daemon on" the first engine is forked before nginx daemonizes.
 * It leaves the caller's session and output as the daemon does: a caller
 * that reads nginx's output until its end, as $(nginx) does, would
 * otherwise wait for the engine too.  nginx moves stderr to the error log
 * only after daemonizing, so the engine does it here.
 */

static void
ngx_wgconn_engine_detach(ngx_cycle_t *cycle, ngx_core_conf_t *ccf)
{
    int  fd;

    if (!ccf->daemon || ngx_daemonized) {
        return;
    }

    if (setsid() == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "wgconn: setsid() failed");
    }

    fd = open("/dev/null", O_RDWR);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "wgconn: open(\"/dev/null\") failed");
        return;
    }

    if (dup2(fd, STDIN_FILENO) == -1 || dup2(fd, STDOUT_FILENO) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "wgconn: dup2() failed");
    }

    if (fd > STDERR_FILENO) {
        close(fd);
    }

    (void) ngx_log_redirect_stderr(cycle);
}


/* as a worker does: the engine does not keep root */

static ngx_int_t
ngx_wgconn_engine_privileges(ngx_cycle_t *cycle)
{
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() != 0) {
        return NGX_OK;
    }

    if (setgid(ccf->group) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "wgconn: setgid(%d) failed", ccf->group);
        return NGX_ERROR;
    }

    if (initgroups(ccf->username, ccf->group) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "wgconn: initgroups(%s, %d) failed",
                      ccf->username, ccf->group);
        return NGX_ERROR;
    }

    if (setuid(ccf->user) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "wgconn: setuid(%d) failed", ccf->user);
        return NGX_ERROR;
    }

    (void) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);

    return NGX_OK;
}


static void
ngx_wgconn_lifeline_read(ngx_event_t *rev)
{
    int                      fds[NGX_WGCONN_MAX_FDS];
    ssize_t                  n;
    ngx_uint_t               nfds;
    ngx_connection_t        *c;
    ngx_wgconn_cycle_msg_t   cm;

    c = rev->data;

    for ( ;; ) {
        nfds = NGX_WGCONN_MAX_FDS;
        n = ngx_wgconn_recv_fds(c->fd, &cm, sizeof(cm), fds, &nfds);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            return;
        }

        if (n <= 0) {
            /* the master is gone: so is the node */
            ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                          "wgconn: master process exited, engine exiting");
            ngx_terminate = 1;
            ngx_close_connection(c);
            return;
        }

        if (n != (ssize_t) sizeof(cm)
            || cm.nlisten > NGX_WGCONN_MAX_LISTEN
            || cm.has_conf > 1
            || nfds != cm.nfds + cm.has_conf)
        {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "wgconn: malformed message from the master");
            while (nfds) {
                close(fds[--nfds]);
            }

            continue;
        }

        if (cm.has_conf) {
            ngx_wgconn_engine_apply(c->log, fds[cm.nfds], cm.digest);
        }

        if (ngx_wgconn_bridge_engine_generation((ngx_cycle_t *) ngx_cycle,
                                                fds, cm.nfds)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "wgconn: cannot watch a worker channel");
        }

        ngx_wgconn_inbound_set(cm.listen, cm.nlisten);

        nfds = cm.nfds;

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "wgconn: engine serves a new generation of %ui "
                      "workers", nfds);
    }
}


/* a reload's configuration: applied if it differs from the running one */

static void
ngx_wgconn_engine_apply(ngx_log_t *log, ngx_socket_t fd, u_char *digest)
{
    ngx_pool_t         *pool;
    ngx_wgconn_conf_t  *wcf;

    if (ngx_memcmp(digest, ngx_wgconn_running_digest, 32) == 0) {
        close(fd);
        return;
    }

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        close(fd);
        return;
    }

    wcf = ngx_wgconn_conf_unpack(fd, pool, log);

    if (wcf == NULL || ngx_wgconn_engine_reconfigure(wcf, pool) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "wgconn: the new configuration could not be applied, "
                      "the engine keeps the previous one");
        ngx_destroy_pool(pool);
        return;
    }

    ngx_memcpy(ngx_wgconn_running_digest, digest, 32);
}


/*
 * What a running engine was built from, to tell a reload that changed it;
 * node_only: just what the engine cannot change live
 */

static void
ngx_wgconn_conf_digest(ngx_wgconn_conf_t *wcf, u_char *out,
    ngx_uint_t node_only)
{
    ngx_uint_t                 i;
    crypto_generichash_state   st;
    ngx_wgconn_peer_conf_t    *peer;

    crypto_generichash_init(&st, NULL, 0, 32);

    crypto_generichash_update(&st, (u_char *) &wcf->listen_port,
                              sizeof(wcf->listen_port));
    crypto_generichash_update(&st, (u_char *) &wcf->mtu, sizeof(wcf->mtu));
    crypto_generichash_update(&st, wcf->addresses.elts,
                              wcf->addresses.nelts * sizeof(ngx_cidr_t));

    if (node_only) {
        crypto_generichash_final(&st, out, 32);
        return;
    }

    crypto_generichash_update(&st, wcf->private_key, NGX_WGCONN_KEY_LEN);

    peer = wcf->peers.elts;

    for (i = 0; i < wcf->peers.nelts; i++) {
        crypto_generichash_update(&st, peer[i].public_key,
                                  NGX_WGCONN_KEY_LEN);
        crypto_generichash_update(&st, peer[i].psk, NGX_WGCONN_KEY_LEN);
        crypto_generichash_update(&st, peer[i].allowed_ips.elts,
                                  peer[i].allowed_ips.nelts
                                  * sizeof(ngx_cidr_t));
        crypto_generichash_update(&st, (u_char *) &peer[i].keepalive,
                                  sizeof(peer[i].keepalive));
        crypto_generichash_update(&st, peer[i].name.data, peer[i].name.len);

        if (peer[i].endpoint) {
            crypto_generichash_update(&st,
                                      (u_char *) peer[i].endpoint->sockaddr,
                                      peer[i].endpoint->socklen);
        }
    }

    crypto_generichash_final(&st, out, 32);
}
