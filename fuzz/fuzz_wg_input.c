/*
 * libFuzzer target: arbitrary datagrams into wg_device_input() of a device
 * with one peer.  The input is also read as a small program so that the
 * fuzzer can get past mac1 and decryption: it can let the peer (a second
 * in-process device) initiate a handshake or send data, mutate those
 * messages, let time pass and run the timers.
 *
 *   input = op*, op = kind:u8 len:u8 data[len]
 *     kind % 6 == 0  raw datagram data -> device
 *     kind % 6 == 1  peer initiates; its messages are queued
 *     kind % 6 == 2  peer sends an IP packet with payload data
 *     kind % 6 == 3  deliver the queues both ways, flipping the byte at
 *                    data[0] of each message by data[1] (if given)
 *     kind % 6 == 4  time passes by data[0] * 100 ms, both devices tick
 *     kind % 6 == 5  device sends an IP packet with payload data
 */

#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "wg_device.h"


#define FZ_QUEUE   16
#define FZ_MSG     1600


typedef struct {
    uint8_t             data[FZ_MSG];
    size_t              len;
} fz_msg_t;

typedef struct {
    wg_device_t        *dev;
    wg_peer_t          *peer;
    wg_endpoint_t       addr;
    fz_msg_t            q[FZ_QUEUE];
    unsigned            n;
    uint8_t             overlay[4];
} fz_node_t;


static uint64_t   fz_now;
static fz_node_t  fz_dut, fz_peer;

static const uint8_t  fz_key_dut[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
static const uint8_t  fz_key_peer[32] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };


static void
fz_send(void *ctx, wg_peer_t *peer, const wg_endpoint_t *ep,
    const uint8_t *msg, size_t len)
{
    fz_node_t  *n = ctx;

    (void) peer;
    (void) ep;

    if (n->n == FZ_QUEUE || len > FZ_MSG) {
        return;
    }

    memcpy(n->q[n->n].data, msg, len);
    n->q[n->n].len = len;
    n->n++;
}


static void
fz_recv(void *ctx, wg_peer_t *peer, uint8_t *pkt, size_t len)
{
    volatile uint8_t  sink;

    (void) ctx;
    (void) peer;

    /* touch every byte: the sanitizer checks the length we were given */
    while (len--) {
        sink = pkt[len];
    }

    (void) sink;
}


static uint64_t
fz_realtime(void *ctx)
{
    (void) ctx;

    return 1700000000ULL * 1000000000ULL + fz_now;
}


static void
fz_node(fz_node_t *n, const uint8_t *key, const char *ip, uint8_t last)
{
    wg_device_ops_t  ops;

    memset(n, 0, sizeof(*n));
    memset(&ops, 0, sizeof(ops));
    ops.ctx = n;
    ops.send = fz_send;
    ops.recv = fz_recv;
    ops.realtime = fz_realtime;

    n->dev = wg_device_create(key, &ops);
    n->addr.len = sizeof(struct sockaddr_in);
    n->addr.addr.in.sin_family = AF_INET;
    n->addr.addr.in.sin_port = htons(51820);
    inet_pton(AF_INET, ip, &n->addr.addr.in.sin_addr);
    n->overlay[0] = 10;
    n->overlay[3] = last;
}


static void
fz_link(fz_node_t *a, fz_node_t *b)
{
    uint8_t  pub[32];

    wg_device_public_key(b->dev, pub);
    a->peer = wg_device_add_peer(a->dev, pub, NULL);
    wg_peer_add_allowed_ip(a->peer, AF_INET, b->overlay, 32);
    wg_peer_set_endpoint(a->peer, &b->addr);
}


static void
fz_ip(fz_node_t *from, fz_node_t *to, const uint8_t *data, size_t len)
{
    size_t   total;
    uint8_t  pkt[300];

    total = 20 + len;
    memset(pkt, 0, 20);
    pkt[0] = 0x45;
    pkt[2] = (uint8_t) (total >> 8);
    pkt[3] = (uint8_t) total;
    pkt[9] = 17;
    memcpy(pkt + 12, from->overlay, 4);
    memcpy(pkt + 16, to->overlay, 4);
    memcpy(pkt + 20, data, len);

    wg_device_output(from->dev, pkt, total, fz_now);
}


static void
fz_deliver(fz_node_t *from, fz_node_t *to, const uint8_t *data, size_t len)
{
    unsigned  i, n;
    fz_msg_t  q[FZ_QUEUE];

    n = from->n;
    memcpy(q, from->q, n * sizeof(fz_msg_t));
    from->n = 0;

    for (i = 0; i < n; i++) {
        if (len >= 2 && q[i].len != 0) {
            q[i].data[data[0] % q[i].len] ^= data[1];
        }

        wg_device_input(to->dev, q[i].data, q[i].len, &from->addr, fz_now);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t   len;
    uint8_t  kind, buf[512];

    fz_now = 1000ULL * 1000000000ULL;

    fz_node(&fz_dut, fz_key_dut, "192.0.2.1", 1);
    fz_node(&fz_peer, fz_key_peer, "192.0.2.2", 2);

    if (fz_dut.dev == NULL || fz_peer.dev == NULL) {
        abort();
    }

    fz_link(&fz_dut, &fz_peer);
    fz_link(&fz_peer, &fz_dut);

    /* a plain datagram unless the input asks for the program form */
    if (size == 0 || data[0] != 0xff) {
        memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
        wg_device_input(fz_dut.dev, buf, size < sizeof(buf) ? size : 0,
                        &fz_peer.addr, fz_now);

        if (size >= sizeof(buf)) {
            uint8_t  *big = malloc(size);

            memcpy(big, data, size);
            wg_device_input(fz_dut.dev, big, size, &fz_peer.addr, fz_now);
            free(big);
        }

        goto done;
    }

    data++;
    size--;

    while (size >= 2) {
        kind = data[0];
        len = data[1];
        data += 2;
        size -= 2;

        if (len > size) {
            len = size;
        }

        switch (kind % 6) {
        case 0:
            memcpy(buf, data, len);
            wg_device_input(fz_dut.dev, buf, len, &fz_peer.addr, fz_now);
            break;
        case 1:
            wg_peer_kick(fz_peer.peer, fz_now);
            break;
        case 2:
            fz_ip(&fz_peer, &fz_dut, data, len);
            break;
        case 3:
            fz_deliver(&fz_peer, &fz_dut, data, len);
            fz_deliver(&fz_dut, &fz_peer, NULL, 0);
            break;
        case 4:
            fz_now += (uint64_t) (len ? data[0] : 1) * 100000000ULL;
            wg_device_tick(fz_dut.dev, fz_now);
            wg_device_tick(fz_peer.dev, fz_now);
            break;
        case 5:
            fz_ip(&fz_dut, &fz_peer, data, len);
            break;
        }

        data += len;
        size -= len;
    }

done:

    wg_device_destroy(fz_dut.dev);
    wg_device_destroy(fz_peer.dev);

    return 0;
}
