/*
 * Allowed IPs as a path-compressed binary trie.
 *
 * Every node holds a prefix (bits beyond cidr are zero) and possibly a
 * peer; nodes without a peer only exist to branch, so the trie never holds
 * more than twice as many nodes as prefixes, whatever their length.
 */

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "wg_allowedips.h"


struct wg_allowedips_node_s {
    wg_allowedips_node_t       *child[2];
    void                       *peer;
    uint8_t                     bits[16];
    uint8_t                     cidr;
};


static int wg_allowedips_family(int family, wg_allowedips_node_t ***root,
    wg_allowedips_t *t, unsigned *maxbits);
static unsigned wg_allowedips_bit(const uint8_t *key, unsigned n);
static unsigned wg_allowedips_common(const uint8_t *a, const uint8_t *b,
    unsigned max);
static void wg_allowedips_mask(uint8_t *out, const uint8_t *key,
    unsigned cidr);
static wg_allowedips_node_t *wg_allowedips_node(const uint8_t *key,
    unsigned cidr, void *peer);
static void wg_allowedips_prune(wg_allowedips_node_t **slot, void *peer);
static void wg_allowedips_free_tree(wg_allowedips_node_t *node);
static unsigned wg_allowedips_count_tree(wg_allowedips_node_t *node,
    void *peer);


void
wg_allowedips_init(wg_allowedips_t *t)
{
    t->root4 = NULL;
    t->root6 = NULL;
}


void
wg_allowedips_free(wg_allowedips_t *t)
{
    wg_allowedips_free_tree(t->root4);
    wg_allowedips_free_tree(t->root6);
    wg_allowedips_init(t);
}


static int
wg_allowedips_family(int family, wg_allowedips_node_t ***root,
    wg_allowedips_t *t, unsigned *maxbits)
{
    if (family == AF_INET) {
        *root = &t->root4;
        *maxbits = 32;
        return 0;
    }

    if (family == AF_INET6) {
        *root = &t->root6;
        *maxbits = 128;
        return 0;
    }

    return -1;
}


static unsigned
wg_allowedips_bit(const uint8_t *key, unsigned n)
{
    return (key[n / 8] >> (7 - n % 8)) & 1;
}


static unsigned
wg_allowedips_common(const uint8_t *a, const uint8_t *b, unsigned max)
{
    unsigned  n, i;
    uint8_t   x;

    for (n = 0, i = 0; n < max; i++, n += 8) {
        x = a[i] ^ b[i];

        if (x != 0) {
            while ((x & 0x80) == 0) {
                x <<= 1;
                n++;
            }

            break;
        }
    }

    return n < max ? n : max;
}


static void
wg_allowedips_mask(uint8_t *out, const uint8_t *key, unsigned cidr)
{
    unsigned  i;

    memset(out, 0, 16);

    for (i = 0; i < cidr / 8; i++) {
        out[i] = key[i];
    }

    if (cidr % 8) {
        out[i] = key[i] & (uint8_t) (0xff00 >> (cidr % 8));
    }
}


static wg_allowedips_node_t *
wg_allowedips_node(const uint8_t *key, unsigned cidr, void *peer)
{
    wg_allowedips_node_t  *node;

    node = calloc(1, sizeof(wg_allowedips_node_t));
    if (node == NULL) {
        return NULL;
    }

    wg_allowedips_mask(node->bits, key, cidr);
    node->cidr = (uint8_t) cidr;
    node->peer = peer;

    return node;
}


int
wg_allowedips_insert(wg_allowedips_t *t, int family, const void *addr,
    unsigned cidr, void *peer)
{
    unsigned               maxbits, common;
    uint8_t                key[16];
    wg_allowedips_node_t  *node, *leaf, *branch, **slot;

    if (wg_allowedips_family(family, &slot, t, &maxbits) != 0
        || cidr > maxbits || peer == NULL)
    {
        return -1;
    }

    wg_allowedips_mask(key, addr, cidr);

    for ( ;; ) {
        node = *slot;

        if (node == NULL) {
            *slot = wg_allowedips_node(key, cidr, peer);
            return *slot == NULL ? -1 : 0;
        }

        common = wg_allowedips_common(node->bits, key,
                                      cidr < node->cidr ? cidr : node->cidr);

        if (common == node->cidr && node->cidr == cidr) {
            /* the same prefix: it moves to the new peer */
            node->peer = peer;
            return 0;
        }

        if (common == node->cidr) {
            /* node is a proper prefix of key: descend */
            slot = &node->child[wg_allowedips_bit(key, node->cidr)];
            continue;
        }

        break;
    }

    leaf = wg_allowedips_node(key, cidr, peer);
    if (leaf == NULL) {
        return -1;
    }

    if (common == cidr) {
        /* key is a proper prefix of node: it goes above it */
        leaf->child[wg_allowedips_bit(node->bits, cidr)] = node;
        *slot = leaf;
        return 0;
    }

    /* they diverge below both: a branch node holds the common part */
    branch = wg_allowedips_node(key, common, NULL);
    if (branch == NULL) {
        free(leaf);
        return -1;
    }

    branch->child[wg_allowedips_bit(node->bits, common)] = node;
    branch->child[wg_allowedips_bit(key, common)] = leaf;
    *slot = branch;

    return 0;
}


void *
wg_allowedips_lookup(wg_allowedips_t *t, int family, const void *addr)
{
    void                  *best;
    unsigned               maxbits;
    const uint8_t         *key;
    wg_allowedips_node_t  *node, **slot;

    if (wg_allowedips_family(family, &slot, t, &maxbits) != 0) {
        return NULL;
    }

    key = addr;
    best = NULL;

    for (node = *slot; node != NULL; ) {
        if (wg_allowedips_common(node->bits, key, node->cidr) < node->cidr) {
            break;
        }

        if (node->peer != NULL) {
            best = node->peer;
        }

        if (node->cidr >= maxbits) {
            break;
        }

        node = node->child[wg_allowedips_bit(key, node->cidr)];
    }

    return best;
}


/* depth is bounded by the address length, so recursion is shallow */
static void
wg_allowedips_prune(wg_allowedips_node_t **slot, void *peer)
{
    wg_allowedips_node_t  *node;

    node = *slot;

    if (node == NULL) {
        return;
    }

    wg_allowedips_prune(&node->child[0], peer);
    wg_allowedips_prune(&node->child[1], peer);

    if (node->peer == peer) {
        node->peer = NULL;
    }

    if (node->peer != NULL) {
        return;
    }

    if (node->child[0] != NULL && node->child[1] != NULL) {
        return;
    }

    *slot = node->child[0] != NULL ? node->child[0] : node->child[1];
    free(node);
}


void
wg_allowedips_remove_by_peer(wg_allowedips_t *t, void *peer)
{
    wg_allowedips_prune(&t->root4, peer);
    wg_allowedips_prune(&t->root6, peer);
}


static void
wg_allowedips_free_tree(wg_allowedips_node_t *node)
{
    if (node == NULL) {
        return;
    }

    wg_allowedips_free_tree(node->child[0]);
    wg_allowedips_free_tree(node->child[1]);
    free(node);
}


static unsigned
wg_allowedips_count_tree(wg_allowedips_node_t *node, void *peer)
{
    if (node == NULL) {
        return 0;
    }

    return (node->peer == peer && peer != NULL)
           + wg_allowedips_count_tree(node->child[0], peer)
           + wg_allowedips_count_tree(node->child[1], peer);
}


unsigned
wg_allowedips_count(wg_allowedips_t *t, void *peer)
{
    return wg_allowedips_count_tree(t->root4, peer)
           + wg_allowedips_count_tree(t->root6, peer);
}
