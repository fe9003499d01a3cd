
/*
 * lwIP up with one netif holding the node's overlay addresses (100.64.0.1
 * and fd7a:115c:a1e0::1, MTU 1280), as the engine brings it up: shared by
 * t/unit/lwip_unit.c and fuzz/fuzz_lwip_input.c.  What lwIP sends goes to
 * out4/out6; lwip_node_demux_consistent() checks lwIP's connection hash
 * for both.
 */

#ifndef _LWIP_NODE_H_INCLUDED_
#define _LWIP_NODE_H_INCLUDED_


#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"


static netif_output_fn      lwip_node_out4;
static netif_output_ip6_fn  lwip_node_out6;


static err_t
lwip_node_netif_init(struct netif *netif)
{
    netif->output = lwip_node_out4;
    netif->output_ip6 = lwip_node_out6;
    netif->mtu = 1280;
    netif->mtu6 = 1280;
    netif->flags = NETIF_FLAG_UP | NETIF_FLAG_LINK_UP;

    return ERR_OK;
}


static void
lwip_node_up(struct netif *netif, netif_output_fn out4,
    netif_output_ip6_fn out6)
{
    s8_t        idx;
    ip4_addr_t  a4, m4, gw;
    ip6_addr_t  a6;

    lwip_node_out4 = out4;
    lwip_node_out6 = out6;

    lwip_init();

    IP4_ADDR(&a4, 100, 64, 0, 1);
    IP4_ADDR(&m4, 255, 255, 255, 255);
    ip4_addr_set_zero(&gw);
    netif_add(netif, &a4, &m4, &gw, NULL, lwip_node_netif_init, ip_input);

    IP6_ADDR(&a6, PP_HTONL(0xfd7a115cUL), PP_HTONL(0xa1e00000UL), 0,
             PP_HTONL(1));
    netif_add_ip6_address(netif, &a6, &idx);
    netif_ip6_addr_set_state(netif, idx, IP6_ADDR_PREFERRED);

    netif_set_default(netif);
    netif_set_link_up(netif);
    netif_set_up(netif);
}


/*
 * Every active and TIME-WAIT pcb is the one tcp_demux_find() gives for its
 * four-tuple (patches/lwip-tcp-demux.patch), so no segment can miss it
 */

static int
lwip_node_demux_consistent(void)
{
    u8_t             l;
    struct tcp_pcb  *pcb;

    for (l = 2; l < NUM_TCP_PCB_LISTS; l++) {
        for (pcb = *tcp_pcb_lists[l]; pcb != NULL; pcb = pcb->next) {
            if (tcp_demux_find(pcb->local_port, pcb->remote_port,
                               &pcb->local_ip, &pcb->remote_ip,
                               NETIF_NO_INDEX)
                != pcb)
            {
                return 0;
            }
        }
    }

    return 1;
}


#endif /* _LWIP_NODE_H_INCLUDED_ */
