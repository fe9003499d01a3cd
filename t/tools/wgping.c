/*
 * wgping: a minimal WireGuard node built on the I/O-free core, for interop
 * tests against real implementations.  One UDP socket, one peer, a poll()
 * loop; it answers ICMP echo requests sent to its overlay IPv4 address and
 * can send its own echo requests to the peer.
 *
 *   wgping -k PRIVATE_B64 -l PORT -p PEER_PUB_B64 -a ALLOWED/CIDR
 *          -o OVERLAY_IP [-e ENDPOINT_IP:PORT] [-t TARGET_IP -c COUNT
 *          -s SIZE -i INTERVAL_MS] [-K KEEPALIVE_S] [-d DURATION_S]
 *          [-P PRESHARED_B64]
 *
 * Prints one line per event and echo reply and, when pinging, a summary;
 * exits 0 when every echo request got its reply (or none was asked for).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "wg_device.h"


#define WGPING_MAX_PINGS  1024


typedef struct {
    int                 fd;
    wg_device_t        *dev;
    struct in_addr      overlay;
    struct in_addr      target;
    unsigned            count;
    unsigned            size;
    unsigned            sent;
    unsigned            received;
    unsigned            answered;
    uint16_t            ident;
    uint64_t            sent_at[WGPING_MAX_PINGS];
    uint8_t             seen[WGPING_MAX_PINGS];
} wgping_t;


static uint64_t wgping_now(void);
static uint16_t wgping_cksum(const uint8_t *p, size_t len, uint32_t sum);
static int wgping_key(const char *b64, uint8_t key[WG_KEY_LEN]);
static void wgping_send(void *ctx, wg_peer_t *peer, const wg_endpoint_t *ep,
    const uint8_t *msg, size_t len);
static void wgping_recv(void *ctx, wg_peer_t *peer, uint8_t *pkt,
    size_t len);
static void wgping_event(void *ctx, wg_peer_t *peer, wg_event_t ev);
static void wgping_echo(wgping_t *wp, uint64_t now);
static void wgping_usage(void);


static wgping_t  wgping;


static uint64_t
wgping_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}


static uint16_t
wgping_cksum(const uint8_t *p, size_t len, uint32_t sum)
{
    size_t  i;

    for (i = 0; i + 1 < len; i += 2) {
        sum += (uint32_t) (p[i] << 8 | p[i + 1]);
    }

    if (len & 1) {
        sum += (uint32_t) p[len - 1] << 8;
    }

    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }

    return (uint16_t) ~sum;
}


static int
wgping_key(const char *b64, uint8_t key[WG_KEY_LEN])
{
    size_t  len;

    if (sodium_base642bin(key, WG_KEY_LEN, b64, strlen(b64), " \n", &len,
                          NULL, sodium_base64_VARIANT_ORIGINAL)
        != 0 || len != WG_KEY_LEN)
    {
        return -1;
    }

    return 0;
}


static void
wgping_send(void *ctx, wg_peer_t *peer, const wg_endpoint_t *ep,
    const uint8_t *msg, size_t len)
{
    wgping_t  *wp = ctx;

    (void) peer;

    if (sendto(wp->fd, msg, len, 0, &ep->addr.sa, ep->len) < 0) {
        fprintf(stderr, "wgping: sendto: %s\n", strerror(errno));
    }
}


static void
wgping_recv(void *ctx, wg_peer_t *peer, uint8_t *pkt, size_t len)
{
    size_t     ihl;
    uint8_t   *icmp, tmp[4];
    uint16_t   seq, ck;
    wgping_t  *wp = ctx;

    (void) peer;

    if (len < 28 || (pkt[0] >> 4) != 4 || pkt[9] != 1) {
        return;
    }

    ihl = (size_t) (pkt[0] & 0x0f) * 4;
    if (ihl < 20 || ihl + 8 > len) {
        return;
    }

    icmp = pkt + ihl;

    if (icmp[0] == 8 && memcmp(pkt + 16, &wp->overlay, 4) == 0) {
        /* echo request to us: turn the packet around */
        memcpy(tmp, pkt + 12, 4);
        memcpy(pkt + 12, pkt + 16, 4);
        memcpy(pkt + 16, tmp, 4);
        pkt[8] = 64;
        pkt[10] = 0;
        pkt[11] = 0;
        ck = wgping_cksum(pkt, ihl, 0);
        pkt[10] = (uint8_t) (ck >> 8);
        pkt[11] = (uint8_t) ck;

        icmp[0] = 0;
        icmp[2] = 0;
        icmp[3] = 0;
        ck = wgping_cksum(icmp, len - ihl, 0);
        icmp[2] = (uint8_t) (ck >> 8);
        icmp[3] = (uint8_t) ck;

        wp->answered++;
        wg_device_output(wp->dev, pkt, len, wgping_now());
        return;
    }

    if (icmp[0] == 0 && (icmp[4] << 8 | icmp[5]) == wp->ident) {
        seq = (uint16_t) (icmp[6] << 8 | icmp[7]);

        if (seq < WGPING_MAX_PINGS && seq < wp->sent && !wp->seen[seq]) {
            wp->seen[seq] = 1;
            wp->received++;
            printf("reply seq=%u bytes=%zu time=%.3f ms\n", seq, len - ihl,
                   (double) (wgping_now() - wp->sent_at[seq]) / 1e6);
            fflush(stdout);
        }
    }
}


static void
wgping_event(void *ctx, wg_peer_t *peer, wg_event_t ev)
{
    static const char  *names[] = { "?", "handshake sent", "handshake done",
                                    "handshake failed", "endpoint changed",
                                    "keys zeroed" };

    (void) ctx;
    (void) peer;

    printf("event: %s\n", (unsigned) ev < 6 ? names[ev] : "?");
    fflush(stdout);
}


static void
wgping_echo(wgping_t *wp, uint64_t now)
{
    size_t       len;
    uint8_t      pkt[65535];
    uint16_t     ck;
    wg_result_t  rc;

    len = 28 + wp->size;
    memset(pkt, 0, len);

    pkt[0] = 0x45;
    pkt[2] = (uint8_t) (len >> 8);
    pkt[3] = (uint8_t) len;
    pkt[4] = (uint8_t) (wp->sent >> 8);
    pkt[5] = (uint8_t) wp->sent;
    pkt[8] = 64;
    pkt[9] = 1;
    memcpy(pkt + 12, &wp->overlay, 4);
    memcpy(pkt + 16, &wp->target, 4);
    ck = wgping_cksum(pkt, 20, 0);
    pkt[10] = (uint8_t) (ck >> 8);
    pkt[11] = (uint8_t) ck;

    pkt[20] = 8;
    pkt[24] = (uint8_t) (wp->ident >> 8);
    pkt[25] = (uint8_t) wp->ident;
    pkt[26] = (uint8_t) (wp->sent >> 8);
    pkt[27] = (uint8_t) wp->sent;
    memset(pkt + 28, 0xa5, wp->size);
    ck = wgping_cksum(pkt + 20, len - 20, 0);
    pkt[22] = (uint8_t) (ck >> 8);
    pkt[23] = (uint8_t) ck;

    wp->sent_at[wp->sent] = now;
    wp->sent++;

    rc = wg_device_output(wp->dev, pkt, len, now);
    if (rc != WG_OK) {
        printf("output: %s\n", wg_result_str(rc));
    }
}


static void
wgping_usage(void)
{
    fprintf(stderr, "usage: wgping -k PRIV -l PORT -p PEERPUB -a NET/CIDR "
            "-o OVERLAY [-e IP:PORT] [-t TARGET -c N -s SIZE -i MS] "
            "[-K KEEPALIVE] [-d SECONDS] [-P PSK]\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    int                 c, port, cidr, rc;
    char               *slash, *colon;
    uint8_t             priv[WG_KEY_LEN], pub[WG_KEY_LEN];
    uint8_t             psk[WG_KEY_LEN];
    uint8_t             buf[65536];
    ssize_t             n;
    uint64_t            now, deadline, next, next_ping, interval;
    unsigned            keepalive, duration, i;
    socklen_t           slen;
    wg_peer_t          *peer;
    wg_endpoint_t       ep, from;
    struct in_addr      allowed;
    struct pollfd       pfd;
    wg_device_ops_t     ops;
    const wg_device_stats_t  *st;
    struct sockaddr_in  sin;
    int                 have_priv = 0, have_pub = 0, have_allowed = 0;
    int                 have_ep = 0, have_target = 0, have_psk = 0;

    wgping_t *wp = &wgping;

    memset(wp, 0, sizeof(*wp));
    memset(&ep, 0, sizeof(ep));
    port = 0;
    cidr = 32;
    keepalive = 0;
    duration = 10;
    wp->count = 5;
    wp->size = 56;
    interval = 200;

    if (sodium_init() < 0) {
        return 1;
    }

    while ((c = getopt(argc, argv, "k:l:p:a:o:e:t:c:s:i:K:d:P:")) != -1) {
        switch (c) {
        case 'k':
            have_priv = (wgping_key(optarg, priv) == 0);
            break;
        case 'l':
            port = atoi(optarg);
            break;
        case 'p':
            have_pub = (wgping_key(optarg, pub) == 0);
            break;
        case 'a':
            slash = strchr(optarg, '/');
            if (slash != NULL) {
                *slash = '\0';
                cidr = atoi(slash + 1);
            }
            have_allowed = (inet_pton(AF_INET, optarg, &allowed) == 1);
            break;
        case 'o':
            if (inet_pton(AF_INET, optarg, &wp->overlay) != 1) {
                wgping_usage();
            }
            break;
        case 'e':
            colon = strrchr(optarg, ':');
            if (colon == NULL) {
                wgping_usage();
            }
            *colon = '\0';
            ep.len = sizeof(struct sockaddr_in);
            ep.addr.in.sin_family = AF_INET;
            ep.addr.in.sin_port = htons((uint16_t) atoi(colon + 1));
            have_ep = (inet_pton(AF_INET, optarg,
                                 &ep.addr.in.sin_addr) == 1);
            break;
        case 't':
            have_target = (inet_pton(AF_INET, optarg, &wp->target) == 1);
            break;
        case 'c':
            wp->count = (unsigned) atoi(optarg);
            break;
        case 's':
            wp->size = (unsigned) atoi(optarg);
            break;
        case 'i':
            interval = (uint64_t) atoi(optarg);
            break;
        case 'K':
            keepalive = (unsigned) atoi(optarg);
            break;
        case 'd':
            duration = (unsigned) atoi(optarg);
            break;
        case 'P':
            have_psk = (wgping_key(optarg, psk) == 0);
            if (!have_psk) {
                wgping_usage();
            }
            break;
        default:
            wgping_usage();
        }
    }

    if (!have_priv || !have_pub || !have_allowed || port <= 0
        || wp->count > WGPING_MAX_PINGS || wp->size > 65000)
    {
        wgping_usage();
    }

    wp->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (wp->fd < 0) {
        perror("socket");
        return 1;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);

    if (bind(wp->fd, (struct sockaddr *) &sin, sizeof(sin)) != 0) {
        perror("bind");
        return 1;
    }

    memset(&ops, 0, sizeof(ops));
    ops.ctx = wp;
    ops.send = wgping_send;
    ops.recv = wgping_recv;
    ops.event = wgping_event;

    wp->dev = wg_device_create(priv, &ops);
    if (wp->dev == NULL) {
        fprintf(stderr, "wgping: device creation failed\n");
        return 1;
    }

    peer = wg_device_add_peer(wp->dev, pub, have_psk ? psk : NULL);
    if (peer == NULL
        || wg_peer_add_allowed_ip(peer, AF_INET, &allowed, (unsigned) cidr)
           != 0)
    {
        fprintf(stderr, "wgping: peer setup failed\n");
        return 1;
    }

    if (have_ep) {
        wg_peer_set_endpoint(peer, &ep);
    }

    if (keepalive) {
        wg_peer_set_keepalive(peer, keepalive);
    }

    wp->ident = (uint16_t) getpid();
    if (!have_target) {
        wp->count = 0;
    }

    now = wgping_now();
    deadline = now + (uint64_t) duration * 1000000000ULL;
    next_ping = now;
    interval *= 1000000ULL;

    printf("wgping: listening on %d\n", port);
    fflush(stdout);

    for ( ;; ) {
        now = wgping_now();

        if (now >= deadline) {
            break;
        }

        if (wp->count != 0 && wp->received == wp->count) {
            break;
        }

        if (wp->sent < wp->count && now >= next_ping) {
            wgping_echo(wp, now);
            next_ping = now + interval;
        }

        next = wg_device_tick(wp->dev, now);

        if (wp->sent < wp->count && next > next_ping) {
            next = next_ping;
        }

        if (next > deadline) {
            next = deadline;
        }

        pfd.fd = wp->fd;
        pfd.events = POLLIN;

        rc = poll(&pfd, 1, next > now ? (int) ((next - now) / 1000000 + 1)
                                      : 0);
        if (rc <= 0) {
            continue;
        }

        for ( ;; ) {
            slen = sizeof(from.addr);
            n = recvfrom(wp->fd, buf, sizeof(buf), 0, &from.addr.sa, &slen);
            if (n < 0) {
                break;
            }

            from.len = slen;
            wg_device_input(wp->dev, buf, (size_t) n, &from, wgping_now());
        }
    }

    st = wg_device_stats(wp->dev);

    printf("answered %u echo requests; rx %llu tx %llu packets\n",
           wp->answered, (unsigned long long) st->rx_packets,
           (unsigned long long) st->tx_packets);

    for (i = 1; i < WG_DROP_MAX; i++) {
        if (st->drops[i] != 0) {
            printf("drops %s: %llu\n", wg_result_str((wg_result_t) i),
                   (unsigned long long) st->drops[i]);
        }
    }

    if (wp->count != 0) {
        printf("%u sent, %u received\n", wp->sent, wp->received);
    }

    wg_device_destroy(wp->dev);
    close(wp->fd);

    return wp->received == wp->count ? 0 : 1;
}
