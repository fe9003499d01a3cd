/*
 * lwIP platform definitions for ngx_wgconn (Linux, gcc).  An lwIP
 * assertion is a bug in our use of lwIP: report it through the module's
 * log hook, then abort so that it is found in tests instead of corrupting
 * a connection silently.
 */

#ifndef _WGC_ARCH_CC_H_INCLUDED_
#define _WGC_ARCH_CC_H_INCLUDED_


#include <stdint.h>
#include <stdlib.h>
#include <stddef.h>
#include <errno.h>
#include <sys/time.h>

#define LWIP_TIMEVAL_PRIVATE            0
#define LWIP_NO_CTYPE_H                 0
#ifndef BYTE_ORDER
#define BYTE_ORDER                      LITTLE_ENDIAN
#endif

void wgc_lwip_assert(const char *msg, const char *file, int line);

#ifdef WGC_LWIP_TRACE
void wgc_lwip_diag(const char *fmt, ...);
#define LWIP_PLATFORM_DIAG(x)           do { wgc_lwip_diag x; } while (0)
#else
#define LWIP_PLATFORM_DIAG(x)           do { } while (0)
#endif
#define LWIP_PLATFORM_ASSERT(x)                                              \
    wgc_lwip_assert((x), __FILE__, __LINE__)


#endif /* _WGC_ARCH_CC_H_INCLUDED_ */
