
/*
 * ngx_wgconn: the nginx glue shared by the core, http and stream modules.
 */


#ifndef _NGX_WGCONN_H_INCLUDED_
#define _NGX_WGCONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "wg_device.h"
#include "arch/mem.h"


#define NGX_WGCONN_KEY_LEN       32
#define NGX_WGCONN_DEFAULT_PORT  51820
#define NGX_WGCONN_DEFAULT_MTU   1280
#define NGX_WGCONN_DEFAULT_MEMORY  (256 * 1024 * 1024)
#define NGX_WGCONN_MIN_MEMORY      (1024 * 1024)
#define NGX_WGCONN_MAX_FDS       64      /* descriptors in one message */
#define NGX_WGCONN_MAX_LISTEN    128     /* wgconn_listen ports per node */
#define NGX_WGCONN_NAME_LEN      64      /* a peer's name, at most */


typedef struct {
    ngx_str_t                  name;
    u_char                     public_key[NGX_WGCONN_KEY_LEN];
    u_char                     psk[NGX_WGCONN_KEY_LEN];
    ngx_array_t                allowed_ips;      /* of ngx_cidr_t */
    ngx_addr_t                *endpoint;         /* NULL: peer roams in */
    ngx_uint_t                 keepalive;        /* seconds, 0 = off */
    ngx_str_t                  file;             /* where it was defined */
    ngx_uint_t                 line;
    unsigned                   has_psk:1;
} ngx_wgconn_peer_conf_t;


/* an upstream's per-request init, http's or stream's */
typedef ngx_int_t (*ngx_wgconn_init_pt)(void *session, void *uscf);


typedef struct {
    void                      *uscf;
    ngx_wgconn_init_pt         init;
} ngx_wgconn_hook_t;


/*
 * One overlay port served by nginx ("wgconn_listen"): the listening
 * structures nginx built for it, per address family, taken out of the
 * cycle's listening sockets since they have no socket of their own.
 */
typedef struct {
    ngx_uint_t                 type;             /* SOCK_STREAM/DGRAM */
    in_port_t                  port;
    ngx_listening_t           *ls[2];            /* AF_INET, AF_INET6 */
    ngx_str_t                  file;
    ngx_uint_t                 line;
} ngx_wgconn_listen_t;


/* what the engine is told of a listener, and tells a worker per accept */
typedef struct {
    uint16_t                   port;
    uint16_t                   type;
} ngx_wgconn_listen_spec_t;


/* an overlay listener's counters, for the status page */
typedef struct {
    uint16_t                   port;
    uint16_t                   type;
    uint32_t                   reserved;
    uint64_t                   accepted;         /* handed to a worker */
    uint64_t                   dropped;          /* no worker took it */
} ngx_wgconn_listen_stat_t;


typedef struct {
    uint32_t                   type;
    uint32_t                   port;
    uint32_t                   peer_len;
    uint32_t                   local_len;
    ngx_sockaddr_t             peer;
    ngx_sockaddr_t             local;
    u_char                     key[NGX_WGCONN_KEY_LEN];
    uint32_t                   name_len;
    u_char                     name[NGX_WGCONN_NAME_LEN];
} ngx_wgconn_accept_t;


typedef struct {
    ngx_flag_t                 enabled;          /* a wgconn{} block exists */
    u_char                     private_key[NGX_WGCONN_KEY_LEN];
    ngx_array_t                addresses;        /* of ngx_cidr_t */
    ngx_int_t                  listen_port;
    ngx_uint_t                 mtu;
    size_t                     memory_limit;     /* lwIP's heap */
    ngx_array_t                peers;            /* of ngx_wgconn_peer_conf_t */
    ngx_array_t                routes;           /* all allowed IPs, cidr */
    ngx_array_t                hooks;            /* of ngx_wgconn_hook_t */
    ngx_array_t                listens;          /* of ngx_wgconn_listen_t */
    ngx_shm_zone_t            *status_zone;
    unsigned                   has_key:1;
} ngx_wgconn_conf_t;


typedef struct ngx_wgconn_engine_s  ngx_wgconn_engine_t;
typedef struct ngx_wgconn_flow_s    ngx_wgconn_flow_t;
typedef struct ngx_wgconn_udp_s     ngx_wgconn_udp_t;

/* a datagram; after the last of one read, buf is NULL */
typedef void (*ngx_wgconn_udp_recv_pt)(void *data, u_char *buf, size_t len,
    wg_endpoint_t *from);


/*
 * called once the overlay connection behind a flow is established (NGX_OK)
 * or has failed (NGX_ERROR, with err set to the reason)
 */
typedef void (*ngx_wgconn_open_done_pt)(void *data, ngx_int_t rc,
    ngx_err_t err);


extern ngx_module_t  ngx_wgconn_module;


/* ngx_wgconn_module.c */
ngx_wgconn_conf_t *ngx_wgconn_get_conf(ngx_cycle_t *cycle);
ngx_int_t ngx_wgconn_routes(ngx_cycle_t *cycle, struct sockaddr *sa);

/* ngx_wgconn_listen.c: nginx servers on the overlay, in the workers */
char *ngx_wgconn_listen_conf(ngx_conf_t *cf, ngx_module_t *core,
    void *core_srv_conf, ngx_uint_t stream);
ngx_int_t ngx_wgconn_listen_extract(ngx_cycle_t *cycle,
    ngx_wgconn_conf_t *wcf);
ngx_uint_t ngx_wgconn_listen_specs(ngx_wgconn_conf_t *wcf,
    ngx_wgconn_listen_spec_t *specs, ngx_uint_t max);
void ngx_wgconn_listen_accept(ngx_wgconn_accept_t *a, ngx_socket_t fd);
ngx_int_t ngx_wgconn_listen_peer(ngx_connection_t *c, ngx_str_t *key,
    ngx_str_t *name);
ngx_int_t ngx_wgconn_listen_variable(ngx_connection_t *c,
    ngx_variable_value_t *v, uintptr_t data);

/* ngx_wgconn_inbound.c: the engine's overlay listeners */
void ngx_wgconn_inbound_set(ngx_wgconn_listen_spec_t *specs, ngx_uint_t n);
void ngx_wgconn_inbound_close_all(void);
ngx_uint_t ngx_wgconn_inbound_stats(ngx_wgconn_listen_stat_t *stats,
    ngx_uint_t max);

/* ngx_wgconn_conf.c: the wgconn{} block, master to engine */
ngx_socket_t ngx_wgconn_conf_pack(ngx_wgconn_conf_t *wcf, ngx_log_t *log);
ngx_wgconn_conf_t *ngx_wgconn_conf_unpack(ngx_socket_t fd, ngx_pool_t *pool,
    ngx_log_t *log);

/* ngx_wgconn_engine.c: one engine per node, owns device and netstack */
ngx_wgconn_engine_t *ngx_wgconn_engine_get(void);
ngx_int_t ngx_wgconn_engine_reconfigure(ngx_wgconn_conf_t *wcf,
    ngx_pool_t *pool);
ngx_wgconn_peer_conf_t *ngx_wgconn_engine_peer_of(int family,
    const void *addr);
ngx_int_t ngx_wgconn_engine_start(ngx_cycle_t *cycle,
    ngx_wgconn_conf_t *wcf);
void ngx_wgconn_engine_stop(void);
uint64_t ngx_wgconn_now(void);

/* ngx_wgconn_udp.c: the node's UDP socket, batched both ways */
ngx_wgconn_udp_t *ngx_wgconn_udp_open(ngx_cycle_t *cycle, in_port_t port,
    size_t max_msg, ngx_wgconn_udp_recv_pt recv, void *data);
void ngx_wgconn_udp_close(ngx_wgconn_udp_t *u);
void ngx_wgconn_udp_send(ngx_wgconn_udp_t *u, const wg_endpoint_t *ep,
    const u_char *msg, size_t len);
u_char *ngx_wgconn_udp_buffer(ngx_wgconn_udp_t *u, size_t len);
void ngx_wgconn_udp_unmap(wg_endpoint_t *ep);
ngx_uint_t ngx_wgconn_udp_train(void);

/* ngx_wgconn_netstack.c: lwIP on one netif */
void *ngx_wgconn_netstack_netif(void);
ngx_int_t ngx_wgconn_netstack_init(ngx_cycle_t *cycle,
    ngx_wgconn_conf_t *wcf, wg_device_t *dev);
void ngx_wgconn_netstack_input(u_char *pkt, size_t len);
void ngx_wgconn_netstack_input_done(void);
ngx_uint_t ngx_wgconn_netstack_batching(void);
void ngx_wgconn_netstack_tcp_counts(uint64_t *active, uint64_t *time_wait,
    uint64_t *resent);
void ngx_wgconn_netstack_done(void);

/* ngx_wgconn_flow.c: overlay connections bridged to local sockets */

/* the protocol's client speaks first (http): the ACK of the SYN-ACK waits
 * for the request */
#define NGX_WGCONN_CLIENT_FIRST  0x01

ngx_int_t ngx_wgconn_flow_open(int type, ngx_uint_t flags,
    struct sockaddr *dst, socklen_t socklen, ngx_socket_t fd,
    ngx_log_t *log, ngx_wgconn_open_done_pt done, void *data);
void ngx_wgconn_flow_close_all(void);
ngx_uint_t ngx_wgconn_flow_count(void);
ngx_int_t ngx_wgconn_flow_accept_tcp(void *pcb, ngx_socket_t fd);
ngx_wgconn_flow_t *ngx_wgconn_flow_accept_udp(void *lpcb,
    ngx_wgconn_accept_t *a, ngx_socket_t fd);
ngx_wgconn_flow_t *ngx_wgconn_flow_udp_find(void *lpcb, const void *rip,
    u_short rport, const void *lip);
void ngx_wgconn_flow_udp_input(ngx_wgconn_flow_t *flow, void *p);
void ngx_wgconn_flow_udp_detach(void *lpcb);
void ngx_wgconn_flow_close(ngx_wgconn_flow_t *flow);
void ngx_wgconn_flow_mem_wake(void);
void ngx_wgconn_flow_batch_done(void);

/* ngx_wgconn_bridge.c: workers reach the engine */
ngx_int_t ngx_wgconn_bridge_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_wgconn_bridge_init_process(ngx_cycle_t *cycle);
void ngx_wgconn_bridge_exit_process(void);
ngx_uint_t ngx_wgconn_bridge_engine_fds(int *fds, ngx_uint_t max);
void ngx_wgconn_bridge_close_engine_fds(void);
ngx_int_t ngx_wgconn_bridge_engine_generation(ngx_cycle_t *cycle,
    int *fds, ngx_uint_t n);
ngx_int_t ngx_wgconn_bridge_accept(ngx_wgconn_accept_t *a, ngx_socket_t fd);
ssize_t ngx_wgconn_send_fds(ngx_socket_t s, void *buf, size_t len,
    int *fds, ngx_uint_t nfds);
ssize_t ngx_wgconn_recv_fds(ngx_socket_t s, void *buf, size_t len,
    int *fds, ngx_uint_t *nfds);

/* ngx_wgconn_process.c: the engine process, outliving reloads */
ngx_int_t ngx_wgconn_process_init_module(ngx_cycle_t *cycle,
    ngx_wgconn_conf_t *wcf);
void ngx_wgconn_process_close_lifeline(void);
ngx_int_t ngx_wgconn_bridge_open(int type, ngx_uint_t flags,
    struct sockaddr *dst, socklen_t socklen, ngx_socket_t fd,
    ngx_log_t *log, ngx_wgconn_open_done_pt done, void *data);

/* ngx_wgconn_status.c: the engine's snapshot in shared memory */
ngx_int_t ngx_wgconn_status_add_zone(ngx_conf_t *cf, ngx_wgconn_conf_t *wcf);
void ngx_wgconn_status_publish(ngx_wgconn_conf_t *wcf, wg_device_t *dev,
    wg_peer_t **peers, ngx_uint_t npeers, uint64_t flows);
ngx_buf_t *ngx_wgconn_status_render(ngx_pool_t *pool,
    ngx_wgconn_conf_t *wcf);
u_char *ngx_wgconn_endpoint_text(u_char *p, u_char *last, wg_endpoint_t *ep);

/* ngx_wgconn_upstream.c: the peer-connection hook for http and stream */
void ngx_wgconn_upstream_opened(void *data, ngx_int_t rc, ngx_err_t err);
ngx_int_t ngx_wgconn_upstream_hook(ngx_conf_t *cf, void *uscf,
    ngx_wgconn_init_pt init);
ngx_wgconn_init_pt ngx_wgconn_upstream_original(void *uscf);
ngx_int_t ngx_wgconn_upstream_wrap(ngx_peer_connection_t *pc,
    ngx_pool_t *pool, ngx_uint_t flags);


#endif /* _NGX_WGCONN_H_INCLUDED_ */
