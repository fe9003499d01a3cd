
/*
 * Unit tests of lwIP as the engine builds it (src/lwipopts.h, our patches):
 * what our patches change, driven packet by packet without nginx.
 *
 *   IP reassembly: a datagram is delivered only when every fragment is
 *   there, whatever order they arrive in (patches/lwip-ip6-reass-gap.patch:
 *   lwIP 2.1.3 delivered an IPv6 datagram with a hole when the fragment
 *   before the hole arrived last).
 */

#include <stdlib.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/udp.h"
#include "lwip/timeouts.h"

#include "wgtest.h"
#include "lwip_node.h"


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
    abort();
}


void
wgt_section(const char *name)
{
    printf("# %s\n", name);
}


static err_t
lu_output4(struct netif *netif, struct pbuf *p, const ip4_addr_t *addr)
{
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


static void
lu_frag6(u32_t id, u16_t off)
{
    u8_t    b[56];
    u16_t   fo;

    memset(b, 0, 48);
    b[0] = 0x60;
    b[5] = 16;                   /* payload: fragment header + 8 */
    b[6] = 44;                   /* next header: fragment */
    b[7] = 64;
    b[8] = 0xfd; b[9] = 0x7a; b[10] = 0x11; b[11] = 0x5c;
    b[12] = 0xa1; b[13] = 0xe0; b[23] = 2;
    b[24] = 0xfd; b[25] = 0x7a; b[26] = 0x11; b[27] = 0x5c;
    b[28] = 0xa1; b[29] = 0xe0; b[39] = 1;
    b[40] = 17;
    fo = (u16_t) (off | (off < 24 ? 1 : 0));
    b[42] = (u8_t) (fo >> 8);
    b[43] = (u8_t) fo;
    b[44] = (u8_t) (id >> 24);
    b[45] = (u8_t) (id >> 16);
    b[46] = (u8_t) (id >> 8);
    b[47] = (u8_t) id;

    lu_input(b, 48 + lu_slice(b + 48, off));
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


static void
lu_frag4_id(u32_t id, u16_t off)
{
    lu_frag4((u16_t) id, off);
}


int
main(void)
{
    lu_setup();

    lu_reass("IPv4 reassembly", lu_frag4_id);
    lu_reass("IPv6 reassembly", lu_frag6);

    printf("%u passed, %u failed\n", wgt_passed, wgt_failed);

    return wgt_failed ? 1 : 0;
}
