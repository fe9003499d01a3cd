/*
 * lwIP options for ngx_wgconn: one in-process stack driven by nginx's event
 * loop.  NO_SYS: no threads, no sys_arch; raw API only.  The stack sits
 * under WireGuard, whose Poly1305 tag already authenticates every inbound
 * packet, so inbound checksums are not verified; outbound ones are computed.
 */

#ifndef _WGC_LWIPOPTS_H_INCLUDED_
#define _WGC_LWIPOPTS_H_INCLUDED_


#define NO_SYS                          1
#define SYS_LIGHTWEIGHT_PROT            0
#define LWIP_SOCKET                     0
#define LWIP_NETCONN                    0
#define LWIP_NETIF_API                  0
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS  1

/* memory comes from libc: no fixed pools to exhaust at a few thousand
 * connections, and no second allocator to tune */
#define MEM_LIBC_MALLOC                 1
#define MEMP_MEM_MALLOC                 1
#define MEM_ALIGNMENT                   8
/* ... counted, with a limit (wgconn's memory_limit) */
#include "arch/mem.h"

#define LWIP_IPV4                       1
#define LWIP_IPV6                       1
#define LWIP_ARP                        0
#define LWIP_ETHERNET                   0
#define LWIP_SINGLE_NETIF               1
#define LWIP_IPV6_AUTOCONFIG            0
#define LWIP_IPV6_MLD                   0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS   0
#define LWIP_IPV6_SEND_ROUTER_SOLICIT   0
#define LWIP_IPV6_NUM_ADDRESSES         3
#define LWIP_ND6_QUEUEING               0
#define IP_FORWARD                      0
#define IP_REASSEMBLY                   1
#define IP_FRAG                         1
#define LWIP_IPV6_REASS                 1
#define LWIP_IPV6_FRAG                  1
/* 64-bit pointers do not fit in the fragment header lwIP reuses */
#define IPV6_FRAG_COPYHEADER            1
#define IP_DEFAULT_TTL                  64

#define LWIP_ICMP                       1
#define LWIP_ICMP6                      1
#define LWIP_RAW                        0
#define LWIP_UDP                        1
#define LWIP_TCP                        1
#define LWIP_DHCP                       0
#define LWIP_AUTOIP                     0
#define LWIP_IGMP                       0
#define LWIP_DNS                        0

/* WireGuard's MTU (Tailscale uses 1280); the effective MSS is derived
 * from the netif MTU per family (1240 over IPv4, 1220 over IPv6) */
#ifdef TCP_MSS
/* <netinet/tcp.h> names a socket option so; the glue never uses it */
#undef TCP_MSS
#endif
#define TCP_MSS                         1240
#define TCP_CALCULATE_EFF_SEND_MSS      1

/* windows large enough that the link, not lwIP, limits throughput */
#define LWIP_WND_SCALE                  1
#define TCP_RCV_SCALE                   6
#define TCP_WND                         (2 * 1024 * 1024)
/* patches/lwip-tcp-wnd-max.patch: a connection starts with this window
   and src/arch/rcvwnd.c grows it to what its path needs, up to TCP_WND */
#define TCP_WND_INIT                    (64 * 1024)
#define TCP_SND_BUF                     (2 * 1024 * 1024)
#define TCP_SND_QUEUELEN                (4 * (TCP_SND_BUF) / (TCP_MSS))
/* only the socket API reads it; its sanity check wants a u16 value */
#define TCP_SNDLOWAT                    32768
#define TCP_SNDQUEUELOWAT               (TCP_SND_QUEUELEN / 4)
#define TCP_QUEUE_OOSEQ                 1
#define TCP_OOSEQ_MAX_BYTES             (4 * 1024 * 1024)
#define TCP_OOSEQ_MAX_PBUFS             4096
#define LWIP_TCP_SACK_OUT               1
#define LWIP_TCP_MAX_SACK_NUM           4
/* CUBIC's multiplicative decrease (RFC 9438), with the additive increase
   that keeps it Reno-friendly (patches/lwip-tcp-beta.patch) */
#define TCP_CC_BETA_TENTHS              7
#define TCP_OVERSIZE                    TCP_MSS
/* patches/lwip-tcp-resent.patch: segments sent again, for wgconn_status */
#define TCP_COUNT_RESENT                1
#define LWIP_NETIF_TX_SINGLE_PBUF       1
#define LWIP_TCP_KEEPALIVE              1
#define TCP_LISTEN_BACKLOG              1

/*
 * patches/lwip-tcp-ackbatch.patch: while the engine inputs one batch of
 * received datagrams, pure ACKs wait for the end of the batch (one ACK per
 * flow per batch, as a GRO receiver sends one per aggregate)
 */
#define LWIP_TCP_ACK_BATCH              1
#define TCP_ACK_BATCH_MAX               64
#define TCP_DEFAULT_LISTEN_BACKLOG      255
#define TCP_MSL                         10000UL

/*
 * patches/lwip-tcp-tw-cap.patch: at most this many connections wait in
 * TIME-WAIT (2 * TCP_MSL), the oldest go first, as Linux's
 * tcp_max_tw_buckets; a node whose nginx closes upstream connections first
 * (keepalive cache full, stream clients leaving) at 5,000 a second would
 * otherwise hold 100,000 of them
 */
#define TCP_TW_MAX                      4096

/*
 * patches/lwip-tcp-demux.patch: segments find their connection in a hash
 * of 2^13 buckets instead of walking the lists of active and TIME-WAIT
 * connections
 */
#define TCP_DEMUX_BITS                  13

/*
 * local ports of the connections and UDP flows the node opens: lwIP gives
 * each pcb a port of its own (not one per destination), so the range
 * bounds the connections open and waiting, and the UDP flows, at once;
 * 32768-65535 (lwIP: 49152-)
 */
#define TCP_LOCAL_PORT_RANGE_START      0x8000
#define TCP_LOCAL_PORT_RANGE_END        0xffff
#define TCP_ENSURE_LOCAL_PORT_RANGE(port)                                     \
    ((u16_t) (((port) & (u16_t) ~TCP_LOCAL_PORT_RANGE_START)                  \
              + TCP_LOCAL_PORT_RANGE_START))
#define UDP_LOCAL_PORT_RANGE_START      0x8000
#define UDP_LOCAL_PORT_RANGE_END        0xffff
#define UDP_ENSURE_LOCAL_PORT_RANGE(port)                                     \
    ((u16_t) (((port) & (u16_t) ~UDP_LOCAL_PORT_RANGE_START)                  \
              + UDP_LOCAL_PORT_RANGE_START))
#define TCP_MAXRTX                      12
#define TCP_SYNMAXRTX                   6
#define LWIP_TCP_TIMESTAMPS             0

/*
 * Loss recovery: patches/lwip-newreno.patch (partial ACKs) and
 * patches/lwip-sack.patch (SACK scoreboard, holes resent per ACK, an ACK
 * that SACKs new data counts as a dupack even if the window moved, 1 s
 * initial RTO).  lwIP counts RTO in ticks of 2 * TCP_TMR_INTERVAL: 100 ms
 * ticks keep the timeout that remains near Linux's 200 ms minimum; the
 * delayed ACK timer follows at 50 ms
 */
#define TCP_TMR_INTERVAL                50

/* RFC 6928 initial window: 10 segments */
#define LWIP_TCP_CALC_INITIAL_CWND(mss) ((tcpwnd_size_t) (10U * (mss)))

#define LWIP_CHECKSUM_ON_COPY           1
#define LWIP_CHKSUM                     wgc_lwip_chksum
#define LWIP_CHKSUM_COPY(dst, src, len) wgc_lwip_chksum_copy(dst, src, len)
#include "arch/chksum.h"
#define CHECKSUM_CHECK_IP               0
#define CHECKSUM_CHECK_UDP              0
#define CHECKSUM_CHECK_TCP              0
#define CHECKSUM_CHECK_ICMP             0
#define CHECKSUM_CHECK_ICMP6            0

#define PBUF_POOL_BUFSIZE               1536
#define MEMP_NUM_SYS_TIMEOUT            16

#define LWIP_STATS                      0
#define LWIP_NETIF_STATUS_CALLBACK      0
#define LWIP_NETIF_LINK_CALLBACK        0

#ifdef WGC_LWIP_TRACE
#define LWIP_DEBUG                      1
#define LWIP_DBG_TYPES_ON               LWIP_DBG_ON
#define TCP_FR_DEBUG                    LWIP_DBG_ON
#define TCP_RTO_DEBUG                   LWIP_DBG_ON
#endif

#define LWIP_RAND()                     ((u32_t) wgc_lwip_rand())

#ifndef __ASSEMBLER__
unsigned int wgc_lwip_rand(void);
#endif


#endif /* _WGC_LWIPOPTS_H_INCLUDED_ */
