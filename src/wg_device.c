/*
 * The WireGuard device: peers, sessions, the index table, and the receive
 * and send paths.  I/O free: datagrams and time come in through
 * wg_device_input(), wg_device_output() and wg_device_tick(), messages
 * leave through the caller's ops.
 */

#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wg_peer.h"


static wg_result_t wg_device_drop(wg_device_t *dev, wg_result_t r);
static uint64_t wg_device_realtime(wg_device_t *dev);
static int wg_expired(uint64_t birthdate, uint64_t age, uint64_t now);
static int wg_device_under_load(wg_device_t *dev, uint64_t now);
static size_t wg_endpoint_key(const wg_endpoint_t *ep, uint8_t key[18],
    int *family);

static uint32_t wg_index_insert(wg_device_t *dev, wg_index_entry_t *entry);
static void wg_index_replace(wg_device_t *dev, wg_index_entry_t *old,
    wg_index_entry_t *entry);
static void wg_index_remove(wg_device_t *dev, wg_index_entry_t *entry);
static wg_index_entry_t *wg_index_lookup(wg_device_t *dev, uint32_t index,
    unsigned types);

static wg_keypair_t *wg_keypair_create(wg_peer_t *peer,
    wg_noise_keys_t *keys, uint64_t now);
static void wg_keypair_destroy(wg_device_t *dev, wg_keypair_t *kp);
static int wg_keypair_can_send(wg_keypair_t *kp, uint64_t now);
static int wg_peer_begin_session(wg_peer_t *peer, uint64_t now);
static int wg_peer_received_with_keypair(wg_peer_t *peer, wg_keypair_t *kp);
static void wg_peer_set_endpoint_from(wg_peer_t *peer,
    const wg_endpoint_t *from);
static wg_handshake_t *wg_device_lookup_static(void *ctx,
    const uint8_t public_key[WG_DH_LEN]);

static void wg_peer_encrypt_and_send(wg_peer_t *peer, wg_keypair_t *kp,
    const uint8_t *pkt, size_t len, uint64_t now);
static void wg_peer_send_staged(wg_peer_t *peer, uint64_t now);
static void wg_peer_keep_key_fresh_send(wg_peer_t *peer, uint64_t now);
static void wg_peer_keep_key_fresh_recv(wg_peer_t *peer, uint64_t now);
static void wg_peer_send_handshake_response(wg_peer_t *peer,
    const wg_endpoint_t *to, uint64_t now);

static wg_result_t wg_device_handshake_macs(wg_device_t *dev, uint8_t *buf,
    size_t len, uint32_t sender_index, const wg_endpoint_t *from,
    uint64_t now);
static wg_result_t wg_device_input_initiation(wg_device_t *dev,
    uint8_t *buf, size_t len, const wg_endpoint_t *from, uint64_t now);
static wg_result_t wg_device_input_response(wg_device_t *dev, uint8_t *buf,
    size_t len, const wg_endpoint_t *from, uint64_t now);
static wg_result_t wg_device_input_cookie(wg_device_t *dev, uint8_t *buf,
    size_t len, uint64_t now);
static wg_result_t wg_device_input_data(wg_device_t *dev, uint8_t *buf,
    size_t len, const wg_endpoint_t *from, uint64_t now);
static int wg_inner_source(const uint8_t *pkt, size_t len, int *family,
    const uint8_t **src, size_t *total);


static const char  *wg_result_names[WG_DROP_MAX] = {
    "ok",
    "malformed",
    "mac1 invalid",
    "cookie sent",
    "rate limited",
    "handshake invalid",
    "no session",
    "decryption failed",
    "replayed",
    "key expired",
    "source not allowed",
    "inner packet malformed",
    "no peer",
    "no endpoint",
    "queue full"
};


/* device */

wg_device_t *
wg_device_create(const uint8_t private_key[WG_KEY_LEN],
    const wg_device_ops_t *ops)
{
    wg_device_t  *dev;

    if (wg_crypto_init() != 0 || ops == NULL || ops->send == NULL
        || ops->recv == NULL)
    {
        return NULL;
    }

    dev = calloc(1, sizeof(wg_device_t));
    if (dev == NULL) {
        return NULL;
    }

    dev->ops = *ops;
    dev->mtu = WG_DEFAULT_MTU;

    wg_ratelimiter_init(&dev->ratelimiter);
    wg_allowedips_init(&dev->allowedips);

    wg_noise_static_set(&dev->static_identity, private_key);
    if (!dev->static_identity.has_identity) {
        free(dev);
        return NULL;
    }

    wg_cookie_checker_init(&dev->cookie_checker,
                           dev->static_identity.public_key);

    return dev;
}


void
wg_device_destroy(wg_device_t *dev)
{
    if (dev == NULL) {
        return;
    }

    while (dev->peers != NULL) {
        wg_device_remove_peer(dev, dev->peers);
    }

    wg_ratelimiter_free(&dev->ratelimiter);
    wg_allowedips_free(&dev->allowedips);
    wg_wipe(dev, sizeof(wg_device_t));
    free(dev);
}


void
wg_device_public_key(wg_device_t *dev, uint8_t out[WG_KEY_LEN])
{
    memcpy(out, dev->static_identity.public_key, WG_KEY_LEN);
}


void
wg_device_set_private_key(wg_device_t *dev,
    const uint8_t private_key[WG_KEY_LEN])
{
    wg_peer_t          *peer;
    wg_noise_static_t   st;

    wg_noise_static_set(&st, private_key);

    if (!st.has_identity
        || wg_memcmp_ct(st.private_key, dev->static_identity.private_key,
                        WG_KEY_LEN) == 0)
    {
        wg_wipe(&st, sizeof(st));
        return;
    }

    dev->static_identity = st;
    wg_wipe(&st, sizeof(st));

    wg_cookie_checker_init(&dev->cookie_checker,
                           dev->static_identity.public_key);

    /* every session was authenticated by the old key: start over */
    for (peer = dev->peers; peer != NULL; peer = peer->next) {
        wg_peer_clear_keys(peer);
        wg_noise_handshake_precompute(&peer->handshake,
                                      &dev->static_identity);
    }
}


void
wg_device_set_mtu(wg_device_t *dev, unsigned mtu)
{
    dev->mtu = mtu > WG_MAX_PACKET ? WG_MAX_PACKET : mtu;
}


void
wg_device_set_under_load(wg_device_t *dev, int on)
{
    dev->under_load_forced = on;
}


const wg_device_stats_t *
wg_device_stats(wg_device_t *dev)
{
    return &dev->stats;
}


const char *
wg_result_str(wg_result_t r)
{
    if ((unsigned) r >= WG_DROP_MAX) {
        return "unknown";
    }

    return wg_result_names[r];
}


static wg_result_t
wg_device_drop(wg_device_t *dev, wg_result_t r)
{
    dev->stats.drops[r]++;
    return r;
}


static uint64_t
wg_device_realtime(wg_device_t *dev)
{
    struct timespec  ts;

    if (dev->ops.realtime != NULL) {
        return dev->ops.realtime(dev->ops.ctx);
    }

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * WG_NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}


static int
wg_expired(uint64_t birthdate, uint64_t age, uint64_t now)
{
    /* a clock going backwards expires nothing */
    return now >= birthdate && now - birthdate >= age;
}


/*
 * Under load when told so, or when handshake messages arrive faster than
 * WG_UNDER_LOAD_HANDSHAKES per second; the state sticks for a second so
 * that a flood cannot toggle it.
 */
static int
wg_device_under_load(wg_device_t *dev, uint64_t now)
{
    if (now < dev->load_window_start
        || now - dev->load_window_start >= WG_NSEC_PER_SEC)
    {
        dev->load_window_start = now;
        dev->load_count = 0;
    }

    if (++dev->load_count > WG_UNDER_LOAD_HANDSHAKES) {
        dev->under_load_until = now + WG_UNDER_LOAD_STICKY;
    }

    return dev->under_load_forced || now < dev->under_load_until;
}


/* the bytes a cookie is bound to: address then port */
static size_t
wg_endpoint_key(const wg_endpoint_t *ep, uint8_t key[18], int *family)
{
    if (ep == NULL) {
        return 0;
    }

    if (ep->addr.sa.sa_family == AF_INET
        && ep->len >= sizeof(struct sockaddr_in))
    {
        *family = AF_INET;
        memcpy(key, &ep->addr.in.sin_addr, 4);
        memcpy(key + 4, &ep->addr.in.sin_port, 2);
        return 6;
    }

    if (ep->addr.sa.sa_family == AF_INET6
        && ep->len >= sizeof(struct sockaddr_in6))
    {
        *family = AF_INET6;
        memcpy(key, &ep->addr.in6.sin6_addr, 16);
        memcpy(key + 16, &ep->addr.in6.sin6_port, 2);
        return 18;
    }

    return 0;
}


/* index table: our 32-bit session indices, random so they leak nothing */

static uint32_t
wg_index_insert(wg_device_t *dev, wg_index_entry_t *entry)
{
    uint32_t  index, b;

    do {
        index = wg_random_u32();
    } while (index == 0 || wg_index_lookup(dev, index, ~0U) != NULL);

    b = index % WG_INDEX_BUCKETS;
    entry->index = index;
    entry->next = dev->index[b];
    entry->hashed = 1;
    dev->index[b] = entry;

    return index;
}


static void
wg_index_remove(wg_device_t *dev, wg_index_entry_t *entry)
{
    wg_index_entry_t  **pp;

    if (!entry->hashed) {
        return;
    }

    for (pp = &dev->index[entry->index % WG_INDEX_BUCKETS];
         *pp != NULL;
         pp = &(*pp)->next)
    {
        if (*pp == entry) {
            *pp = entry->next;
            break;
        }
    }

    entry->next = NULL;
    entry->hashed = 0;
}


/* the session takes over the index its handshake was known by */
static void
wg_index_replace(wg_device_t *dev, wg_index_entry_t *old,
    wg_index_entry_t *entry)
{
    wg_index_entry_t  **pp;

    for (pp = &dev->index[old->index % WG_INDEX_BUCKETS];
         *pp != NULL;
         pp = &(*pp)->next)
    {
        if (*pp == old) {
            entry->index = old->index;
            entry->next = old->next;
            entry->hashed = 1;
            *pp = entry;
            old->next = NULL;
            old->hashed = 0;
            return;
        }
    }
}


static wg_index_entry_t *
wg_index_lookup(wg_device_t *dev, uint32_t index, unsigned types)
{
    wg_index_entry_t  *e;

    for (e = dev->index[index % WG_INDEX_BUCKETS]; e != NULL; e = e->next) {
        if (e->index == index && (e->type & types)) {
            return e;
        }
    }

    return NULL;
}


/* peers */

wg_peer_t *
wg_device_add_peer(wg_device_t *dev, const uint8_t public_key[WG_KEY_LEN],
    const uint8_t *psk)
{
    wg_peer_t  *peer;

    if (wg_device_find_peer(dev, public_key) != NULL) {
        return NULL;
    }

    peer = calloc(1, sizeof(wg_peer_t));
    if (peer == NULL) {
        return NULL;
    }

    peer->dev = dev;
    memcpy(peer->public_key, public_key, WG_KEY_LEN);
    wg_noise_handshake_init(&peer->handshake, &dev->static_identity,
                            public_key, psk);
    wg_cookie_maker_init(&peer->cookie, public_key);

    peer->handshake_entry.peer = peer;
    peer->handshake_entry.type = WG_INDEX_HANDSHAKE;

    peer->next = dev->peers;
    if (dev->peers != NULL) {
        dev->peers->prev = peer;
    }
    dev->peers = peer;

    return peer;
}


wg_peer_t *
wg_device_find_peer(wg_device_t *dev, const uint8_t public_key[WG_KEY_LEN])
{
    wg_peer_t  *peer;

    for (peer = dev->peers; peer != NULL; peer = peer->next) {
        if (memcmp(peer->public_key, public_key, WG_KEY_LEN) == 0) {
            return peer;
        }
    }

    return NULL;
}


void
wg_device_remove_peer(wg_device_t *dev, wg_peer_t *peer)
{
    wg_peer_clear_keys(peer);
    wg_peer_purge_staged(peer);
    wg_timers_stop(peer);
    wg_allowedips_remove_by_peer(&dev->allowedips, peer);

    if (peer->prev != NULL) {
        peer->prev->next = peer->next;

    } else {
        dev->peers = peer->next;
    }

    if (peer->next != NULL) {
        peer->next->prev = peer->prev;
    }

    wg_noise_handshake_wipe(&peer->handshake);
    wg_cookie_maker_wipe(&peer->cookie);
    wg_wipe(peer, sizeof(wg_peer_t));
    free(peer);
}


static wg_handshake_t *
wg_device_lookup_static(void *ctx, const uint8_t public_key[WG_DH_LEN])
{
    wg_peer_t  *peer;

    peer = wg_device_find_peer(ctx, public_key);

    return peer != NULL ? &peer->handshake : NULL;
}


int
wg_peer_add_allowed_ip(wg_peer_t *peer, int family, const void *addr,
    unsigned cidr)
{
    return wg_allowedips_insert(&peer->dev->allowedips, family, addr, cidr,
                                peer);
}


void
wg_peer_clear_allowed_ips(wg_peer_t *peer)
{
    wg_allowedips_remove_by_peer(&peer->dev->allowedips, peer);
}


void
wg_peer_set_endpoint(wg_peer_t *peer, const wg_endpoint_t *ep)
{
    if (ep == NULL || ep->len > sizeof(ep->addr)) {
        memset(&peer->endpoint, 0, sizeof(wg_endpoint_t));
        return;
    }

    peer->endpoint = *ep;
}


void
wg_peer_set_keepalive(wg_peer_t *peer, unsigned seconds)
{
    peer->persistent_keepalive_interval = seconds;

    /* the first keepalive goes out at the next tick, opening the path */
    peer->timer_persistent_keepalive = seconds != 0 ? peer->dev->now : 0;

    if (seconds != 0 && peer->timer_persistent_keepalive == 0) {
        peer->timer_persistent_keepalive = 1;
    }
}


void
wg_peer_set_data(wg_peer_t *peer, void *data)
{
    peer->data = data;
}


void *
wg_peer_data(wg_peer_t *peer)
{
    return peer->data;
}


void
wg_peer_public_key(wg_peer_t *peer, uint8_t out[WG_KEY_LEN])
{
    memcpy(out, peer->public_key, WG_KEY_LEN);
}


void
wg_peer_get_stats(wg_peer_t *peer, wg_peer_stats_t *st)
{
    memset(st, 0, sizeof(wg_peer_stats_t));
    st->rx_bytes = peer->rx_bytes;
    st->tx_bytes = peer->tx_bytes;
    st->last_handshake_ns = peer->last_handshake;
    st->has_session = wg_keypair_can_send(peer->keypair_current,
                                          peer->dev->now);
    st->endpoint = peer->endpoint;
}


wg_peer_t *
wg_device_route(wg_device_t *dev, int family, const void *addr)
{
    return wg_allowedips_lookup(&dev->allowedips, family, addr);
}


void
wg_peer_event(wg_peer_t *peer, wg_event_t ev)
{
    wg_device_t  *dev;

    dev = peer->dev;

    if (dev->ops.event != NULL) {
        dev->ops.event(dev->ops.ctx, peer, ev);
    }
}


static void
wg_peer_set_endpoint_from(wg_peer_t *peer, const wg_endpoint_t *from)
{
    wg_endpoint_t  ep;

    /* only called for authenticated packets: this is roaming */
    memset(&ep, 0, sizeof(ep));

    if (from->addr.sa.sa_family == AF_INET
        && from->len >= sizeof(struct sockaddr_in))
    {
        ep.len = sizeof(struct sockaddr_in);
        ep.addr.in.sin_family = AF_INET;
        ep.addr.in.sin_port = from->addr.in.sin_port;
        ep.addr.in.sin_addr = from->addr.in.sin_addr;

    } else if (from->addr.sa.sa_family == AF_INET6
               && from->len >= sizeof(struct sockaddr_in6))
    {
        ep.len = sizeof(struct sockaddr_in6);
        ep.addr.in6.sin6_family = AF_INET6;
        ep.addr.in6.sin6_port = from->addr.in6.sin6_port;
        ep.addr.in6.sin6_addr = from->addr.in6.sin6_addr;
        ep.addr.in6.sin6_scope_id = from->addr.in6.sin6_scope_id;

    } else {
        return;
    }

    if (peer->endpoint.len == ep.len
        && memcmp(&peer->endpoint.addr, &ep.addr, ep.len) == 0)
    {
        return;
    }

    peer->endpoint = ep;
    wg_peer_event(peer, WG_EV_ENDPOINT_CHANGED);
}


/* keypairs */

static wg_keypair_t *
wg_keypair_create(wg_peer_t *peer, wg_noise_keys_t *keys, uint64_t now)
{
    wg_keypair_t  *kp;

    kp = calloc(1, sizeof(wg_keypair_t));
    if (kp == NULL) {
        return NULL;
    }

    kp->entry.peer = peer;
    kp->entry.type = WG_INDEX_KEYPAIR;
    kp->keys = *keys;
    kp->birthdate = now;
    kp->sending_valid = 1;
    kp->receiving_valid = 1;
    wg_replay_init(&kp->replay);

    return kp;
}


static void
wg_keypair_destroy(wg_device_t *dev, wg_keypair_t *kp)
{
    if (kp == NULL) {
        return;
    }

    wg_index_remove(dev, &kp->entry);
    wg_wipe(kp, sizeof(wg_keypair_t));
    free(kp);
}


static int
wg_keypair_can_send(wg_keypair_t *kp, uint64_t now)
{
    return kp != NULL && kp->sending_valid
           && !wg_expired(kp->birthdate, WG_REJECT_AFTER_TIME, now)
           && kp->send_counter < WG_REJECT_AFTER_MESSAGES;
}


void
wg_peer_clear_keys(wg_peer_t *peer)
{
    wg_device_t  *dev;

    dev = peer->dev;

    wg_keypair_destroy(dev, peer->keypair_previous);
    wg_keypair_destroy(dev, peer->keypair_current);
    wg_keypair_destroy(dev, peer->keypair_next);
    peer->keypair_previous = NULL;
    peer->keypair_current = NULL;
    peer->keypair_next = NULL;

    wg_index_remove(dev, &peer->handshake_entry);
    wg_noise_handshake_clear(&peer->handshake);
}


/*
 * The initiator may use a new session at once.  The responder may not: it
 * keeps it as "next" until the initiator proves it has it by sending data,
 * and meanwhile keeps sending with the current one.
 */
static int
wg_peer_begin_session(wg_peer_t *peer, uint64_t now)
{
    wg_device_t      *dev;
    wg_keypair_t     *kp;
    wg_noise_keys_t   keys;

    dev = peer->dev;

    if (wg_noise_begin_session(&peer->handshake, &keys) != 0) {
        return -1;
    }

    kp = wg_keypair_create(peer, &keys, now);
    wg_wipe(&keys, sizeof(keys));

    if (kp == NULL) {
        wg_index_remove(dev, &peer->handshake_entry);
        return -1;
    }

    wg_index_replace(dev, &peer->handshake_entry, &kp->entry);

    if (kp->keys.is_initiator) {
        if (peer->keypair_next != NULL) {
            wg_keypair_destroy(dev, peer->keypair_previous);
            peer->keypair_previous = peer->keypair_next;
            peer->keypair_next = NULL;
            wg_keypair_destroy(dev, peer->keypair_current);

        } else {
            wg_keypair_destroy(dev, peer->keypair_previous);
            peer->keypair_previous = peer->keypair_current;
        }

        peer->keypair_current = kp;

    } else {
        wg_keypair_destroy(dev, peer->keypair_next);
        peer->keypair_next = kp;
        wg_keypair_destroy(dev, peer->keypair_previous);
        peer->keypair_previous = NULL;
    }

    return 0;
}


/* 1 if this packet confirmed the responder's next session */
static int
wg_peer_received_with_keypair(wg_peer_t *peer, wg_keypair_t *kp)
{
    if (kp != peer->keypair_next) {
        return 0;
    }

    wg_keypair_destroy(peer->dev, peer->keypair_previous);
    peer->keypair_previous = peer->keypair_current;
    peer->keypair_current = kp;
    peer->keypair_next = NULL;

    return 1;
}


/* send path */

void
wg_peer_purge_staged(wg_peer_t *peer)
{
    wg_staged_t  *s;

    while (peer->staged_count != 0) {
        s = &peer->staged[peer->staged_head];
        wg_wipe(s->data, s->len);
        free(s->data);
        s->data = NULL;
        peer->staged_head = (peer->staged_head + 1) % WG_MAX_STAGED_PACKETS;
        peer->staged_count--;
    }

    peer->staged_head = 0;
}


static void
wg_peer_encrypt_and_send(wg_peer_t *peer, wg_keypair_t *kp,
    const uint8_t *pkt, size_t len, uint64_t now)
{
    size_t          padded, pad, total;
    uint8_t        *out;
    wg_device_t    *dev;
    wg_msg_data_t  *hdr;

    dev = peer->dev;

    /* hide the exact length, but never make the packet exceed the MTU */
    padded = (len + 15) & ~(size_t) 15;

    if (padded > dev->mtu) {
        padded = dev->mtu;
    }

    pad = padded > len ? padded - len : 0;
    total = WG_MSG_DATA_HEADER_LEN + len + pad + WG_AEAD_TAG_LEN;

    out = NULL;

    if (dev->ops.buffer != NULL) {
        out = dev->ops.buffer(dev->ops.ctx, &peer->endpoint, total);
    }

    if (out == NULL) {
        out = dev->scratch;
    }

    hdr = (wg_msg_data_t *) out;
    hdr->type = htole32(WG_MSG_DATA);
    hdr->receiver_index = htole32(kp->keys.remote_index);
    hdr->counter = htole64(kp->send_counter);

    if (wg_aead_seal(out + WG_MSG_DATA_HEADER_LEN, pkt, len, pad,
                     NULL, 0, kp->send_counter, kp->keys.send_key)
        != 0)
    {
        return;
    }

    kp->send_counter++;

    dev->ops.send(dev->ops.ctx, peer, &peer->endpoint, out, total);

    dev->stats.tx_packets++;
    dev->stats.tx_bytes += len;
    peer->tx_bytes += total;

    wg_timers_any_authenticated_packet_traversal(peer, now);
    wg_timers_any_authenticated_packet_sent(peer);

    if (len != 0) {
        wg_timers_data_sent(peer, now);
    }
}


static void
wg_peer_send_staged(wg_peer_t *peer, uint64_t now)
{
    wg_staged_t   *s;
    wg_keypair_t  *kp;

    kp = peer->keypair_current;

    if (!wg_keypair_can_send(kp, now)) {
        wg_peer_send_handshake_initiation(peer, 0, now);
        return;
    }

    while (peer->staged_count != 0) {
        s = &peer->staged[peer->staged_head];
        peer->staged_head = (peer->staged_head + 1) % WG_MAX_STAGED_PACKETS;
        peer->staged_count--;

        if (wg_keypair_can_send(kp, now)) {
            wg_peer_encrypt_and_send(peer, kp, s->data, s->len, now);
        }

        wg_wipe(s->data, s->len);
        free(s->data);
        s->data = NULL;
    }

    peer->staged_head = 0;

    wg_peer_keep_key_fresh_send(peer, now);
}


static void
wg_peer_keep_key_fresh_send(wg_peer_t *peer, uint64_t now)
{
    wg_keypair_t  *kp;

    kp = peer->keypair_current;

    if (kp != NULL && kp->sending_valid
        && (kp->send_counter > WG_REKEY_AFTER_MESSAGES
            || (kp->keys.is_initiator
                && wg_expired(kp->birthdate, WG_REKEY_AFTER_TIME, now))))
    {
        wg_peer_send_handshake_initiation(peer, 0, now);
    }
}


/*
 * The initiator renews a session that will soon be rejected even if it has
 * nothing to send: otherwise a one-way flow from the responder would stall
 * at REJECT_AFTER_TIME.
 */
static void
wg_peer_keep_key_fresh_recv(wg_peer_t *peer, uint64_t now)
{
    wg_keypair_t  *kp;

    kp = peer->keypair_current;

    if (!peer->sent_lastminute_handshake && kp != NULL && kp->sending_valid
        && kp->keys.is_initiator
        && wg_expired(kp->birthdate, WG_REJECT_AFTER_TIME
                                     - WG_KEEPALIVE_TIMEOUT
                                     - WG_REKEY_TIMEOUT, now))
    {
        peer->sent_lastminute_handshake = 1;
        wg_peer_send_handshake_initiation(peer, 0, now);
    }
}


void
wg_peer_send_keepalive(wg_peer_t *peer, uint64_t now)
{
    if (peer->staged_count != 0) {
        wg_peer_send_staged(peer, now);
        return;
    }

    if (!wg_keypair_can_send(peer->keypair_current, now)) {
        wg_peer_send_handshake_initiation(peer, 0, now);
        return;
    }

    wg_peer_encrypt_and_send(peer, peer->keypair_current, NULL, 0, now);
}


void
wg_peer_send_handshake_initiation(wg_peer_t *peer, int is_retry,
    uint64_t now)
{
    uint32_t              index;
    wg_device_t          *dev;
    wg_msg_initiation_t   msg;

    dev = peer->dev;

    if (!is_retry) {
        peer->timer_handshake_attempts = 0;
    }

    /* at most one initiation per REKEY_TIMEOUT, whoever asks */
    if (peer->has_sent_handshake
        && !wg_expired(peer->last_sent_handshake, WG_REKEY_TIMEOUT, now)
        && now >= peer->last_sent_handshake)
    {
        return;
    }

    if (peer->endpoint.len == 0) {
        return;
    }

    peer->last_sent_handshake = now;
    peer->has_sent_handshake = 1;

    wg_index_remove(dev, &peer->handshake_entry);
    index = wg_index_insert(dev, &peer->handshake_entry);

    if (wg_noise_create_initiation(&peer->handshake, &dev->static_identity,
                                   &msg, index, wg_device_realtime(dev))
        != 0)
    {
        wg_index_remove(dev, &peer->handshake_entry);
        return;
    }

    wg_cookie_add_macs(&peer->cookie, (uint8_t *) &msg, sizeof(msg), now);

    wg_timers_any_authenticated_packet_traversal(peer, now);
    wg_timers_any_authenticated_packet_sent(peer);

    dev->ops.send(dev->ops.ctx, peer, &peer->endpoint, (uint8_t *) &msg,
                  sizeof(msg));

    wg_timers_handshake_initiated(peer, now);
    wg_peer_event(peer, WG_EV_HANDSHAKE_SENT);
}


static void
wg_peer_send_handshake_response(wg_peer_t *peer, const wg_endpoint_t *to,
    uint64_t now)
{
    uint32_t            index;
    wg_device_t        *dev;
    wg_msg_response_t   msg;

    dev = peer->dev;

    wg_index_remove(dev, &peer->handshake_entry);
    index = wg_index_insert(dev, &peer->handshake_entry);

    if (wg_noise_create_response(&peer->handshake, &dev->static_identity,
                                 &msg, index)
        != 0)
    {
        wg_index_remove(dev, &peer->handshake_entry);
        return;
    }

    wg_cookie_add_macs(&peer->cookie, (uint8_t *) &msg, sizeof(msg), now);

    if (wg_peer_begin_session(peer, now) != 0) {
        return;
    }

    wg_timers_session_derived(peer, now);
    wg_timers_any_authenticated_packet_traversal(peer, now);
    wg_timers_any_authenticated_packet_sent(peer);

    dev->ops.send(dev->ops.ctx, peer, to, (uint8_t *) &msg, sizeof(msg));
}


wg_result_t
wg_device_output(wg_device_t *dev, const uint8_t *pkt, size_t len,
    uint64_t now)
{
    int           family;
    uint8_t      *copy;
    unsigned      tail;
    wg_peer_t    *peer;
    const void   *dst;

    dev->now = now;

    if (pkt == NULL || len == 0 || len > WG_MAX_PACKET) {
        return wg_device_drop(dev, WG_DROP_INNER_MALFORMED);
    }

    if ((pkt[0] >> 4) == 4 && len >= 20) {
        family = AF_INET;
        dst = pkt + 16;

    } else if ((pkt[0] >> 4) == 6 && len >= 40) {
        family = AF_INET6;
        dst = pkt + 24;

    } else {
        return wg_device_drop(dev, WG_DROP_INNER_MALFORMED);
    }

    peer = wg_allowedips_lookup(&dev->allowedips, family, dst);
    if (peer == NULL) {
        return wg_device_drop(dev, WG_DROP_NO_PEER);
    }

    if (peer->endpoint.len == 0) {
        return wg_device_drop(dev, WG_DROP_NO_ENDPOINT);
    }

    /* the hot path: encrypt straight from the caller's buffer */
    if (peer->staged_count == 0
        && wg_keypair_can_send(peer->keypair_current, now))
    {
        wg_peer_encrypt_and_send(peer, peer->keypair_current, pkt, len, now);
        wg_peer_keep_key_fresh_send(peer, now);
        return WG_OK;
    }

    if (peer->staged_count == WG_MAX_STAGED_PACKETS) {
        wg_peer_send_staged(peer, now);
        return wg_device_drop(dev, WG_DROP_QUEUE_FULL);
    }

    copy = malloc(len);
    if (copy == NULL) {
        return wg_device_drop(dev, WG_DROP_QUEUE_FULL);
    }

    memcpy(copy, pkt, len);
    tail = (peer->staged_head + peer->staged_count) % WG_MAX_STAGED_PACKETS;
    peer->staged[tail].data = copy;
    peer->staged[tail].len = len;
    peer->staged_count++;

    wg_peer_send_staged(peer, now);

    return WG_OK;
}


void
wg_peer_kick(wg_peer_t *peer, uint64_t now)
{
    peer->dev->now = now;

    if (wg_keypair_can_send(peer->keypair_current, now)
        || peer->handshake.state == WG_HANDSHAKE_CREATED_INITIATION)
    {
        return;
    }

    wg_peer_send_handshake_initiation(peer, 0, now);
}


uint64_t
wg_device_tick(wg_device_t *dev, uint64_t now)
{
    uint64_t    next, t;
    wg_peer_t  *peer, *np;

    dev->now = now;

    /* idle wakeups are cheap; they also bound the effect of a lost call */
    next = now + 60 * WG_NSEC_PER_SEC;

    for (peer = dev->peers; peer != NULL; peer = np) {
        np = peer->next;
        t = wg_timers_run(peer, now);

        if (t < next) {
            next = t;
        }
    }

    t = wg_ratelimiter_gc(&dev->ratelimiter, now);

    if (t < next) {
        next = t;
    }

    return next;
}


/* receive path */

wg_result_t
wg_device_input(wg_device_t *dev, uint8_t *buf, size_t len,
    const wg_endpoint_t *from, uint64_t now)
{
    dev->now = now;

    if (buf == NULL || len < 4 || buf[1] != 0 || buf[2] != 0 || buf[3] != 0)
    {
        return wg_device_drop(dev, WG_DROP_MALFORMED);
    }

    switch (buf[0]) {

    case WG_MSG_INITIATION:
        if (len != WG_MSG_INITIATION_LEN) {
            break;
        }

        return wg_device_input_initiation(dev, buf, len, from, now);

    case WG_MSG_RESPONSE:
        if (len != WG_MSG_RESPONSE_LEN) {
            break;
        }

        return wg_device_input_response(dev, buf, len, from, now);

    case WG_MSG_COOKIE:
        if (len != WG_MSG_COOKIE_LEN) {
            break;
        }

        return wg_device_input_cookie(dev, buf, len, now);

    case WG_MSG_DATA:
        if (len < WG_MSG_DATA_MIN_LEN) {
            break;
        }

        return wg_device_input_data(dev, buf, len, from, now);
    }

    return wg_device_drop(dev, WG_DROP_MALFORMED);
}


/*
 * mac1 for every handshake message; under load also mac2 (else we answer
 * with a cookie and stop) and the per-source rate limit
 */
static wg_result_t
wg_device_handshake_macs(wg_device_t *dev, uint8_t *buf, size_t len,
    uint32_t sender_index, const wg_endpoint_t *from, uint64_t now)
{
    int                     family, under_load;
    size_t                  srclen;
    uint8_t                 src[18];
    wg_msg_cookie_t         reply;
    wg_cookie_mac_state_t   state;

    family = 0;
    srclen = wg_endpoint_key(from, src, &family);

    if (srclen == 0) {
        return wg_device_drop(dev, WG_DROP_MALFORMED);
    }

    under_load = wg_device_under_load(dev, now);

    state = wg_cookie_validate(&dev->cookie_checker, buf, len, src, srclen,
                               under_load, now);

    if (state == WG_COOKIE_MAC_INVALID) {
        return wg_device_drop(dev, WG_DROP_MAC1);
    }

    if (!under_load) {
        return WG_OK;
    }

    if (state != WG_COOKIE_MAC_VALID_WITH_COOKIE) {
        wg_cookie_create_reply(&dev->cookie_checker, &reply, buf, len,
                               sender_index, src, srclen, now);
        dev->ops.send(dev->ops.ctx, NULL, from, (uint8_t *) &reply,
                      sizeof(reply));
        return wg_device_drop(dev, WG_DROP_COOKIE_SENT);
    }

    if (!wg_ratelimiter_allow(&dev->ratelimiter, family, src, now)) {
        return wg_device_drop(dev, WG_DROP_RATELIMIT);
    }

    return WG_OK;
}


static wg_result_t
wg_device_input_initiation(wg_device_t *dev, uint8_t *buf, size_t len,
    const wg_endpoint_t *from, uint64_t now)
{
    wg_peer_t            *peer;
    wg_result_t           rc;
    wg_handshake_t       *hs;
    wg_msg_initiation_t   msg;

    memcpy(&msg, buf, sizeof(msg));

    rc = wg_device_handshake_macs(dev, buf, len, le32toh(msg.sender_index),
                                  from, now);
    if (rc != WG_OK) {
        return rc;
    }

    hs = wg_noise_consume_initiation(&dev->static_identity, &msg,
                                     wg_device_lookup_static, dev, now);
    if (hs == NULL) {
        return wg_device_drop(dev, WG_DROP_HANDSHAKE);
    }

    peer = (wg_peer_t *) ((uint8_t *) hs - offsetof(wg_peer_t, handshake));

    /* the handshake it replaced is gone, and so is its index */
    wg_index_remove(dev, &peer->handshake_entry);

    wg_peer_set_endpoint_from(peer, from);
    wg_timers_any_authenticated_packet_received(peer);
    wg_timers_any_authenticated_packet_traversal(peer, now);

    wg_peer_send_handshake_response(peer, &peer->endpoint, now);

    return WG_OK;
}


static wg_result_t
wg_device_input_response(wg_device_t *dev, uint8_t *buf, size_t len,
    const wg_endpoint_t *from, uint64_t now)
{
    wg_peer_t          *peer;
    wg_result_t         rc;
    wg_index_entry_t   *e;
    wg_msg_response_t   msg;

    memcpy(&msg, buf, sizeof(msg));

    rc = wg_device_handshake_macs(dev, buf, len, le32toh(msg.sender_index),
                                  from, now);
    if (rc != WG_OK) {
        return rc;
    }

    e = wg_index_lookup(dev, le32toh(msg.receiver_index), WG_INDEX_HANDSHAKE);
    if (e == NULL) {
        return wg_device_drop(dev, WG_DROP_HANDSHAKE);
    }

    peer = e->peer;

    if (wg_noise_consume_response(&peer->handshake, &dev->static_identity,
                                  &msg)
        != 0)
    {
        return wg_device_drop(dev, WG_DROP_HANDSHAKE);
    }

    wg_peer_set_endpoint_from(peer, from);
    wg_timers_any_authenticated_packet_received(peer);
    wg_timers_any_authenticated_packet_traversal(peer, now);

    if (wg_peer_begin_session(peer, now) != 0) {
        return wg_device_drop(dev, WG_DROP_HANDSHAKE);
    }

    wg_timers_session_derived(peer, now);
    wg_timers_handshake_complete(peer, now);
    wg_peer_event(peer, WG_EV_HANDSHAKE_DONE);

    /* confirms the session to the responder, with data if we have any */
    wg_peer_send_keepalive(peer, now);

    return WG_OK;
}


static wg_result_t
wg_device_input_cookie(wg_device_t *dev, uint8_t *buf, size_t len,
    uint64_t now)
{
    wg_index_entry_t  *e;
    wg_msg_cookie_t    msg;

    (void) len;

    memcpy(&msg, buf, sizeof(msg));

    e = wg_index_lookup(dev, le32toh(msg.receiver_index),
                        WG_INDEX_HANDSHAKE | WG_INDEX_KEYPAIR);
    if (e == NULL) {
        return wg_device_drop(dev, WG_DROP_HANDSHAKE);
    }

    if (wg_cookie_consume_reply(&e->peer->cookie, &msg, now) != 0) {
        return wg_device_drop(dev, WG_DROP_HANDSHAKE);
    }

    return WG_OK;
}


static int
wg_inner_source(const uint8_t *pkt, size_t len, int *family,
    const uint8_t **src, size_t *total)
{
    size_t  n;

    if (len >= 20 && (pkt[0] >> 4) == 4) {
        n = ((size_t) pkt[2] << 8) | pkt[3];

        if (n < 20 || n > len || (size_t) (pkt[0] & 0x0f) * 4 < 20) {
            return -1;
        }

        *family = AF_INET;
        *src = pkt + 12;
        *total = n;
        return 0;
    }

    if (len >= 40 && (pkt[0] >> 4) == 6) {
        n = 40 + (((size_t) pkt[4] << 8) | pkt[5]);

        if (n > len) {
            return -1;
        }

        *family = AF_INET6;
        *src = pkt + 8;
        *total = n;
        return 0;
    }

    return -1;
}


static wg_result_t
wg_device_input_data(wg_device_t *dev, uint8_t *buf, size_t len,
    const wg_endpoint_t *from, uint64_t now)
{
    int                family;
    size_t             plen, total;
    uint8_t           *plain;
    uint64_t           counter;
    wg_peer_t         *peer;
    wg_keypair_t      *kp;
    const uint8_t     *src;
    wg_msg_data_t      hdr;
    wg_index_entry_t  *e;

    memcpy(&hdr, buf, sizeof(hdr));

    e = wg_index_lookup(dev, le32toh(hdr.receiver_index), WG_INDEX_KEYPAIR);
    if (e == NULL) {
        return wg_device_drop(dev, WG_DROP_NO_SESSION);
    }

    kp = (wg_keypair_t *) e;
    peer = e->peer;
    counter = le64toh(hdr.counter);

    if (!kp->receiving_valid
        || wg_expired(kp->birthdate, WG_REJECT_AFTER_TIME, now)
        || kp->replay.greatest >= WG_REJECT_AFTER_MESSAGES)
    {
        kp->receiving_valid = 0;
        return wg_device_drop(dev, WG_DROP_KEY_EXPIRED);
    }

    plain = buf + WG_MSG_DATA_HEADER_LEN;
    plen = len - WG_MSG_DATA_HEADER_LEN - WG_AEAD_TAG_LEN;

    if (wg_aead_open(plain, plain, plen + WG_AEAD_TAG_LEN, NULL, 0, counter,
                     kp->keys.recv_key)
        != 0)
    {
        return wg_device_drop(dev, WG_DROP_DECRYPT);
    }

    /* only an authentic counter may move the window */
    if (wg_replay_check(&kp->replay, counter, WG_REJECT_AFTER_MESSAGES) != 0)
    {
        return wg_device_drop(dev, WG_DROP_REPLAY);
    }

    if (wg_peer_received_with_keypair(peer, kp)) {
        wg_timers_handshake_complete(peer, now);
        wg_peer_event(peer, WG_EV_HANDSHAKE_DONE);
        wg_peer_send_staged(peer, now);
    }

    if (from != NULL) {
        wg_peer_set_endpoint_from(peer, from);
    }

    peer->rx_bytes += len;

    wg_peer_keep_key_fresh_recv(peer, now);
    wg_timers_any_authenticated_packet_received(peer);
    wg_timers_any_authenticated_packet_traversal(peer, now);

    if (plen == 0) {
        /* a keepalive: it did its job by arriving */
        return WG_OK;
    }

    wg_timers_data_received(peer, now);

    if (wg_inner_source(plain, plen, &family, &src, &total) != 0) {
        return wg_device_drop(dev, WG_DROP_INNER_MALFORMED);
    }

    if (wg_allowedips_lookup(&dev->allowedips, family, src) != peer) {
        return wg_device_drop(dev, WG_DROP_ALLOWED_IPS);
    }

    dev->stats.rx_packets++;
    dev->stats.rx_bytes += total;

    dev->ops.recv(dev->ops.ctx, peer, plain, total);

    return WG_OK;
}
