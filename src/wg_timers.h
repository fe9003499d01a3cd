/*
 * The per-peer timers of the whitepaper (section 6), as absolute deadlines
 * on the peer that wg_device_tick() runs.  The hooks below are named after
 * the events that arm or cancel them.
 */

#ifndef _WG_TIMERS_H_INCLUDED_
#define _WG_TIMERS_H_INCLUDED_


#include <stdint.h>

#include "wg_device.h"


void wg_timers_stop(wg_peer_t *peer);

void wg_timers_data_sent(wg_peer_t *peer, uint64_t now);
void wg_timers_data_received(wg_peer_t *peer, uint64_t now);
void wg_timers_any_authenticated_packet_sent(wg_peer_t *peer);
void wg_timers_any_authenticated_packet_received(wg_peer_t *peer);
void wg_timers_any_authenticated_packet_traversal(wg_peer_t *peer,
    uint64_t now);
void wg_timers_handshake_initiated(wg_peer_t *peer, uint64_t now);
void wg_timers_handshake_complete(wg_peer_t *peer, uint64_t now);
void wg_timers_session_derived(wg_peer_t *peer, uint64_t now);

/* fire what is due; returns the peer's next deadline, UINT64_MAX if none */
uint64_t wg_timers_run(wg_peer_t *peer, uint64_t now);


#endif /* _WG_TIMERS_H_INCLUDED_ */
