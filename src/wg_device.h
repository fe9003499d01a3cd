/*
 * I/O-free WireGuard device: bytes and time in, bytes and events out.
 *
 * The device never touches a socket, a clock or a timer of its own: the
 * caller passes every received datagram and the current monotonic time in,
 * and the device answers through the callbacks in wg_device_ops_t.  This is
 * what lets the same code run inside nginx's event loop, in unit tests
 * driven by a fake clock, and under libFuzzer.
 */

#ifndef _WG_DEVICE_H_INCLUDED_
#define _WG_DEVICE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>


#define WG_KEY_LEN              32
#define WG_MSG_OVERHEAD         32      /* data header 16 + Poly1305 tag 16 */
#define WG_MAX_PACKET           65535


/* result of wg_device_input(); every non-OK value is a counted drop */
typedef enum {
    WG_OK = 0,
    WG_DROP_MALFORMED,          /* bad type, reserved bytes, length */
    WG_DROP_MAC1,               /* mac1 invalid */
    WG_DROP_COOKIE_SENT,        /* under load without valid mac2: cookie reply */
    WG_DROP_RATELIMIT,          /* handshake rate limit per source IP */
    WG_DROP_HANDSHAKE,          /* unknown peer, decryption failed, replayed ts */
    WG_DROP_NO_SESSION,         /* data for an unknown receiver index */
    WG_DROP_DECRYPT,            /* data AEAD failed */
    WG_DROP_REPLAY,             /* counter outside or seen in the window */
    WG_DROP_KEY_EXPIRED,        /* keypair past REJECT_AFTER_TIME/MESSAGES */
    WG_DROP_ALLOWED_IPS,        /* inner source not in the peer's allowed IPs */
    WG_DROP_INNER_MALFORMED,    /* inner packet is not IPv4/IPv6 or bad length */
    WG_DROP_NO_PEER,            /* output: no peer routes the destination */
    WG_DROP_NO_ENDPOINT,        /* output: peer has no endpoint to send to */
    WG_DROP_QUEUE_FULL,         /* output: staged queue full during handshake */
    WG_DROP_MAX
} wg_result_t;


typedef struct {
    socklen_t                   len;
    union {
        struct sockaddr         sa;
        struct sockaddr_in      in;
        struct sockaddr_in6     in6;
    } addr;
} wg_endpoint_t;


typedef struct wg_device_s  wg_device_t;
typedef struct wg_peer_s    wg_peer_t;


typedef enum {
    WG_EV_HANDSHAKE_SENT = 1,   /* initiation sent (or retransmitted) */
    WG_EV_HANDSHAKE_DONE,       /* a new session keypair is usable */
    WG_EV_HANDSHAKE_FAILED,     /* gave up after REKEY_ATTEMPT_TIME */
    WG_EV_ENDPOINT_CHANGED,     /* roamed: authenticated packet from new addr */
    WG_EV_KEYS_ZEROED,          /* 3 * REJECT_AFTER_TIME without a handshake */
    WG_EV_HANDSHAKE_UNANSWERED  /* no response within REKEY_TIMEOUT: once
                                   until a handshake completes or is given
                                   up */
} wg_event_t;


typedef struct {
    void                       *ctx;

    /*
     * send one WireGuard message (a UDP payload) to ep; peer is NULL for
     * a cookie reply, which answers a sender not yet authenticated
     */
    void                      (*send)(void *ctx, wg_peer_t *peer,
                                      const wg_endpoint_t *ep,
                                      const uint8_t *msg, size_t len);

    /*
     * optional: where to build the next message of len bytes to ep, so
     * that send() takes it without a copy; NULL: the device's own buffer
     */
    uint8_t                  *(*buffer)(void *ctx, const wg_endpoint_t *ep,
                                        size_t len);

    /*
     * deliver one decrypted inner IP packet (already checked against the
     * peer's allowed IPs, padding stripped to the IP total length); the
     * buffer is only valid during the call and may be modified
     */
    void                      (*recv)(void *ctx, wg_peer_t *peer,
                                      uint8_t *pkt, size_t len);

    /* optional: state transitions, for logs and status */
    void                      (*event)(void *ctx, wg_peer_t *peer,
                                       wg_event_t ev);

    /* optional: wall clock in ns for TAI64N; NULL = CLOCK_REALTIME */
    uint64_t                  (*realtime)(void *ctx);
} wg_device_ops_t;


typedef struct {
    uint64_t                    rx_packets;
    uint64_t                    rx_bytes;
    uint64_t                    tx_packets;
    uint64_t                    tx_bytes;
    uint64_t                    drops[WG_DROP_MAX];
} wg_device_stats_t;


typedef struct {
    uint64_t                    rx_bytes;
    uint64_t                    tx_bytes;
    uint64_t                    last_handshake_ns;  /* monotonic, 0 = never */
    int                         has_session;
    wg_endpoint_t               endpoint;           /* len 0 = none */
} wg_peer_stats_t;


/* time is monotonic nanoseconds throughout */

wg_device_t *wg_device_create(const uint8_t private_key[WG_KEY_LEN],
    const wg_device_ops_t *ops);
void wg_device_destroy(wg_device_t *dev);
void wg_device_public_key(wg_device_t *dev, uint8_t out[WG_KEY_LEN]);

/* inner MTU: data packets are padded to a multiple of 16, never past it */
void wg_device_set_mtu(wg_device_t *dev, unsigned mtu);

/*
 * change the private key; a no-op (sessions kept) when it equals the
 * current one, otherwise all sessions are dropped
 */
void wg_device_set_private_key(wg_device_t *dev,
    const uint8_t private_key[WG_KEY_LEN]);

wg_peer_t *wg_device_add_peer(wg_device_t *dev,
    const uint8_t public_key[WG_KEY_LEN], const uint8_t *psk /* or NULL */);
wg_peer_t *wg_device_find_peer(wg_device_t *dev,
    const uint8_t public_key[WG_KEY_LEN]);
void wg_device_remove_peer(wg_device_t *dev, wg_peer_t *peer);

/* family AF_INET or AF_INET6; addr in network byte order; -1 on error */
int wg_peer_add_allowed_ip(wg_peer_t *peer, int family, const void *addr,
    unsigned cidr);
void wg_peer_clear_allowed_ips(wg_peer_t *peer);
void wg_peer_set_endpoint(wg_peer_t *peer, const wg_endpoint_t *ep);
void wg_peer_set_keepalive(wg_peer_t *peer, unsigned seconds);
void wg_peer_set_data(wg_peer_t *peer, void *data);
void *wg_peer_data(wg_peer_t *peer);
void wg_peer_public_key(wg_peer_t *peer, uint8_t out[WG_KEY_LEN]);
void wg_peer_get_stats(wg_peer_t *peer, wg_peer_stats_t *st);

/* longest-prefix match of a destination; NULL if no peer routes it */
wg_peer_t *wg_device_route(wg_device_t *dev, int family, const void *addr);

/* a datagram arrived from `from`; buf may be modified in place */
wg_result_t wg_device_input(wg_device_t *dev, uint8_t *buf, size_t len,
    const wg_endpoint_t *from, uint64_t now);

/*
 * send one IP packet, routed by its destination address; queued (and a
 * handshake started) while the peer has no valid session
 */
wg_result_t wg_device_output(wg_device_t *dev, const uint8_t *pkt,
    size_t len, uint64_t now);

/* begin a handshake now if none is valid or in flight (e.g. on connect) */
void wg_peer_kick(wg_peer_t *peer, uint64_t now);

/*
 * run every timer that is due; returns the monotonic time of the next
 * deadline (the caller may call earlier, never needs to call later)
 */
uint64_t wg_device_tick(wg_device_t *dev, uint64_t now);

/* tell the device it is under load (cookie replies instead of handshakes) */
void wg_device_set_under_load(wg_device_t *dev, int on);

const wg_device_stats_t *wg_device_stats(wg_device_t *dev);
const char *wg_result_str(wg_result_t r);


#endif /* _WG_DEVICE_H_INCLUDED_ */
