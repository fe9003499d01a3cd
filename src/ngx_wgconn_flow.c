
/*
 * Flows: one overlay TCP connection or UDP association (an lwIP pcb) bridged
 * to one end of a local socket pair whose other end nginx uses as an
 * ordinary connection: an upstream's (opened here) or a client's of an
 * overlay listener (accepted here, handed to a worker by the caller).
 * Bytes move between the two without buffering beyond what lwIP and the
 * socket already hold: lwIP's receive
 * window stays closed while the socket is full, and the socket is not read
 * while lwIP's send buffer is full, so back-pressure crosses the bridge.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_wgconn.h"

#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "arch/rcvwnd.h"


#define NGX_WGCONN_FLOW_BUF   65536
#define NGX_WGCONN_TCP_CHUNK  0xffff      /* tcp_write() takes a u16_t */

/*
 * Data taken from the socket but not yet sent stays below this (as
 * Linux's tcp_notsent_lowat): the rest waits in the socket, where it costs
 * nothing, instead of lengthening lwIP's unsent queue, which tcp_write()
 * walks to its end on every call.
 */
#ifndef NGX_WGCONN_TCP_NOTSENT
#define NGX_WGCONN_TCP_NOTSENT  (256 * 1024)
#endif


struct ngx_wgconn_flow_s {
    ngx_queue_t                queue;
    ngx_queue_t                mem_wait;   /* in ngx_wgconn_flows_mem_wait */
    ngx_queue_t                batch;      /* in ngx_wgconn_flows_batch */
    ngx_connection_t          *c;          /* our end of the socket pair */
    struct tcp_pcb            *tpcb;
    struct udp_pcb            *upcb;
    struct udp_pcb            *lpcb;       /* inbound UDP: the listener's */
    ngx_queue_t                session;    /* inbound UDP: in its bucket */
    ip_addr_t                  rip;        /* inbound UDP: the client */
    ip_addr_t                  lip;
    u16_t                      rport;
    struct pbuf               *pending;    /* received, not yet written */
    struct pbuf               *pending_last;
    wgc_rcvwnd_t               rcvwnd;     /* its receive window's tuning */
    ngx_wgconn_open_done_pt    done;
    void                      *data;
    ngx_log_t                  log;
    unsigned                   connected:1;
    unsigned                   client_first:1;
    unsigned                   local_eof:1;   /* nginx shut its writing */
    unsigned                   remote_eof:1;  /* peer sent FIN */
    unsigned                   shut_local:1;  /* we shut the socket's wr */
    unsigned                   mem_waiting:1;
    unsigned                   batched:1;
};


static ngx_wgconn_flow_t *ngx_wgconn_flow_new(int type, ngx_socket_t fd,
    ngx_log_t *log);
static void ngx_wgconn_flow_tcp_callbacks(ngx_wgconn_flow_t *flow,
    struct tcp_pcb *pcb);
static ngx_int_t ngx_wgconn_flow_open_tcp(ngx_wgconn_flow_t *flow,
    ip_addr_t *ip, u16_t port);
static ngx_int_t ngx_wgconn_flow_open_udp(ngx_wgconn_flow_t *flow,
    ip_addr_t *ip, u16_t port);
static err_t ngx_wgconn_tcp_connected(void *arg, struct tcp_pcb *tpcb,
    err_t err);
static err_t ngx_wgconn_tcp_recv(void *arg, struct tcp_pcb *tpcb,
    struct pbuf *p, err_t err);
static err_t ngx_wgconn_tcp_sent(void *arg, struct tcp_pcb *tpcb, u16_t len);
static void ngx_wgconn_tcp_err(void *arg, err_t err);
static void ngx_wgconn_udp_recv(void *arg, struct udp_pcb *upcb,
    struct pbuf *p, const ip_addr_t *addr, u16_t port);
static void ngx_wgconn_flow_read(ngx_event_t *rev);
static void ngx_wgconn_flow_write(ngx_event_t *wev);
static void ngx_wgconn_flow_read_udp(ngx_event_t *rev);
static size_t ngx_wgconn_flow_mem_room(ngx_wgconn_flow_t *flow,
    size_t size);
static ngx_int_t ngx_wgconn_flow_flush(ngx_wgconn_flow_t *flow);
static uint64_t ngx_wgconn_flow_usec(void);
static void ngx_wgconn_flow_check_done(ngx_wgconn_flow_t *flow);
static void ngx_wgconn_flow_finish(ngx_wgconn_flow_t *flow, ngx_int_t rc,
    ngx_err_t err);
static void ngx_wgconn_flow_free(ngx_wgconn_flow_t *flow, ngx_uint_t reset);
static ngx_queue_t *ngx_wgconn_session_bucket(const ip_addr_t *rip,
    u16_t rport);
static ngx_int_t ngx_wgconn_sockaddr_to_ip(struct sockaddr *sa,
    ip_addr_t *ip, u16_t *port);


static ngx_queue_t  ngx_wgconn_flows = { &ngx_wgconn_flows,
                                         &ngx_wgconn_flows };
static ngx_queue_t  ngx_wgconn_flows_mem_wait = { &ngx_wgconn_flows_mem_wait,
                                                  &ngx_wgconn_flows_mem_wait };
/* flows that received data in the batch of input being processed */
static ngx_queue_t  ngx_wgconn_flows_batch = { &ngx_wgconn_flows_batch,
                                               &ngx_wgconn_flows_batch };
/* inbound UDP sessions by client address; a bucket keeps the busiest first */
#define NGX_WGCONN_SESSION_BUCKETS  256

static ngx_queue_t  ngx_wgconn_sessions[NGX_WGCONN_SESSION_BUCKETS];
static u_char       ngx_wgconn_flow_buf[NGX_WGCONN_FLOW_BUF];


ngx_int_t
ngx_wgconn_flow_open(int type, ngx_uint_t flags, struct sockaddr *dst,
    socklen_t socklen, ngx_socket_t fd, ngx_log_t *log,
    ngx_wgconn_open_done_pt done, void *data)
{
    u16_t               port;
    ngx_int_t           rc;
    ip_addr_t           ip;
    ngx_wgconn_flow_t  *flow;

    /* the fd is the flow's from here on, also when opening fails */

    if (ngx_wgconn_engine_get() == NULL
        || ngx_wgconn_sockaddr_to_ip(dst, &ip, &port) != NGX_OK)
    {
        close(fd);
        return NGX_DECLINED;
    }

    flow = ngx_wgconn_flow_new(type, fd, log);
    if (flow == NULL) {
        return NGX_ERROR;
    }

    flow->done = done;
    flow->data = data;
    flow->client_first = (flags & NGX_WGCONN_CLIENT_FIRST) ? 1 : 0;

    if (type == SOCK_STREAM) {
        rc = ngx_wgconn_flow_open_tcp(flow, &ip, port);

    } else {
        rc = ngx_wgconn_flow_open_udp(flow, &ip, port);
    }

    if (rc != NGX_OK) {
        flow->done = NULL;
        ngx_wgconn_flow_free(flow, 1);
        return NGX_DECLINED;
    }

    if (ngx_add_conn(flow->c) == NGX_ERROR) {
        flow->done = NULL;
        ngx_wgconn_flow_free(flow, 1);
        return NGX_ERROR;
    }

    if (type == SOCK_DGRAM) {
        /* a UDP association is usable at once: datagrams wait in the
         * device's queue while the handshake completes */
        ngx_wgconn_flow_finish(flow, NGX_OK, 0);
    }

    return NGX_OK;
}


/*
 * A connection lwIP accepted on an overlay listener.  On failure the pcb
 * is aborted here (the accept callback then returns ERR_ABRT).
 */

ngx_int_t
ngx_wgconn_flow_accept_tcp(void *pcb, ngx_socket_t fd)
{
    ngx_wgconn_flow_t  *flow;

    flow = ngx_wgconn_flow_new(SOCK_STREAM, fd, ngx_cycle->log);
    if (flow == NULL) {
        tcp_abort(pcb);
        return NGX_ERROR;
    }

    ngx_wgconn_flow_tcp_callbacks(flow, pcb);
    flow->connected = 1;

    if (ngx_add_conn(flow->c) == NGX_ERROR) {
        ngx_wgconn_flow_free(flow, 1);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A datagram from a new client of an overlay UDP listener: the session
 * shares the listener's pcb and answers from the address it was sent to.
 */

ngx_wgconn_flow_t *
ngx_wgconn_flow_accept_udp(void *lpcb, ngx_wgconn_accept_t *a,
    ngx_socket_t fd)
{
    u16_t               port;
    ngx_wgconn_flow_t  *flow;

    flow = ngx_wgconn_flow_new(SOCK_DGRAM, fd, ngx_cycle->log);
    if (flow == NULL) {
        return NULL;
    }

    flow->lpcb = lpcb;
    flow->connected = 1;
    (void) ngx_wgconn_sockaddr_to_ip(&a->peer.sockaddr, &flow->rip,
                                     &flow->rport);
    (void) ngx_wgconn_sockaddr_to_ip(&a->local.sockaddr, &flow->lip, &port);

    ngx_queue_insert_head(ngx_wgconn_session_bucket(&flow->rip, flow->rport),
                          &flow->session);

    flow->c->read->handler = ngx_wgconn_flow_read_udp;
    flow->c->write->handler = ngx_wgconn_flow_write;

    if (ngx_add_conn(flow->c) == NGX_ERROR) {
        ngx_wgconn_flow_free(flow, 1);
        return NULL;
    }

    return flow;
}


ngx_wgconn_flow_t *
ngx_wgconn_flow_udp_find(void *lpcb, const void *rip, u_short rport,
    const void *lip)
{
    ngx_queue_t        *b, *q;
    ngx_wgconn_flow_t  *flow;

    b = ngx_wgconn_session_bucket(rip, rport);

    for (q = ngx_queue_head(b);
         q != ngx_queue_sentinel(b);
         q = ngx_queue_next(q))
    {
        flow = ngx_queue_data(q, ngx_wgconn_flow_t, session);

        if (flow->lpcb == lpcb
            && flow->rport == rport
            && ip_addr_cmp(&flow->rip, (const ip_addr_t *) rip)
            && ip_addr_cmp(&flow->lip, (const ip_addr_t *) lip))
        {
            ngx_queue_remove(q);
            ngx_queue_insert_head(b, q);
            return flow;
        }
    }

    return NULL;
}


static ngx_queue_t *
ngx_wgconn_session_bucket(const ip_addr_t *rip, u16_t rport)
{
    uint32_t           h;
    ngx_uint_t         i;
    static ngx_uint_t  ready;

    if (!ready) {
        for (i = 0; i < NGX_WGCONN_SESSION_BUCKETS; i++) {
            ngx_queue_init(&ngx_wgconn_sessions[i]);
        }

        ready = 1;
    }

    h = rport;

    if (IP_IS_V6(rip)) {
        for (i = 0; i < 4; i++) {
            h = h * 31 + ip_2_ip6(rip)->addr[i];
        }

    } else {
        h = h * 31 + ip4_addr_get_u32(ip_2_ip4(rip));
    }

    h ^= h >> 16;

    return &ngx_wgconn_sessions[h % NGX_WGCONN_SESSION_BUCKETS];
}


void
ngx_wgconn_flow_udp_input(ngx_wgconn_flow_t *flow, void *p)
{
    ngx_wgconn_udp_recv(flow, NULL, p, NULL, 0);
}


void
ngx_wgconn_flow_close(ngx_wgconn_flow_t *flow)
{
    ngx_wgconn_flow_free(flow, 1);
}


/* a listener goes away: so do its sessions */

void
ngx_wgconn_flow_udp_detach(void *lpcb)
{
    ngx_uint_t          i;
    ngx_queue_t        *b, *q, *next;
    ngx_wgconn_flow_t  *flow;

    for (i = 0; i < NGX_WGCONN_SESSION_BUCKETS; i++) {
        b = &ngx_wgconn_sessions[i];

        if (b->next == NULL) {
            continue;    /* no session yet */
        }

        for (q = ngx_queue_head(b); q != ngx_queue_sentinel(b); q = next) {
            next = ngx_queue_next(q);
            flow = ngx_queue_data(q, ngx_wgconn_flow_t, session);

            if (flow->lpcb == lpcb) {
                ngx_wgconn_flow_free(flow, 0);
            }
        }
    }
}


static ngx_wgconn_flow_t *
ngx_wgconn_flow_new(int type, ngx_socket_t fd, ngx_log_t *log)
{
    ngx_connection_t   *c;
    ngx_wgconn_flow_t  *flow;

    flow = ngx_calloc(sizeof(ngx_wgconn_flow_t), log);
    if (flow == NULL) {
        close(fd);
        return NULL;
    }

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        close(fd);
        ngx_free(flow);
        return NULL;
    }

    /* the flow outlives the request that opened it: own a log copy */
    flow->log = *ngx_cycle->log;
    flow->c = c;

    c->data = flow;
    c->type = type;
    c->log = &flow->log;
    c->read->log = &flow->log;
    c->write->log = &flow->log;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    /* nginx closing its end mid-transfer is routine, not an error */
    c->log_error = NGX_ERROR_INFO;

    ngx_queue_insert_tail(&ngx_wgconn_flows, &flow->queue);

    return flow;
}


void
ngx_wgconn_flow_close_all(void)
{
    ngx_queue_t        *q;
    ngx_wgconn_flow_t  *flow;

    while (!ngx_queue_empty(&ngx_wgconn_flows)) {
        q = ngx_queue_head(&ngx_wgconn_flows);
        flow = ngx_queue_data(q, ngx_wgconn_flow_t, queue);
        ngx_wgconn_flow_finish(flow, NGX_ERROR, NGX_ECONNABORTED);
        ngx_wgconn_flow_free(flow, 1);
    }
}


ngx_uint_t
ngx_wgconn_flow_count(void)
{
    ngx_uint_t    n;
    ngx_queue_t  *q;

    n = 0;

    for (q = ngx_queue_head(&ngx_wgconn_flows);
         q != ngx_queue_sentinel(&ngx_wgconn_flows);
         q = ngx_queue_next(q))
    {
        n++;
    }

    return n;
}


static ngx_int_t
ngx_wgconn_flow_open_tcp(ngx_wgconn_flow_t *flow, ip_addr_t *ip, u16_t port)
{
    err_t            err;
    struct tcp_pcb  *pcb;

    pcb = tcp_new_ip_type(IP_GET_TYPE(ip));
    if (pcb == NULL) {
        return NGX_ERROR;
    }

    ngx_wgconn_flow_tcp_callbacks(flow, pcb);

    err = tcp_connect(pcb, ip, port, ngx_wgconn_tcp_connected);
    if (err != ERR_OK) {
        ngx_log_error(NGX_LOG_ERR, &flow->log, 0,
                      "wgconn: tcp_connect() failed: %d", (int) err);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_wgconn_flow_tcp_callbacks(ngx_wgconn_flow_t *flow, struct tcp_pcb *pcb)
{
    /* each segment leaves at once: nginx already batches its writes */
    tcp_nagle_disable(pcb);

    tcp_arg(pcb, flow);
    tcp_recv(pcb, ngx_wgconn_tcp_recv);
    tcp_sent(pcb, ngx_wgconn_tcp_sent);
    tcp_err(pcb, ngx_wgconn_tcp_err);

    flow->tpcb = pcb;
    flow->c->read->handler = ngx_wgconn_flow_read;
    flow->c->write->handler = ngx_wgconn_flow_write;
}


static ngx_int_t
ngx_wgconn_flow_open_udp(ngx_wgconn_flow_t *flow, ip_addr_t *ip, u16_t port)
{
    struct udp_pcb  *pcb;

    pcb = udp_new_ip_type(IP_GET_TYPE(ip));
    if (pcb == NULL) {
        return NGX_ERROR;
    }

    flow->upcb = pcb;

    if (udp_connect(pcb, ip, port) != ERR_OK) {
        return NGX_ERROR;
    }

    udp_recv(pcb, ngx_wgconn_udp_recv, flow);

    flow->connected = 1;
    flow->c->read->handler = ngx_wgconn_flow_read_udp;
    flow->c->write->handler = ngx_wgconn_flow_write;

    return NGX_OK;
}


static err_t
ngx_wgconn_tcp_connected(void *arg, struct tcp_pcb *tpcb, err_t err)
{
    ngx_wgconn_flow_t *flow = arg;

    flow->connected = 1;

    if (flow->client_first) {
        /* the ACK of the SYN-ACK goes with the request, which nginx writes
         * as soon as it hears of the connection (patches/
         * lwip-tcp-connected-ack.patch; lwIP's delayed-ACK timer sends it
         * within 50 ms otherwise) */
        tcp_set_flags(tpcb, TF_ACK_DELAY);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, &flow->log, 0,
                   "wgconn flow #%uA: connected", flow->c->number);

    ngx_wgconn_flow_finish(flow, NGX_OK, 0);

    /*
     * nginx may already have written the request: read it after lwIP's
     * callback returns, since reading may end the flow and abort the pcb
     */
    ngx_post_event(flow->c->read, &ngx_posted_events);

    return ERR_OK;
}


static err_t
ngx_wgconn_tcp_recv(void *arg, struct tcp_pcb *tpcb, struct pbuf *p,
    err_t err)
{
    ngx_wgconn_flow_t *flow = arg;

    struct pbuf  *last;

    if (p == NULL) {
        flow->remote_eof = 1;

        /*
         * The peer's FIN, ours not sent yet: its ACK may wait (lwIP's
         * delayed ACK, 50 ms at most) for the FIN that nginx's close of
         * its end sends, usually moments later: one segment instead of
         * two.  The peer would resend its FIN only after its
         * retransmission timeout (200 ms on Linux).
         */
        if (tpcb->state == CLOSE_WAIT && (tpcb->flags & TF_ACK_NOW)) {
            tcp_clear_flags(tpcb, TF_ACK_NOW);
            tcp_set_flags(tpcb, TF_ACK_DELAY);
        }

    } else {
        /*
         * O(1) append: pbuf_cat() walks the whole pending chain (and
         * updates every tot_len), quadratic while the socket is full;
         * the flush only follows ->next and ->len
         */
        for (last = p; last->next; last = last->next) { /* void */ }

        if (flow->pending == NULL) {
            flow->pending = p;

        } else {
            flow->pending_last->next = p;
        }

        flow->pending_last = last;

        wgc_rcvwnd_arrived(&flow->rcvwnd, ngx_wgconn_udp_train() != 0);
    }

    /*
     * written in one writev() for all the segments that arrived in this
     * batch of input (ngx_wgconn_flow_batch_done()), else at the end of
     * this event loop iteration
     */

    if (ngx_wgconn_netstack_batching()) {
        if (!flow->batched) {
            flow->batched = 1;
            ngx_queue_insert_tail(&ngx_wgconn_flows_batch, &flow->batch);
        }

    } else if (!flow->c->write->posted) {
        ngx_post_event(flow->c->write, &ngx_posted_events);
    }

    return ERR_OK;
}


static err_t
ngx_wgconn_tcp_sent(void *arg, struct tcp_pcb *tpcb, u16_t len)
{
    ngx_wgconn_flow_t *flow = arg;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, &flow->log, 0,
                   "wgconn flow: %ui bytes acked, ready:%d eof:%d",
                   (ngx_uint_t) len, flow->c->read->ready, flow->local_eof);

    /* room in the send buffer again: pull more from the socket */

    if (flow->c->read->ready && !flow->local_eof) {
        ngx_post_event(flow->c->read, &ngx_posted_events);
    }

    return ERR_OK;
}


static void
ngx_wgconn_tcp_err(void *arg, err_t err)
{
    ngx_wgconn_flow_t *flow = arg;

    ngx_err_t  e;

    /* lwIP has freed the pcb already */
    flow->tpcb = NULL;

    switch (err) {
    case ERR_RST:
        e = NGX_ECONNREFUSED;
        break;
    case ERR_ABRT:
        e = NGX_ECONNABORTED;
        break;
    default:
        e = NGX_ETIMEDOUT;
        break;
    }

    if (!flow->connected) {
        ngx_log_error(NGX_LOG_ERR, &flow->log, e,
                      "wgconn: overlay connection failed");
    }

    ngx_wgconn_flow_finish(flow, NGX_ERROR, e);
    ngx_wgconn_flow_free(flow, 1);
}


static void
ngx_wgconn_udp_recv(void *arg, struct udp_pcb *upcb, struct pbuf *p,
    const ip_addr_t *addr, u16_t port)
{
    ngx_wgconn_flow_t *flow = arg;

    u_char  *data;

    if (p->next == NULL) {
        data = p->payload;

    } else {
        data = ngx_wgconn_flow_buf;
        pbuf_copy_partial(p, data, p->tot_len, 0);
    }

    /* a datagram the socket cannot take is dropped, as UDP does */
    (void) send(flow->c->fd, data, p->tot_len, 0);

    pbuf_free(p);
}


/* socket -> overlay, TCP */

static void
ngx_wgconn_flow_read(ngx_event_t *rev)
{
    size_t              size;
    ssize_t             n;
    err_t               err;
    ngx_connection_t   *c;
    ngx_wgconn_flow_t  *flow;

    c = rev->data;
    flow = c->data;

    if (flow->tpcb == NULL) {
        return;
    }

    if (!flow->connected) {
        /* nginx gave up (proxy_connect_timeout) and closed its end? */
        n = recv(c->fd, ngx_wgconn_flow_buf, 1, MSG_PEEK);

        if (n == 0 || (n == -1 && ngx_socket_errno != NGX_EAGAIN)) {
            ngx_wgconn_flow_free(flow, 1);
        }

        return;
    }

    while (!flow->local_eof) {
        size = ngx_min(tcp_sndbuf(flow->tpcb), NGX_WGCONN_TCP_CHUNK);

        if (size == 0
            || tcp_sndqueuelen(flow->tpcb) >= TCP_SND_QUEUELEN - 4
            || flow->tpcb->snd_lbb - flow->tpcb->snd_nxt
               >= NGX_WGCONN_TCP_NOTSENT
            || (size = ngx_wgconn_flow_mem_room(flow, size)) == 0)
        {
            /* tcp_sent() resumes reading */
            ngx_log_debug2(NGX_LOG_DEBUG_EVENT, &flow->log, 0,
                           "wgconn flow: send buffer full, %uz free, "
                           "%ui queued", size,
                           (ngx_uint_t) tcp_sndqueuelen(flow->tpcb));
            break;
        }

        n = c->recv(c, ngx_wgconn_flow_buf, size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_wgconn_flow_free(flow, 1);
            return;
        }

        if (n == 0) {
            flow->local_eof = 1;
            tcp_shutdown(flow->tpcb, 0, 1);
            break;
        }

        err = tcp_write(flow->tpcb, ngx_wgconn_flow_buf, (u16_t) n,
                        TCP_WRITE_FLAG_COPY);

        if (err != ERR_OK) {
            ngx_log_error(NGX_LOG_ERR, &flow->log, 0,
                          "wgconn: tcp_write() failed: %d%s", (int) err,
                          err == ERR_MEM ? ", at the memory_limit" : "");
            ngx_wgconn_flow_free(flow, 1);
            return;
        }
    }

    if (flow->tpcb) {
        tcp_output(flow->tpcb);
    }

    ngx_wgconn_flow_check_done(flow);
}


/*
 * Under memory pressure (src/arch/mem.h) a connection may have up to
 * WGC_MEM_FLOOR queued to send, and what it reads must fit below the
 * limit: tcp_write() failing there would lose bytes already taken from
 * the socket.  ACKs resume a connection with data in flight (tcp_sent());
 * one with none waits for ngx_wgconn_flow_mem_wake().
 */

static size_t
ngx_wgconn_flow_mem_room(ngx_wgconn_flow_t *flow, size_t size)
{
    size_t  queued, room, avail;

    if (!wgc_mem_pressure()) {
        return size;
    }

    /* tcp_sndbuf() stops at 64k */
    queued = TCP_SND_BUF - flow->tpcb->snd_buf;
    room = (queued < WGC_MEM_FLOOR) ? WGC_MEM_FLOOR - queued : 0;

    /* segments and their pbufs cost up to twice their data */
    avail = (wgc_mem.used < wgc_mem.limit)
            ? (wgc_mem.limit - wgc_mem.used) / 2 : 0;

    if (avail < TCP_MSS) {
        avail = 0;
    }

    room = ngx_min(room, avail);

    if (room == 0 && queued == 0 && !flow->mem_waiting) {
        flow->mem_waiting = 1;
        ngx_queue_insert_tail(&ngx_wgconn_flows_mem_wait, &flow->mem_wait);
    }

    return ngx_min(size, room);
}


/*
 * The end of a batch of input, before its ACKs leave: what arrived is
 * written to nginx now, so that the window it opens rides on the ACK of
 * the batch instead of a window update of its own: fewer packets for the
 * sender to take (its userspace WireGuard decrypts each)
 */

void
ngx_wgconn_flow_batch_done(void)
{
    ngx_queue_t        *q;
    ngx_wgconn_flow_t  *flow;

    while (!ngx_queue_empty(&ngx_wgconn_flows_batch)) {
        q = ngx_queue_head(&ngx_wgconn_flows_batch);
        ngx_queue_remove(q);

        flow = ngx_queue_data(q, ngx_wgconn_flow_t, batch);
        flow->batched = 0;

        ngx_wgconn_flow_write(flow->c->write);
    }
}


/*
 * The receive window's tuning times round trips of a few hundred
 * microseconds: ngx_current_msec is too coarse
 */

static uint64_t
ngx_wgconn_flow_usec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


/* from the netstack's timer */

void
ngx_wgconn_flow_mem_wake(void)
{
    ngx_queue_t        *q;
    ngx_wgconn_flow_t  *flow;

    while (!ngx_queue_empty(&ngx_wgconn_flows_mem_wait)
           && wgc_mem.used + 2 * WGC_MEM_FLOOR < wgc_mem.limit)
    {
        q = ngx_queue_head(&ngx_wgconn_flows_mem_wait);
        ngx_queue_remove(q);

        flow = ngx_queue_data(q, ngx_wgconn_flow_t, mem_wait);
        flow->mem_waiting = 0;

        ngx_post_event(flow->c->read, &ngx_posted_events);
    }
}


/* socket -> overlay, UDP */

static void
ngx_wgconn_flow_read_udp(ngx_event_t *rev)
{
    ssize_t             n;
    struct pbuf        *p;
    ngx_connection_t   *c;
    ngx_wgconn_flow_t  *flow;

    c = rev->data;
    flow = c->data;

    for ( ;; ) {
        n = recv(c->fd, ngx_wgconn_flow_buf, NGX_WGCONN_FLOW_BUF, 0);

        if (n == -1) {
            if (ngx_socket_errno == NGX_EAGAIN) {
                return;
            }

            ngx_wgconn_flow_free(flow, 0);
            return;
        }

        if (n == 0) {
            /* SOCK_SEQPACKET: nginx closed its end */
            ngx_wgconn_flow_free(flow, 0);
            return;
        }

        p = pbuf_alloc(PBUF_TRANSPORT, (u16_t) n, PBUF_RAM);
        if (p == NULL) {
            continue;
        }

        ngx_memcpy(p->payload, ngx_wgconn_flow_buf, n);

        if (flow->lpcb) {
            (void) udp_sendto_if_src(flow->lpcb, p, &flow->rip, flow->rport,
                                     ngx_wgconn_netstack_netif(),
                                     &flow->lip);

        } else {
            (void) udp_send(flow->upcb, p);
        }

        pbuf_free(p);
    }
}


/* overlay -> socket, the socket has room again */

static void
ngx_wgconn_flow_write(ngx_event_t *wev)
{
    ngx_connection_t   *c;
    ngx_wgconn_flow_t  *flow;

    c = wev->data;
    flow = c->data;

    if (flow->c->type == SOCK_DGRAM) {
        return;
    }

    if (ngx_wgconn_flow_flush(flow) == NGX_ERROR) {
        ngx_wgconn_flow_free(flow, 1);
        return;
    }

    ngx_wgconn_flow_check_done(flow);
}


#define NGX_WGCONN_FLOW_IOV  64

static ngx_int_t
ngx_wgconn_flow_flush(ngx_wgconn_flow_t *flow)
{
    size_t             size, len;
    ssize_t            n;
    ngx_err_t          err;
    ngx_uint_t         niov;
    struct pbuf       *p;
    struct iovec       iov[NGX_WGCONN_FLOW_IOV];
    ngx_connection_t  *c;

    c = flow->c;

    while (flow->pending) {
        niov = 0;
        size = 0;

        for (p = flow->pending; p && niov < NGX_WGCONN_FLOW_IOV; p = p->next)
        {
            iov[niov].iov_base = p->payload;
            iov[niov].iov_len = p->len;
            size += p->len;
            niov++;
        }

        n = writev(c->fd, iov, niov);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN) {
                /* the window stays closed until the socket drains */
                c->write->ready = 0;
                return NGX_AGAIN;
            }

            if (err == NGX_EINTR) {
                continue;
            }

            ngx_log_error(NGX_LOG_INFO, c->log, err, "wgconn: writev() failed");
            return NGX_ERROR;
        }

        if (flow->tpcb && n > 0) {
            wgc_rcvwnd_taken(&flow->rcvwnd, flow->tpcb, (size_t) n,
                             ngx_wgconn_flow_usec());
        }

        len = (size_t) n;

        while (len > 0) {
            p = flow->pending;

            if (len < p->len) {
                pbuf_remove_header(p, (u16_t) len);
                break;
            }

            len -= p->len;
            flow->pending = p->next;
            p->next = NULL;
            pbuf_free(p);
        }

        if ((size_t) n < size) {
            c->write->ready = 0;
            return NGX_AGAIN;
        }
    }

    if (flow->remote_eof && !flow->shut_local) {
        flow->shut_local = 1;
        (void) shutdown(c->fd, SHUT_WR);
    }

    return NGX_OK;
}


static void
ngx_wgconn_flow_check_done(ngx_wgconn_flow_t *flow)
{
    err_t  err;

    if (!(flow->local_eof && flow->shut_local) || flow->tpcb == NULL) {
        return;
    }

    /* both directions finished: close the TCP connection gracefully */

    tcp_arg(flow->tpcb, NULL);
    tcp_recv(flow->tpcb, NULL);
    tcp_sent(flow->tpcb, NULL);
    tcp_err(flow->tpcb, NULL);

    err = tcp_close(flow->tpcb);
    if (err != ERR_OK) {
        tcp_abort(flow->tpcb);
    }

    flow->tpcb = NULL;

    ngx_wgconn_flow_free(flow, 0);
}


static void
ngx_wgconn_flow_finish(ngx_wgconn_flow_t *flow, ngx_int_t rc, ngx_err_t err)
{
    ngx_wgconn_open_done_pt  done;

    done = flow->done;

    if (done) {
        flow->done = NULL;
        done(flow->data, rc, err);
    }
}


static void
ngx_wgconn_flow_free(ngx_wgconn_flow_t *flow, ngx_uint_t reset)
{
    if (flow->done) {
        ngx_wgconn_flow_finish(flow, NGX_ERROR, NGX_ECONNABORTED);
    }

    if (flow->tpcb) {
        tcp_arg(flow->tpcb, NULL);
        tcp_recv(flow->tpcb, NULL);
        tcp_sent(flow->tpcb, NULL);
        tcp_err(flow->tpcb, NULL);

        if (reset || tcp_close(flow->tpcb) != ERR_OK) {
            tcp_abort(flow->tpcb);
        }

        flow->tpcb = NULL;
    }

    if (flow->upcb) {
        udp_remove(flow->upcb);
        flow->upcb = NULL;
    }

    if (flow->lpcb) {
        ngx_queue_remove(&flow->session);
        flow->lpcb = NULL;
    }

    if (flow->pending) {
        pbuf_free(flow->pending);
        flow->pending = NULL;
    }

    if (flow->batched) {
        ngx_queue_remove(&flow->batch);
        flow->batched = 0;
    }

    if (flow->mem_waiting) {
        ngx_queue_remove(&flow->mem_wait);
    }

    ngx_queue_remove(&flow->queue);

    if (flow->c) {
        ngx_close_connection(flow->c);
        flow->c = NULL;
    }

    ngx_free(flow);
}


static ngx_int_t
ngx_wgconn_sockaddr_to_ip(struct sockaddr *sa, ip_addr_t *ip, u16_t *port)
{
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        ip_addr_set_ip4_u32_val(*ip, sin->sin_addr.s_addr);
        *port = ntohs(sin->sin_port);
        return NGX_OK;

    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        IP_ADDR6(ip, 0, 0, 0, 0);
        ngx_memcpy(ip_2_ip6(ip)->addr, sin6->sin6_addr.s6_addr, 16);
        ip6_addr_clear_zone(ip_2_ip6(ip));
        *port = ntohs(sin6->sin6_port);
        return NGX_OK;

    default:
        return NGX_ERROR;
    }
}
