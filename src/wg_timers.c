/*
 * Per-peer timers.
 *
 * retransmit_handshake: no response to our initiation within
 *     REKEY_TIMEOUT + jitter: send it again, until REKEY_ATTEMPT_TIME.
 * send_keepalive: we received data and sent nothing back for
 *     KEEPALIVE_TIMEOUT: send an empty packet so the peer knows we live.
 * new_handshake: we sent data and heard nothing for KEEPALIVE_TIMEOUT +
 *     REKEY_TIMEOUT + jitter: the session may be dead, start a new one.
 * zero_key_material: nothing new for 3 * REJECT_AFTER_TIME: forget keys.
 * persistent_keepalive: nothing passed for the configured interval.
 */

#include "wg_peer.h"
#include "wg_timers.h"


static uint64_t wg_timers_jitter(void);
static void wg_timers_expired_retransmit_handshake(wg_peer_t *peer,
    uint64_t now);
static void wg_timers_expired_send_keepalive(wg_peer_t *peer, uint64_t now);
static void wg_timers_expired_new_handshake(wg_peer_t *peer, uint64_t now);
static void wg_timers_expired_zero_key_material(wg_peer_t *peer);
static void wg_timers_expired_persistent_keepalive(wg_peer_t *peer,
    uint64_t now);


static uint64_t
wg_timers_jitter(void)
{
    /* spreads the handshakes of many peers started at the same moment */
    return (uint64_t) wg_random_uniform(WG_REKEY_TIMEOUT_JITTER_MAX
                                        / WG_NSEC_PER_MSEC + 1)
           * WG_NSEC_PER_MSEC;
}


void
wg_timers_stop(wg_peer_t *peer)
{
    peer->timer_retransmit_handshake = 0;
    peer->timer_send_keepalive = 0;
    peer->timer_new_handshake = 0;
    peer->timer_zero_key_material = 0;
    peer->timer_persistent_keepalive = 0;
}


void
wg_timers_data_sent(wg_peer_t *peer, uint64_t now)
{
    if (peer->timer_new_handshake == 0) {
        peer->timer_new_handshake = now + WG_KEEPALIVE_TIMEOUT
                                    + WG_REKEY_TIMEOUT + wg_timers_jitter();
    }
}


void
wg_timers_data_received(wg_peer_t *peer, uint64_t now)
{
    if (peer->timer_send_keepalive == 0) {
        peer->timer_send_keepalive = now + WG_KEEPALIVE_TIMEOUT;

    } else {
        peer->timer_need_another_keepalive = 1;
    }
}


void
wg_timers_any_authenticated_packet_sent(wg_peer_t *peer)
{
    /* whatever we sent already told the peer we are alive */
    peer->timer_send_keepalive = 0;
}


void
wg_timers_any_authenticated_packet_received(wg_peer_t *peer)
{
    peer->timer_new_handshake = 0;
}


void
wg_timers_any_authenticated_packet_traversal(wg_peer_t *peer, uint64_t now)
{
    if (peer->persistent_keepalive_interval != 0) {
        peer->timer_persistent_keepalive =
            now + peer->persistent_keepalive_interval * WG_NSEC_PER_SEC;
    }
}


void
wg_timers_handshake_initiated(wg_peer_t *peer, uint64_t now)
{
    peer->timer_retransmit_handshake = now + WG_REKEY_TIMEOUT
                                       + wg_timers_jitter();
}


void
wg_timers_handshake_complete(wg_peer_t *peer, uint64_t now)
{
    peer->timer_retransmit_handshake = 0;
    peer->timer_handshake_attempts = 0;
    peer->sent_lastminute_handshake = 0;
    peer->handshake_unanswered = 0;
    peer->last_handshake = now;
}


void
wg_timers_session_derived(wg_peer_t *peer, uint64_t now)
{
    peer->timer_zero_key_material = now + 3 * WG_REJECT_AFTER_TIME;
}


static void
wg_timers_expired_retransmit_handshake(wg_peer_t *peer, uint64_t now)
{
    /*
     * the first unanswered initiation of an episode is worth telling: a
     * peer that is down or unreachable otherwise shows only as an upstream
     * timing out, 90 s before the give-up says why
     */
    if (!peer->handshake_unanswered) {
        peer->handshake_unanswered = 1;
        wg_peer_event(peer, WG_EV_HANDSHAKE_UNANSWERED);
    }

    if (peer->timer_handshake_attempts > WG_MAX_TIMER_HANDSHAKES) {
        peer->handshake_unanswered = 0;

        /* given up: nothing queued may leave with a stale session */
        peer->timer_send_keepalive = 0;
        wg_peer_purge_staged(peer);

        if (peer->timer_zero_key_material == 0) {
            peer->timer_zero_key_material = now + 3 * WG_REJECT_AFTER_TIME;
        }

        wg_peer_event(peer, WG_EV_HANDSHAKE_FAILED);
        return;
    }

    peer->timer_handshake_attempts++;
    wg_peer_send_handshake_initiation(peer, 1, now);
}


static void
wg_timers_expired_send_keepalive(wg_peer_t *peer, uint64_t now)
{
    wg_peer_send_keepalive(peer, now);

    if (peer->timer_need_another_keepalive) {
        peer->timer_need_another_keepalive = 0;
        peer->timer_send_keepalive = now + WG_KEEPALIVE_TIMEOUT;
    }
}


static void
wg_timers_expired_new_handshake(wg_peer_t *peer, uint64_t now)
{
    wg_peer_send_handshake_initiation(peer, 0, now);
}


static void
wg_timers_expired_zero_key_material(wg_peer_t *peer)
{
    wg_peer_clear_keys(peer);
    wg_peer_event(peer, WG_EV_KEYS_ZEROED);
}


static void
wg_timers_expired_persistent_keepalive(wg_peer_t *peer, uint64_t now)
{
    if (peer->persistent_keepalive_interval != 0) {
        wg_peer_send_keepalive(peer, now);
    }
}


#define wg_timers_due(t, now)  ((t) != 0 && (t) <= (now))

uint64_t
wg_timers_run(wg_peer_t *peer, uint64_t now)
{
    uint64_t  next;

    /* each handler disarms its timer first: it may arm it again */

    if (wg_timers_due(peer->timer_retransmit_handshake, now)) {
        peer->timer_retransmit_handshake = 0;
        wg_timers_expired_retransmit_handshake(peer, now);
    }

    if (wg_timers_due(peer->timer_send_keepalive, now)) {
        peer->timer_send_keepalive = 0;
        wg_timers_expired_send_keepalive(peer, now);
    }

    if (wg_timers_due(peer->timer_new_handshake, now)) {
        peer->timer_new_handshake = 0;
        wg_timers_expired_new_handshake(peer, now);
    }

    if (wg_timers_due(peer->timer_zero_key_material, now)) {
        peer->timer_zero_key_material = 0;
        wg_timers_expired_zero_key_material(peer);
    }

    if (wg_timers_due(peer->timer_persistent_keepalive, now)) {
        peer->timer_persistent_keepalive = 0;
        wg_timers_expired_persistent_keepalive(peer, now);
    }

    next = UINT64_MAX;

#define wg_timers_min(t)  if ((t) != 0 && (t) < next) { next = (t); }

    wg_timers_min(peer->timer_retransmit_handshake);
    wg_timers_min(peer->timer_send_keepalive);
    wg_timers_min(peer->timer_new_handshake);
    wg_timers_min(peer->timer_zero_key_material);
    wg_timers_min(peer->timer_persistent_keepalive);

#undef wg_timers_min

    return next;
}
