/*
 * The Internet checksum for lwIP (LWIP_CHKSUM, LWIP_CHKSUM_COPY).  lwIP's
 * own routines add 16 bits per step, and with LWIP_CHECKSUM_ON_COPY a
 * memcpy() precedes each sum: in a bulk upload that was 7% of the engine.
 * These add 64 bits per step, the copy in the same pass.
 *
 * The one's complement sum of 16-bit words does not depend on the byte
 * order they are read in (RFC 1071), and 2^16 = 1 modulo 2^16 - 1, so the
 * halves of little-endian 64-bit words may be added as they come: the
 * result is the sum of the native 16-bit words at the same addresses,
 * which is what lwIP expects of LWIP_CHKSUM.
 */

#ifndef _WGC_ARCH_CHKSUM_H_INCLUDED_
#define _WGC_ARCH_CHKSUM_H_INCLUDED_


#include <stdint.h>
#include <string.h>


static inline uint16_t
wgc_chksum_fold(uint64_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }

    return (uint16_t) sum;
}


/* the bytes after the last whole 8: a lone last byte is a word's low one */

static inline uint64_t
wgc_chksum_tail(const uint8_t *p, size_t len)
{
    uint16_t  w16;
    uint32_t  w32;
    uint64_t  sum;

    sum = 0;

    if (len & 4) {
        memcpy(&w32, p, 4);
        sum += w32;
        p += 4;
    }

    if (len & 2) {
        memcpy(&w16, p, 2);
        sum += w16;
        p += 2;
    }

    if (len & 1) {
        sum += *p;
    }

    return sum;
}


static inline uint16_t
wgc_lwip_chksum(const void *data, int len)
{
    size_t          n;
    uint64_t        w, sum;
    const uint8_t  *p;

    p = data;
    n = (size_t) len;
    sum = 0;

    for ( /* void */ ; n >= 8; n -= 8, p += 8) {
        memcpy(&w, p, 8);
        sum += (w & 0xffffffff) + (w >> 32);
    }

    return wgc_chksum_fold(sum + wgc_chksum_tail(p, n));
}


static inline uint16_t
wgc_lwip_chksum_copy(void *dst, const void *src, uint16_t len)
{
    size_t          n;
    uint8_t        *d;
    uint64_t        w, sum;
    const uint8_t  *s;

    d = dst;
    s = src;
    n = len;
    sum = 0;

    for ( /* void */ ; n >= 8; n -= 8, s += 8, d += 8) {
        memcpy(&w, s, 8);
        memcpy(d, &w, 8);
        sum += (w & 0xffffffff) + (w >> 32);
    }

    memcpy(d, s, n);

    return wgc_chksum_fold(sum + wgc_chksum_tail(s, n));
}


#endif /* _WGC_ARCH_CHKSUM_H_INCLUDED_ */
