
/*
 * Unit tests of lwIP as the engine builds it (src/lwipopts.h, our patches):
 * what our patches change, driven packet by packet without nginx.
 *
 *   IP reassembly: a datagram is delivered only when every fragment is
 *   there, whatever order they arrive in (patches/lwip-ip6-reass-gap.patch:
 *   lwIP 2.1.3 delivered an IPv6 datagram with a hole when the fragment
 *   before the hole arrived last), also with a Hop-by-Hop header before
 *   the fragment header (lwip-ip6-reass-hbh.patch).
 *
 *   TCP loss recovery as a sender (patches/lwip-sack.patch,
 *   lwip-tcp-beta.patch): a peer that reports losses with SACK gets the
 *   lost segments again at once, new data keeps flowing while they are
 *   repaired, and the window ends at 0.7 of what it was.
 *
 *   TIME-WAIT and local ports (lwip-tcp-tw-cap.patch,
 *   lwip-tcp-new-port.patch): connections lwIP closes first wait in
 *   TIME-WAIT up to a limit, and ports are not shared or run out.
 *
 *   Demultiplexing (lwip-tcp-demux.patch): with thousands of connections
 *   each segment reaches its own.
 *
 *   The ACK of a SYN-ACK held for the request when the connected callback
 *   asks (lwip-tcp-connected-ack.patch).
 */

#include <stdlib.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/udp.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/inet_chksum.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/mem.h"

#include "wgtest.h"
#include "lwip_node.h"
#include "arch/rcvwnd.h"


#define LU_PORT  53


unsigned  wgt_passed;
unsigned  wgt_failed;

static struct netif  lu_netif;
static u32_t         lu_now;
static unsigned      lu_delivered;
static unsigned      lu_delivered_len;
static u8_t          lu_payload[64];


u32_t
sys_now(void)
{
    return lu_now;
}


unsigned int
wgc_lwip_rand(void)
{
    return 4;
}


void
wgc_lwip_assert(const char *msg, const char *file, int line)
{
    printf("lwIP assertion \"%s\" at %s:%d\n", msg, file, line);
    fflush(stdout);
    abort();
}


void
wgt_section(const char *name)
{
    printf("# %s\n", name);
}


/* what lwIP sent over TCP: sequence number, length, flags */

typedef struct {
    u32_t  seq;
    u16_t  len;
    u8_t   flags;
} lu_seg_t;

static lu_seg_t      lu_sent[4096];
static size_t        lu_nsent;


static err_t
lu_output4(struct netif *netif, struct pbuf *p, const ip4_addr_t *addr)
{
    u8_t   h[60];
    u16_t  ihl, doff, tot;

    if (pbuf_copy_partial(p, h, sizeof(h), 0) < 40 || h[9] != 6
        || lu_nsent == sizeof(lu_sent) / sizeof(lu_sent[0]))
    {
        return ERR_OK;
    }

    ihl = (u16_t) ((h[0] & 0x0f) * 4);
    tot = (u16_t) (h[2] << 8 | h[3]);
    doff = (u16_t) ((h[ihl + 12] >> 4) * 4);

    lu_sent[lu_nsent].seq = (u32_t) h[ihl + 4] << 24 | (u32_t) h[ihl + 5] << 16
                            | (u32_t) h[ihl + 6] << 8 | h[ihl + 7];
    lu_sent[lu_nsent].len = (u16_t) (tot - ihl - doff);
    lu_sent[lu_nsent].flags = h[ihl + 13];
    lu_nsent++;

    return ERR_OK;
}


static err_t
lu_output6(struct netif *netif, struct pbuf *p, const ip6_addr_t *addr)
{
    return ERR_OK;
}


static void
lu_udp_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p,
    const ip_addr_t *addr, u16_t port)
{
    lu_delivered++;
    lu_delivered_len = p->tot_len;
    pbuf_copy_partial(p, lu_payload, sizeof(lu_payload), 0);
    pbuf_free(p);
}


static void
lu_setup(void)
{
    struct udp_pcb  *u;

    lwip_node_up(&lu_netif, lu_output4, lu_output6);

    u = udp_new_ip_type(IPADDR_TYPE_ANY);
    udp_bind(u, IP_ANY_TYPE, LU_PORT);
    udp_recv(u, lu_udp_recv, NULL);
}


static void
lu_input(const u8_t *data, size_t len)
{
    struct pbuf  *p;

    p = pbuf_alloc(PBUF_RAW, (u16_t) len, PBUF_RAM);
    if (p == NULL) {
        /* at the heap's limit: dropped, as the engine drops it */
        return;
    }

    memcpy(p->payload, data, len);

    if (lu_netif.input(p, &lu_netif) != ERR_OK) {
        pbuf_free(p);
    }
}


/*
 * One fragment of a UDP datagram of 32 bytes (8 header + 24 payload) to
 * port 53: bytes [off, off + 8), the last when off is 24.  Byte i of the
 * datagram past the header is 'a' + i, so a hole shows in the payload.
 */

static size_t
lu_slice(u8_t *p, u16_t off)
{
    u16_t  i;

    for (i = 0; i < 8; i++) {
        p[i] = (u8_t) ('a' + off + i - 8);
    }

    if (off == 0) {
        memset(p, 0, 8);
        p[1] = 99;               /* source port 99 */
        p[3] = LU_PORT;
        p[5] = 32;               /* length; checksums are not checked */
    }

    return 8;
}


static void
lu_frag4(u16_t id, u16_t off)
{
    u8_t    b[28];
    u16_t   fo;

    memset(b, 0, 20);
    b[0] = 0x45;
    b[3] = 28;
    b[4] = (u8_t) (id >> 8);
    b[5] = (u8_t) id;
    fo = (u16_t) ((off / 8) | (off < 24 ? 0x2000 : 0));
    b[6] = (u8_t) (fo >> 8);
    b[7] = (u8_t) fo;
    b[8] = 64;
    b[9] = 17;
    b[12] = 100; b[13] = 64; b[14] = 0; b[15] = 2;
    b[16] = 100; b[17] = 64; b[18] = 0; b[19] = 1;

    lu_input(b, 20 + lu_slice(b + 20, off));
}


/* hbh: an 8-byte Hop-by-Hop header before the fragment header */

static void
lu_frag6_ext(u32_t id, u16_t off, int hbh)
{
    u8_t    b[64], *f;
    u16_t   fo;

    memset(b, 0, 56);
    b[0] = 0x60;
    b[5] = (u8_t) (16 + (hbh ? 8 : 0));   /* (hop-by-hop,) fragment, 8 */
    b[6] = hbh ? 0 : 44;
    b[7] = 64;
    b[8] = 0xfd; b[9] = 0x7a; b[10] = 0x11; b[11] = 0x5c;
    b[12] = 0xa1; b[13] = 0xe0; b[23] = 2;
    b[24] = 0xfd; b[25] = 0x7a; b[26] = 0x11; b[27] = 0x5c;
    b[28] = 0xa1; b[29] = 0xe0; b[39] = 1;

    f = b + 40;

    if (hbh) {
        f[0] = 44;               /* next: fragment; length 0: 8 bytes */
        f[2] = 1;                /* PadN of 4 */
        f[3] = 4;
        f += 8;
    }

    f[0] = 17;
    fo = (u16_t) (off | (off < 24 ? 1 : 0));
    f[2] = (u8_t) (fo >> 8);
    f[3] = (u8_t) fo;
    f[4] = (u8_t) (id >> 24);
    f[5] = (u8_t) (id >> 16);
    f[6] = (u8_t) (id >> 8);
    f[7] = (u8_t) id;

    lu_input(b, (size_t) (f + 8 - b) + lu_slice(f + 8, off));
}


static void
lu_frag6(u32_t id, u16_t off)
{
    lu_frag6_ext(id, off, 0);
}


/* patches/lwip-ip6-reass-hbh.patch: lwIP 2.1.3 reassembled these, then
   dropped them for a Hop-by-Hop header "not first" */

static void
lu_frag6_hbh(u32_t id, u16_t off)
{
    lu_frag6_ext(id, off, 1);
}


static void
lu_timers_run_out(void)
{
    int  i;

    for (i = 0; i < 70; i++) {
        lu_now += 1000;
        sys_check_timeouts();
    }
}


static int
lu_payload_whole(void)
{
    int  i;

    if (lu_delivered_len != 24) {
        return 0;
    }

    for (i = 0; i < 24; i++) {
        if (lu_payload[i] != 'a' + i) {
            return 0;
        }
    }

    return 1;
}


static void
lu_reass(const char *family, void (*frag)(u32_t id, u16_t off))
{
    static const u16_t  orders[][4] = {
        { 0, 8, 16, 24 },
        { 24, 16, 8, 0 },
        { 0, 24, 16, 8 },        /* the hole between 0 and 16 filled last */
        { 16, 0, 24, 8 },
        { 8, 24, 0, 16 },
    };

    char        name[96];
    u32_t       id;
    size_t      i, k;

    wgt_section(family);

    for (i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
        id = (u32_t) (100 + i);
        lu_delivered = 0;

        for (k = 0; k < 3; k++) {
            frag(id, orders[i][k]);
        }

        snprintf(name, sizeof(name), "%s order %u %u %u: not delivered "
                 "with a fragment missing", family, orders[i][0],
                 orders[i][1], orders[i][2]);
        CHECK(lu_delivered == 0, name);

        frag(id, orders[i][3]);

        snprintf(name, sizeof(name), "%s order %u %u %u %u: delivered "
                 "once, whole", family, orders[i][0], orders[i][1],
                 orders[i][2], orders[i][3]);
        CHECK(lu_delivered == 1 && lu_payload_whole(), name);
    }

    /* a lone fragment of a datagram that never completes is let go */
    frag(999, 8);
    lu_timers_run_out();
    lu_delivered = 0;
    frag(999, 0);
    frag(999, 16);
    frag(999, 24);
    CHECK(lu_delivered == 0, "fragments of an expired reassembly forgotten");
    lu_timers_run_out();
}


/*
 * lwIP connects to 100.64.0.2:80 and sends; the test plays the peer,
 * whose sequence numbers are relative to lwIP's ISN + 1 ("una").
 */

#define LU_MSS   1240
#define LU_PEER  0x64400002      /* 100.64.0.2 */

static u32_t   lu_iss;
static u16_t   lu_lport;
static u16_t   lu_opt_mss = LU_MSS;     /* in the options of a SYN */
static u16_t   lu_wnd = 0xffff;         /* << 7 after the SYN */


static void
lu_peer_segment(u8_t flags, u32_t seq, u32_t ack, const u32_t *sack,
    size_t nsack, int syn_opts, size_t dlen)
{
    u8_t    b[120 + LU_MSS], *t;
    size_t  olen, i;

    memset(b, 0, sizeof(b));
    t = b + 20;
    olen = 0;

    if (syn_opts) {
        /* MSS, SACK permitted, window scale 7 */
        u8_t  o[] = { 2, 4, 0, 0, 4, 2, 1, 1, 1, 3, 3, 7 };

        o[2] = (u8_t) (lu_opt_mss >> 8);
        o[3] = (u8_t) lu_opt_mss;
        memcpy(t + 20, o, sizeof(o));
        olen = sizeof(o);

    } else if (nsack) {
        t[20] = 1;
        t[21] = 1;
        t[22] = 5;
        t[23] = (u8_t) (2 + 8 * nsack);
        for (i = 0; i < 2 * nsack; i++) {
            u32_t  v = lu_iss + 1 + sack[i];
            t[24 + 4 * i] = (u8_t) (v >> 24);
            t[25 + 4 * i] = (u8_t) (v >> 16);
            t[26 + 4 * i] = (u8_t) (v >> 8);
            t[27 + 4 * i] = (u8_t) v;
        }
        olen = 4 + 8 * nsack;
    }

    memset(t + 20 + olen, 'p', dlen);

    b[0] = 0x45;
    b[2] = (u8_t) ((40 + olen + dlen) >> 8);
    b[3] = (u8_t) (40 + olen + dlen);
    b[8] = 64;
    b[9] = 6;
    b[12] = 100; b[13] = 64; b[14] = 0; b[15] = 2;
    b[16] = 100; b[17] = 64; b[18] = 0; b[19] = 1;

    t[0] = 0;
    t[1] = 80;
    t[2] = (u8_t) (lu_lport >> 8);
    t[3] = (u8_t) lu_lport;
    t[4] = (u8_t) (seq >> 24); t[5] = (u8_t) (seq >> 16);
    t[6] = (u8_t) (seq >> 8); t[7] = (u8_t) seq;
    ack += lu_iss + 1;
    t[8] = (u8_t) (ack >> 24); t[9] = (u8_t) (ack >> 16);
    t[10] = (u8_t) (ack >> 8); t[11] = (u8_t) ack;
    t[12] = (u8_t) ((5 + olen / 4) << 4);
    t[13] = flags;
    t[14] = (u8_t) (lu_wnd >> 8);   /* by default never the limit */
    t[15] = (u8_t) lu_wnd;

    lu_input(b, 40 + olen + dlen);
}


/* the peer acknowledges up to segment n (of LU_MSS each), SACKing blocks */

static void
lu_ack(u32_t n, const u32_t *blocks, size_t nblocks)
{
    u32_t   sack[8] = { 0 };
    size_t  i;

    for (i = 0; i < 2 * nblocks; i++) {
        sack[i] = blocks[i] * LU_MSS;
    }

    lu_peer_segment(0x10, 1001, n * LU_MSS, sack, nblocks, 0, 0);
}


static size_t
lu_sent_seg(size_t from, u32_t n)
{
    size_t  i;

    for (i = from; i < lu_nsent; i++) {
        if (lu_sent[i].len > 0 && lu_sent[i].seq == lu_iss + 1 + n * LU_MSS) {
            return i;
        }
    }

    return (size_t) -1;
}


static u32_t
lu_highest_sent(void)
{
    size_t  i;
    u32_t   hi;

    hi = 0;

    for (i = 0; i < lu_nsent; i++) {
        if (lu_sent[i].len > 0
            && (lu_sent[i].seq - lu_iss - 1) / LU_MSS + 1 > hi)
        {
            hi = (lu_sent[i].seq - lu_iss - 1) / LU_MSS + 1;
        }
    }

    return hi;
}


/*
 * A connection to the peer, its SYN answered with MSS, SACK, scale 7:
 * NULL if lwIP sent no SYN (it had no local port to give).  lu_sent[] then
 * holds what lwIP sent after the SYN-ACK.
 */

static struct tcp_pcb *
lu_open(tcp_connected_fn connected)
{
    ip_addr_t        peer;
    struct tcp_pcb  *pcb;

    IP_ADDR4(&peer, 100, 64, 0, 2);
    pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    tcp_nagle_disable(pcb);
    lu_nsent = 0;

    if (tcp_connect(pcb, &peer, 80, connected) != ERR_OK) {
        tcp_close(pcb);
        return NULL;
    }

    if (lu_nsent != 1 || !(lu_sent[0].flags & 0x02)) {
        tcp_abort(pcb);
        return NULL;
    }

    lu_iss = lu_sent[0].seq;
    lu_lport = pcb->local_port;
    lu_nsent = 0;

    lu_peer_segment(0x12, 1000, 0, NULL, 0, 1, 0);

    return pcb;
}


static struct tcp_pcb *
lu_connect(void)
{
    struct tcp_pcb  *pcb;

    pcb = lu_open(NULL);
    CHECK(pcb != NULL, "SYN sent");

    return pcb;
}


static void
lu_tcp_recovery(void)
{
    u32_t            hi, n, una;
    size_t           mark, i;
    tcpwnd_size_t    cwnd;
    struct tcp_pcb  *pcb;
    static u8_t      data[0xffff];

    wgt_section("TCP loss recovery with SACK (lwIP as the sender)");

    pcb = lu_connect();
    CHECK(pcb->state == ESTABLISHED && (pcb->flags & TF_SACK),
          "established, SACK permitted");

    /* slow start up to 60 segments in flight */
    for (i = 0; i < 16; i++) {
        (void) tcp_write(pcb, data, 0xffff, TCP_WRITE_FLAG_COPY);
    }
    tcp_output(pcb);

    for (n = 1; n <= 40; n++) {
        lu_ack(n, NULL, 0);
    }

    hi = lu_highest_sent();
    CHECK(hi >= 60, "slow start: the window grew past 60 segments");

    /* segments 41-45 are lost; the peer reports 46-50 by SACK in one ACK */
    cwnd = pcb->cwnd;
    mark = lu_nsent;
    {
        u32_t  b[] = { 46, 51 };
        lu_ack(41, b, 1);
    }

    CHECK(pcb->flags & TF_INFR,
          "one ACK SACKing 5 segments above a hole starts recovery");
    CHECK(pcb->ssthresh >= cwnd / 10 * 7 - LU_MSS
          && pcb->ssthresh <= cwnd / 10 * 7 + LU_MSS,
          "ssthresh is 0.7 of the window");

    /* the rest of the window arrives and is SACKed, one ACK per segment,
       before any resent segment could have arrived */
    for (n = 51; n < hi; n++) {
        u32_t  b[] = { 46, 0 };

        b[1] = n + 1;
        lu_ack(41, b, 1);
    }

    for (n = 41; n <= 45; n++) {
        size_t  first = lu_sent_seg(mark, n);

        CHECK(first != (size_t) -1,
              "every lost segment resent within one round trip");
        CHECK(first == (size_t) -1
              || lu_sent_seg(first + 1, n) == (size_t) -1,
              "no segment resent twice");
    }

    for (n = 46; n < hi; n++) {
        CHECK(lu_sent_seg(mark, n) == (size_t) -1,
              "SACKed segments not resent");
    }

    CHECK(lu_highest_sent() > hi,
          "new data sent during recovery (the window did not collapse)");

    /* the resent segments arrive: a full ACK ends recovery */
    hi = lu_highest_sent();
    lu_ack(hi, NULL, 0);

    CHECK(!(pcb->flags & TF_INFR), "a full ACK ends recovery");
    CHECK(pcb->cwnd >= pcb->ssthresh && pcb->cwnd <= pcb->ssthresh + LU_MSS,
          "the window is ssthresh after it");
    CHECK(pcb->cwnd > 10 * LU_MSS, "and not a few segments");

    for (i = 0; i < 8; i++) {
        una = lu_highest_sent();
        lu_ack(una, NULL, 0);
    }
    CHECK(lu_highest_sent() > hi, "sending goes on after recovery");

    /*
     * Two holes, [una, una + 3) and [una + 20, una + 22), reported by ACKs
     * that each cover 8 segments (Linux coalesces its ACKs under loss), then
     * a partial ACK up to the second hole.  lwIP's old recovery inflated the
     * window by one segment per duplicate ACK and deflated it by all that a
     * partial ACK acknowledged: it fell to one segment here and the
     * connection waited for the peer's delayed ACK.
     */

    hi = lu_highest_sent();
    mark = lu_nsent;

    for (n = una + 3 + 8; n < hi + 8; n += 8) {
        u32_t  b[] = { una + 3, 0, una + 22, 0 };

        b[1] = LWIP_MIN(n, una + 20);
        b[3] = LWIP_MIN(n, hi);
        lu_ack(una, b, n > una + 22 ? 2 : 1);
    }

    CHECK(pcb->flags & TF_INFR, "coalesced SACKs start recovery");

    {
        u32_t  b[] = { una + 22, 0 };

        b[1] = hi;
        i = lu_nsent;
        lu_ack(una + 20, b, 1);
        i = lu_nsent - i;
    }

    CHECK(i >= 1 && pcb->cwnd >= pcb->ssthresh,
          "a partial ACK of many segments leaves the window open");

    for (n = una; n < una + 22; n++) {
        CHECK(n >= una + 3 && n < una + 20
              ? lu_sent_seg(mark, n) == (size_t) -1
              : lu_sent_seg(mark, n) != (size_t) -1,
              "both holes resent, nothing SACKed");
    }

    CHECK(lu_highest_sent() > hi + 8,
          "new data flows through the recovery of two holes");

    tcp_abort(pcb);
}


/*
 * patches/lwip-tcp-ooseq-walk.patch walks the out-of-order queue for its
 * limits less often; tiny segments, the only ones that could exceed them,
 * are still held to TCP_OOSEQ_MAX_PBUFS.
 */

static void
lu_tcp_ooseq_limit(void)
{
    u32_t            i, n;
    struct tcp_seg  *seg;
    struct tcp_pcb  *pcb;

    wgt_section("TCP out-of-order queue limits (lwIP as the receiver)");

    pcb = lu_connect();

    /* byte 1001 never arrives; 1-byte segments every other byte after it */
    for (i = 0; i < TCP_OOSEQ_MAX_PBUFS + 1000; i++) {
        lu_peer_segment(0x10, 1001 + 1 + 2 * i, 0, NULL, 0, 0, 1);
    }

    n = 0;
    for (seg = pcb->ooseq; seg != NULL; seg = seg->next) {
        n++;
    }

    CHECK(n >= TCP_OOSEQ_MAX_PBUFS - 16 && n <= TCP_OOSEQ_MAX_PBUFS,
          "1-byte out-of-order segments held to TCP_OOSEQ_MAX_PBUFS");

    tcp_abort(pcb);
}


/*
 * An MSS option counts in a SYN only (RFC 9293 3.7.1).  lwIP took one from
 * any segment: an established connection's MSS then fell below its queued
 * segments and the next tcp_write() tripped "mss_local is too small",
 * which aborts the engine (patches/lwip-tcp-mss-syn.patch; the fuzzer
 * found it).
 */

static void
lu_tcp_mss_syn_only(void)
{
    u16_t            mss;
    struct tcp_pcb  *pcb;
    static u8_t      data[0xffff];

    wgt_section("TCP MSS option outside a SYN (ignored)");

    pcb = lu_connect();
    mss = pcb->mss;

    /* more than the initial window: full-size segments wait unsent */
    (void) tcp_write(pcb, data, 0xffff, TCP_WRITE_FLAG_COPY);
    tcp_output(pcb);

    lu_opt_mss = 536;
    lu_peer_segment(0x10, 1001, 0, NULL, 0, 1, 0);
    lu_opt_mss = LU_MSS;

    CHECK(mss == LU_MSS && pcb->mss == mss,
          "an MSS option in an ACK leaves the MSS as the SYN set it");

    /* aborted here before */
    (void) tcp_write(pcb, data, 100, TCP_WRITE_FLAG_COPY);
    CHECK(pcb->unsent != NULL, "data queued after it");

    tcp_abort(pcb);
}


/*
 * tcp_write() sizes segments by half the largest window the peer offered,
 * or by the MSS while that half is 0.  A segment queued under a SYN-ACK's
 * window of 1 was then longer than what a later window of 1280 allows, and
 * the next tcp_write() tripped "mss_local is too small", which aborts the
 * engine (patches/lwip-tcp-write-mss.patch; the fuzzer found it).
 */

static void
lu_tcp_write_wnd_grows(void)
{
    struct tcp_pcb  *pcb;
    struct tcp_seg  *seg;
    static u8_t      data[4000];
    int              longest;

    wgt_section("TCP window grows past two segments after data was queued");

    lu_wnd = 1;
    pcb = lu_connect();

    /* 1240 + 1240 + 700, all unsent behind a window of 1 */
    (void) tcp_write(pcb, data, 2 * LU_MSS + 700, TCP_WRITE_FLAG_COPY);

    lu_wnd = 10;                 /* 1280 */
    lu_peer_segment(0x10, 1001, 0, NULL, 0, 0, 0);
    lu_wnd = 0xffff;

    /* aborted here before */
    CHECK(tcp_write(pcb, data, 100, TCP_WRITE_FLAG_COPY) == ERR_OK,
          "data queued after a segment longer than the new window allows");

    longest = 0;
    for (seg = pcb->unsent; seg != NULL; seg = seg->next) {
        longest = LWIP_MAX(longest, seg->len);
    }

    CHECK(pcb->unsent != NULL && longest <= pcb->mss,
          "no queued segment is longer than the MSS");

    tcp_abort(pcb);
}


static void
lu_frag4_id(u32_t id, u16_t off)
{
    lu_frag4((u16_t) id, off);
}


/* RFC 1071, 16 bits at a time in network order: the reference */

static uint16_t
lu_rfc1071(const uint8_t *p, size_t len)
{
    uint32_t  sum;

    for (sum = 0; len > 1; len -= 2, p += 2) {
        sum += (uint32_t) (p[0] << 8 | p[1]);
    }

    if (len) {
        sum += (uint32_t) (p[0] << 8);
    }

    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }

    return (uint16_t) ~sum;
}


/*
 * The port's checksum (src/arch/chksum.h) against RFC 1071 for every
 * length to 1600 at every start offset modulo 8, plain and while copying,
 * on random bytes and on all-0xff bytes (the sum's largest carries).
 */

static void
lu_chksum(void)
{
    int             fill;
    size_t          len, off, i;
    uint16_t        want, got, copied;
    unsigned        bad, bad_copy, n;
    static uint8_t  buf[1616], dst[1616];

    wgt_section("Internet checksum (LWIP_CHKSUM, LWIP_CHKSUM_COPY)");

    bad = 0;
    bad_copy = 0;
    n = 0;

    for (fill = 0; fill < 2; fill++) {
        srandom(7);

        for (i = 0; i < sizeof(buf); i++) {
            buf[i] = fill ? 0xff : (uint8_t) random();
        }

        for (len = 0; len <= 1600; len++) {
            for (off = 0; off < 8; off++) {
                want = lu_rfc1071(buf + off, len);
                got = lwip_htons(inet_chksum(buf + off, (u16_t) len));

                memset(dst, 0, sizeof(dst));
                copied = (uint16_t) ~LWIP_CHKSUM_COPY(dst + 7 - off,
                                                      buf + off, (u16_t) len);

                if (got != want) {
                    bad++;
                }

                if (lwip_htons(copied) != want
                    || memcmp(dst + 7 - off, buf + off, len) != 0
                    || dst[7 - off + len] != 0)
                {
                    bad_copy++;
                }

                n++;
            }
        }
    }

    CHECK(n == 2 * 1601 * 8 && bad == 0, "inet_chksum() equals RFC 1071");
    CHECK(bad_copy == 0, "copy and sum: same sum, same bytes, no overrun");
}


/*
 * A connected callback that sets TF_ACK_DELAY (the engine's, for http
 * upstreams) holds the ACK of the SYN-ACK for the request: no pure ACK,
 * the first data segment acknowledges; with no data, the delayed-ACK timer
 * sends it (patches/lwip-tcp-connected-ack.patch).  Without the flag the
 * ACK leaves at once, as before.
 */

static err_t
lu_connected_hold(void *arg, struct tcp_pcb *pcb, err_t err)
{
    tcp_set_flags(pcb, TF_ACK_DELAY);
    return ERR_OK;
}


static void
lu_tcp_connected_ack(void)
{
    int              i;
    size_t           n;
    struct tcp_pcb  *pcb;

    wgt_section("ACK of the SYN-ACK held for the request");

    pcb = lu_open(NULL);
    CHECK(pcb->state == ESTABLISHED && lu_nsent == 1 && lu_sent[0].len == 0
          && lu_sent[0].flags == 0x10, "without the flag: a pure ACK at once");
    tcp_abort(pcb);

    pcb = lu_open(lu_connected_hold);
    CHECK(pcb->state == ESTABLISHED && lu_nsent == 0,
          "with TF_ACK_DELAY: no pure ACK");
    (void) tcp_write(pcb, "GET / HTTP/1.0\r\n\r\n", 18, TCP_WRITE_FLAG_COPY);
    tcp_output(pcb);
    CHECK(lu_nsent == 1 && lu_sent[0].len == 18 && (lu_sent[0].flags & 0x10),
          "the request carries the ACK");
    tcp_abort(pcb);

    pcb = lu_open(lu_connected_hold);
    n = lu_nsent;

    for (i = 0; i < 2; i++) {
        lu_now += TCP_TMR_INTERVAL;
        sys_check_timeouts();
    }

    CHECK(n == 0 && lu_nsent == 1 && lu_sent[0].len == 0
          && lu_sent[0].flags == 0x10, "no data: the timer sends the ACK");
    tcp_abort(pcb);
}


/*
 * Many connections at once (patches/lwip-tcp-demux.patch): a segment
 * reaches its own connection, in whatever order they come, and no other
 */

#define LU_DEMUX_N  3000

static void
lu_tcp_demux(void)
{
    u32_t            i, k, wrong;
    struct tcp_pcb  *pcb;
    static struct {
        struct tcp_pcb  *pcb;
        u32_t            iss;
        u32_t            rcv_nxt;
    } c[LU_DEMUX_N];

    wgt_section("TCP demultiplexing, 3000 connections");

    for (i = 0; i < LU_DEMUX_N; i++) {
        c[i].pcb = lu_open(NULL);
        c[i].iss = lu_iss;
        c[i].rcv_nxt = c[i].pcb ? c[i].pcb->rcv_nxt : 0;
    }

    CHECK(lwip_node_demux_consistent(), "every connection found by four-tuple");

    /* one byte from the peer on each, in a scattered order */
    wrong = 0;

    for (k = 0; k < LU_DEMUX_N; k++) {
        i = (k * 1543) % LU_DEMUX_N;

        if (c[i].pcb == NULL || c[i].pcb->state != ESTABLISHED) {
            wrong++;
            continue;
        }

        lu_lport = c[i].pcb->local_port;
        lu_iss = c[i].iss;
        lu_peer_segment(0x18, 1001, 0, NULL, 0, 0, 1);

        if (c[i].pcb->rcv_nxt != c[i].rcv_nxt + 1) {
            wrong++;
        }

        c[i].rcv_nxt = c[i].pcb->rcv_nxt;
    }

    for (i = 0; i < LU_DEMUX_N; i++) {
        if (c[i].pcb && c[i].pcb->rcv_nxt != c[i].rcv_nxt) {
            wrong++;
        }
    }

    CHECK(wrong == 0, "each segment reached its connection, only it");

    for (i = 0; i < LU_DEMUX_N; i++) {
        if (c[i].pcb) {
            tcp_abort(c[i].pcb);
        }
    }

    pcb = tcp_active_pcbs;
    CHECK(pcb == NULL && lwip_node_demux_consistent(), "all gone");
}


static u32_t
lu_tw_count(u16_t port, int *found)
{
    u32_t            n;
    struct tcp_pcb  *pcb;

    n = 0;
    *found = 0;

    for (pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next) {
        n++;
        if (pcb->local_port == port) {
            *found = 1;
        }
    }

    return n;
}


/*
 * lwIP closes first, connection after connection (nginx does when its
 * keepalive cache is full, or a stream client has left): at most
 * TCP_TW_MAX of them wait in TIME-WAIT, the oldest going first
 * (patches/lwip-tcp-tw-cap.patch), and each new connection gets a local
 * port that no other pcb holds, also after more connections than the range
 * has ports (lwip-tcp-new-port.patch).  Without the cap the range runs out
 * after 32768 connections within 2 MSL.
 */

static void
lu_tcp_time_wait(void)
{
    int              found, first_gone, last_kept;
    u8_t             l;
    u16_t            first_port, last_port;
    u32_t            i, n, tw, tw_max, refused, shared;
    struct tcp_pcb  *pcb, *q;

    wgt_section("TIME-WAIT: at most TCP_TW_MAX, local ports never shared");

    n = 40000;
    tw_max = 0;
    refused = 0;
    shared = 0;
    first_port = 0;
    last_port = 0;
    first_gone = 0;
    last_kept = 0;

    for (i = 0; i < n; i++) {
        pcb = lu_open(NULL);

        if (pcb == NULL || pcb->state != ESTABLISHED) {
            refused++;
            continue;
        }

        for (l = 0; l < NUM_TCP_PCB_LISTS; l++) {
            for (q = *tcp_pcb_lists[l]; q != NULL; q = q->next) {
                if (q != pcb && q->local_port == pcb->local_port) {
                    shared++;
                }
            }
        }

        if (i == 0) {
            first_port = pcb->local_port;
        }

        /* our FIN, then the peer's FIN with the ACK of ours */
        last_port = pcb->local_port;
        tcp_close(pcb);
        lu_peer_segment(0x11, 1001, 1, NULL, 0, 0, 0);

        tw = lu_tw_count(last_port, &found);
        tw_max = LWIP_MAX(tw, tw_max);

        if (i == TCP_TW_MAX + 100) {
            last_kept = found;
            (void) lu_tw_count(first_port, &found);
            first_gone = !found;
        }
    }

    CHECK(refused == 0, "40000 connections in a row, each with a port");
    CHECK(shared == 0, "no port given out while another pcb held it");
    CHECK(tw_max <= TCP_TW_MAX && tw_max >= TCP_TW_MAX * 3 / 4,
          "TIME-WAIT held at TCP_TW_MAX");
    CHECK(first_gone && last_kept, "the oldest leaves TIME-WAIT first");
    CHECK(lwip_node_demux_consistent(), "TIME-WAIT connections found by four-tuple");

    while (tcp_tw_pcbs != NULL) {
        tcp_abort(tcp_tw_pcbs);
    }
}


/*
 * lwIP's heap, counted and limited (src/arch/mem.h).  The application here
 * holds what it receives, as the engine does while nginx reads nothing:
 * once under pressure the connection gets no more than it holds, nothing
 * is queued out of order, the heap stays below the limit, and what was
 * dropped arrives when sent again after the application took its data.
 */

static struct pbuf  *lu_held;
static u32_t         lu_held_len;


static err_t
lu_recv_hold(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    if (p != NULL) {
        lu_held_len += p->tot_len;

        if (lu_held == NULL) {
            lu_held = p;

        } else {
            pbuf_cat(lu_held, p);
        }
    }

    return ERR_OK;
}


/* the application takes all it holds: the window opens again */

static void
lu_take(struct tcp_pcb *pcb)
{
    u16_t  n;

    if (lu_held) {
        pbuf_free(lu_held);
        lu_held = NULL;
    }

    while (lu_held_len > 0) {
        n = (u16_t) (lu_held_len > 0xffff ? 0xffff : lu_held_len);
        tcp_recved(pcb, n);
        lu_held_len -= n;
    }
}


/* the window at TCP_WND at once, as a connection that sent a lot has */

static void
lu_wnd_full(struct tcp_pcb *pcb)
{
    pcb->rcv_wnd += TCP_WND - pcb->rcv_wnd_max;
    pcb->rcv_wnd_max = TCP_WND;
    tcp_recved(pcb, 0);
}


static void
lu_tcp_memory(void)
{
    u32_t            i, seq, nxt;
    size_t           base, held;
    void            *m;
    struct tcp_pcb  *pcb;

    wgt_section("lwIP's heap: counted, limited, pressure");

    base = wgc_mem.used;

    pcb = lu_connect();
    tcp_recv(pcb, lu_recv_hold);
    lu_wnd_full(pcb);

    CHECK(wgc_mem.used > base, "a connection counts in the heap");

    wgc_mem.limit = wgc_mem.used + 1024 * 1024;
    wgc_mem.dropped = 0;
    wgc_mem.refused = 0;

    /* 1.25 MiB in 64-byte segments: about 4 MiB of heap if all were kept */
    seq = 1001;

    for (i = 0; i < 20000; i++) {
        lu_peer_segment(0x18, seq, 0, NULL, 0, 0, 64);
        seq += 64;
    }

    nxt = pcb->rcv_nxt;
    held = lu_held_len;

    /* it hovers at the pressure mark: what is dropped is freed again */
    CHECK(wgc_mem.used <= wgc_mem.limit && wgc_mem.used > wgc_mem.limit / 2,
          "the heap stays below the limit");
    CHECK(held >= WGC_MEM_FLOOR && held < 1024 * 1024,
          "the connection received past the floor, then no more");
    CHECK(wgc_mem.dropped > 0 && wgc_mem.refused == 0,
          "segments dropped under pressure, no allocation refused");

    wgc_mem.limit = wgc_mem.used / 4 * 5;
    lu_peer_segment(0x18, nxt + 6400, 0, NULL, 0, 0, 64);
    CHECK(wgc_mem_pressure() && pcb->ooseq == NULL,
          "nothing queued out of order under pressure");

    /* the peer's ACK rides on data that is dropped: the ACK still counts */
    (void) tcp_write(pcb, "request", 7, TCP_WRITE_FLAG_COPY);
    tcp_output(pcb);
    CHECK(pcb->unacked != NULL, "data in flight");
    lu_peer_segment(0x18, nxt, 7, NULL, 0, 0, 64);
    CHECK(pcb->unacked == NULL && pcb->rcv_nxt == nxt,
          "its data dropped, the ACK it carried taken");
    wgc_mem.limit = wgc_mem.used + 1024 * 1024;

    /* the application takes its data: the rest, sent again, arrives */
    lu_take(pcb);

    CHECK(!wgc_mem_pressure(), "pressure ends when the data is taken");

    for (i = 0; nxt + 64 * i < seq && i < 20000; i++) {
        lu_peer_segment(0x18, nxt + 64 * i, 0, NULL, 0, 0, 64);

        if (lu_held_len > 64 * 1024) {
            lu_take(pcb);
        }
    }

    CHECK(pcb->rcv_nxt == seq, "what was dropped arrives when sent again");

    /* at the limit an allocation fails, and is counted */
    wgc_mem.limit = wgc_mem.used + 1000;
    m = mem_malloc(4000);
    CHECK(m == NULL && wgc_mem.refused == 1, "an allocation past the limit fails");

    wgc_mem.limit = 0;

    lu_take(pcb);
    tcp_abort(pcb);

    CHECK(wgc_mem.used == base, "freeing all returns the heap to where it was");
}


/*
 * Timers at the heap's limit.  lwIP frees a timer's timeout before its
 * handler runs and allocates it again after: what the handler keeps in
 * between (a segment queued, here a poll callback that takes all the room
 * left) made the allocation fail an assertion, and the engine aborted
 * (found by fuzz/fuzz_lwip_input).  With the timeouts kept apart from the
 * heap (patches/lwip-timeouts-static.patch) the timers run on.
 */

static void  *lu_hog;


static err_t
lu_poll_hog(void *arg, struct tcp_pcb *pcb)
{
    size_t  room;

    room = wgc_mem.limit - wgc_mem.used;

    /* leaves 25-40 bytes: malloc rounds up to 16, with 8 of its own */
    if (lu_hog == NULL && room > 64) {
        lu_hog = mem_malloc((mem_size_t) (room - 40));
    }

    return ERR_OK;
}


/*
 * A SYN the peer does not answer is resent after 1, 2, 4 ... 64 s, as
 * Linux does (127 s in all, past nginx's proxy_connect_timeout), and the
 * connection then fails with ERR_TIMEOUT; once a resent SYN is answered,
 * data starts with an RTO of 3 s (RFC 6298 5.7).
 */

static err_t  lu_syn_err = ERR_OK;


static void
lu_syn_err_cb(void *arg, err_t err)
{
    lu_syn_err = err;
}


static void
lu_tcp_syn_backoff(void)
{
    u32_t            t0, sent[16];
    size_t           n, i;
    ip_addr_t        peer;
    struct tcp_pcb  *pcb;

    wgt_section("TCP SYN retransmission");

    IP_ADDR4(&peer, 100, 64, 0, 2);
    pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    tcp_err(pcb, lu_syn_err_cb);
    lu_nsent = 0;
    lu_syn_err = ERR_OK;
    CHECK(tcp_connect(pcb, &peer, 80, NULL) == ERR_OK && lu_nsent == 1,
          "SYN sent");

    t0 = lu_now;
    n = 0;

    while (lu_syn_err == ERR_OK && lu_now - t0 < 200000) {
        lu_now += TCP_TMR_INTERVAL;
        sys_check_timeouts();

        while (n + 1 < lu_nsent && n < 16) {
            sent[n++] = lu_now - t0;
        }
    }

    CHECK(n == TCP_SYNMAXRTX, "the SYN resent TCP_SYNMAXRTX times");

    for (i = 0; i < n; i++) {
        /* 1, 3, 7 ... 127 s after the first, within a timer tick */
        if (sent[i] < (2000U << i) - 1000 - 2 * TCP_SLOW_INTERVAL
            || sent[i] > (2000U << i) - 1000 + 2 * TCP_SLOW_INTERVAL)
        {
            break;
        }
    }

    if (i < n) {
        printf("    resend %u at %u ms\n", (unsigned) i, (unsigned) sent[i]);
    }

    CHECK(i == n, "resent after 1, 2, 4 ... s");
    CHECK(lu_syn_err == ERR_TIMEOUT
          && lu_now - t0 >= 127000 - 2 * TCP_SLOW_INTERVAL
          && lu_now - t0 <= 127000 + 2 * TCP_SLOW_INTERVAL,
          "given up with ERR_TIMEOUT after 127 s");

    /* answered after two resends: the backed-off RTO does not stay */
    pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    lu_nsent = 0;
    (void) tcp_connect(pcb, &peer, 80, NULL);
    lu_iss = lu_sent[0].seq;
    lu_lport = pcb->local_port;

    while (lu_nsent < 3) {
        lu_now += TCP_TMR_INTERVAL;
        sys_check_timeouts();
    }

    CHECK(pcb->rto >= 4000 / TCP_SLOW_INTERVAL, "RTO backed off to 4 s");
    lu_peer_segment(0x12, 1000, 0, NULL, 0, 1, 0);
    CHECK(pcb->state == ESTABLISHED && pcb->nrtx == 0
          && pcb->rto == 3000 / TCP_SLOW_INTERVAL,
          "established with an RTO of 3 s");

    tcp_abort(pcb);
}


static void
lu_timers_at_limit(void)
{
    int              i;
    struct tcp_pcb  *pcb;

    wgt_section("lwIP's timers at the heap's limit");

    pcb = lu_connect();
    tcp_poll(pcb, lu_poll_hog, 1);

    wgc_mem.limit = wgc_mem.used + 4096;
    wgc_mem.refused = 0;

    for (i = 0; i < 40; i++) {
        lu_now += TCP_TMR_INTERVAL;
        sys_check_timeouts();
    }

    CHECK(lu_hog != NULL && wgc_mem.limit - wgc_mem.used < 48,
          "a timer's handler took the heap to its limit");
    CHECK(1, "the timers ran on at the limit");

    mem_free(lu_hog);
    lu_hog = NULL;
    wgc_mem.limit = 0;
    tcp_poll(pcb, NULL, 0);

    /* data the peer does not acknowledge: the TCP timer sends it again */
    (void) tcp_write(pcb, "request", 7, TCP_WRITE_FLAG_COPY);
    tcp_output(pcb);
    pcb->nrtx = 0;

    for (i = 0; i < 80 && pcb->nrtx == 0; i++) {
        lu_now += TCP_TMR_INTERVAL;
        sys_check_timeouts();
    }

    CHECK(pcb->nrtx > 0, "the TCP timer still runs");

    tcp_abort(pcb);
}


/*
 * The receive window's tuning (src/arch/rcvwnd.h), with the test as a
 * sender that sends, each round trip of rtt us, all the announced window
 * lets it, up to rate bytes (0: no limit): rounds of it, then the window
 * it ends with
 */

static u32_t         lu_rw_seq;
static uint64_t      lu_rw_now;
static int           lu_rw_edge_back;   /* the right edge moved back */
static int           lu_rw_lost;        /* data sent was not taken in */
static int           lu_rw_train;       /* it sends in GRO trains */


static tcpwnd_size_t
lu_rw_rounds(wgc_rcvwnd_t *rw, struct tcp_pcb *pcb, unsigned rounds,
    uint64_t rtt, u32_t rate)
{
    u32_t     edge, end, n;
    unsigned  i;

    for (i = 0; i < rounds; i++) {
        if (lu_rw_seq != pcb->rcv_nxt) {
            /* what was dropped is sent again */
            lu_rw_lost = 1;
            lu_rw_seq = pcb->rcv_nxt;
        }

        edge = pcb->rcv_ann_right_edge;
        end = (rate && TCP_SEQ_LT(lu_rw_seq + rate, edge))
              ? lu_rw_seq + rate : edge;

        while (TCP_SEQ_LT(lu_rw_seq, end)) {
            n = LWIP_MIN(end - lu_rw_seq, LU_MSS);
            lu_peer_segment(0x10, lu_rw_seq, 0, NULL, 0, 0, n);
            wgc_rcvwnd_arrived(rw, lu_rw_train);
            lu_rw_seq += n;
        }

        lu_rw_now += rtt;

        n = lu_held_len;
        if (lu_held) {
            pbuf_free(lu_held);
            lu_held = NULL;
        }
        lu_held_len = 0;

        wgc_rcvwnd_taken(rw, pcb, n, lu_rw_now);

        if (TCP_SEQ_LT(pcb->rcv_nxt + pcb->rcv_wnd, edge)) {
            lu_rw_edge_back = 1;
        }
    }

    return pcb->rcv_wnd_max;
}


static void
lu_tcp_rcvwnd(void)
{
    void            *m;
    size_t           base;
    wgc_rcvwnd_t     rw;
    tcpwnd_size_t    wnd;
    struct tcp_pcb  *pcb;

    wgt_section("lwIP: the receive window sized to the path");

    base = wgc_mem.used;

    pcb = lu_connect();
    tcp_recv(pcb, lu_recv_hold);

    CHECK(pcb->rcv_wnd_max == TCP_WND_INIT && pcb->rcv_wnd == TCP_WND_INIT,
          "a connection starts with TCP_WND_INIT");

    memset(&rw, 0, sizeof(rw));
    lu_rw_seq = 1001;
    lu_rw_now = 1000000;
    lu_rw_edge_back = 0;
    lu_rw_lost = 0;

    /* the window holds the sender: it doubles each interval */
    wnd = lu_rw_rounds(&rw, pcb, 6, 1000, 0);
    CHECK(rw.rtt_us == 1000, "the round trip measured");
    CHECK(wnd > 2 * TCP_WND_INIT && wnd < TCP_WND, "the window grows");

    wnd = lu_rw_rounds(&rw, pcb, 20, 1000, 0);
    CHECK(wnd == TCP_WND, "up to TCP_WND");

    /* a bottleneck of 100,000 bytes a round trip: four times that, slack */
    wnd = lu_rw_rounds(&rw, pcb, 60, 1000, 100000);
    CHECK(wnd >= 400000 && wnd <= 400000 + 17 * LU_MSS,
          "it shrinks to four times the path's bandwidth-delay product");
    CHECK(!rw.lost, "nothing lost yet");

    /* the same path, its data in trains: sixteen times, and back */
    lu_rw_train = 1;
    wnd = lu_rw_rounds(&rw, pcb, 60, 1000, 100000);
    CHECK(rw.trains && wnd >= 1600000 && wnd <= 1600000 + 17 * LU_MSS,
          "data in trains: sixteen times the bandwidth-delay product");
    lu_rw_train = 0;
    wnd = lu_rw_rounds(&rw, pcb, 60, 1000, 100000);
    CHECK(!rw.trains && wnd >= 400000 && wnd <= 400000 + 17 * LU_MSS,
          "one by one again: four times");
    CHECK(!lu_rw_edge_back && !lu_rw_lost,
          "no edge moved back, nothing lost");

    /* a segment lost (the next one arrives first): twice */
    lu_peer_segment(0x10, lu_rw_seq + LU_MSS, 0, NULL, 0, 0, LU_MSS);
    wgc_rcvwnd_taken(&rw, pcb, 0, lu_rw_now);
    CHECK(rw.lost, "a hole seen");
    wnd = lu_rw_rounds(&rw, pcb, 60, 1000, 100000);
    CHECK(wnd >= 200000 && wnd <= 200000 + 17 * LU_MSS,
          "with losses, twice the bandwidth-delay product");
    CHECK(!lu_rw_edge_back, "its right edge never moves back");
    CHECK(!lu_rw_lost, "all the sender sent within the window was taken");

    /* the direct path lost, DERP instead: 50 ms, 1.1 MB a round trip */
    wnd = lu_rw_rounds(&rw, pcb, WGC_RCVWND_RTT_LONG_SAMPLES + 1, 50000,
                       1100000);
    CHECK(rw.rtt_us == 50000, "a longer path followed after a few samples");
    wnd = lu_rw_rounds(&rw, pcb, 12, 50000, 1100000);
    CHECK(wnd == TCP_WND, "its window as large as it needs");

    /* memory pressure: down to the floor, and back */
    m = mem_malloc(1024 * 1024);
    wgc_mem.limit = wgc_mem.used + 256 * 1024;
    wnd = lu_rw_rounds(&rw, pcb, 40, 50000, 1100000);
    CHECK(wnd == WGC_MEM_FLOOR, "under memory pressure, the floor");
    mem_free(m);
    wgc_mem.limit = 0;
    wnd = lu_rw_rounds(&rw, pcb, 12, 50000, 1100000);
    CHECK(wnd == TCP_WND, "the window back once the pressure ends");

    lu_rw_lost = 0;
    wnd = lu_rw_rounds(&rw, pcb, 4, 50000, 1100000);
    CHECK(!lu_rw_edge_back && !lu_rw_lost, "no edge moved back, nothing lost");

    tcp_abort(pcb);

    CHECK(wgc_mem.used == base, "all freed");
}


int
main(void)
{
    lu_setup();

    lu_reass("IPv4 reassembly", lu_frag4_id);
    lu_reass("IPv6 reassembly", lu_frag6);
    lu_reass("IPv6 reassembly, Hop-by-Hop header first", lu_frag6_hbh);
    lu_tcp_recovery();
    lu_tcp_ooseq_limit();
    lu_tcp_mss_syn_only();
    lu_tcp_write_wnd_grows();
    lu_tcp_connected_ack();
    lu_tcp_demux();
    lu_tcp_time_wait();
    lu_tcp_memory();
    lu_tcp_syn_backoff();
    lu_timers_at_limit();
    lu_tcp_rcvwnd();
    lu_chksum();

    printf("%u passed, %u failed\n", wgt_passed, wgt_failed);

    return wgt_failed ? 1 : 0;
}
