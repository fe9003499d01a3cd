/*
 * Allowed IPs: a path-compressed binary trie per address family mapping
 * prefixes to peers, with longest-prefix-match lookup.
 */

#ifndef _WG_ALLOWEDIPS_H_INCLUDED_
#define _WG_ALLOWEDIPS_H_INCLUDED_


#include <stdint.h>


typedef struct wg_allowedips_node_s  wg_allowedips_node_t;

typedef struct {
    wg_allowedips_node_t       *root4;
    wg_allowedips_node_t       *root6;
} wg_allowedips_t;


void wg_allowedips_init(wg_allowedips_t *t);
void wg_allowedips_free(wg_allowedips_t *t);

/* family AF_INET or AF_INET6, addr in network byte order; -1 on error */
int wg_allowedips_insert(wg_allowedips_t *t, int family, const void *addr,
    unsigned cidr, void *peer);
void wg_allowedips_remove_by_peer(wg_allowedips_t *t, void *peer);
void *wg_allowedips_lookup(wg_allowedips_t *t, int family, const void *addr);

/* number of prefixes mapped to peer (status, tests) */
unsigned wg_allowedips_count(wg_allowedips_t *t, void *peer);


#endif /* _WG_ALLOWEDIPS_H_INCLUDED_ */
