/*
 * A minimal test harness: CHECK counts, failures print where and what.
 */

#ifndef _WGTEST_H_INCLUDED_
#define _WGTEST_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>


extern unsigned  wgt_passed;
extern unsigned  wgt_failed;


#define CHECK(cond, name)                                                     \
    do {                                                                      \
        if (cond) {                                                           \
            wgt_passed++;                                                     \
        } else {                                                              \
            wgt_failed++;                                                     \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, name);             \
        }                                                                     \
    } while (0)

#define CHECK_HEX(buf, len, hex, name)                                        \
    CHECK(wgt_hex_equal(buf, len, hex), name)


size_t wgt_unhex(const char *hex, uint8_t *out, size_t max);
int wgt_hex_equal(const uint8_t *buf, size_t len, const char *hex);
void wgt_section(const char *name);

void test_crypto(void);
void test_replay(void);
void test_allowedips(void);
void test_ratelimiter(void);
void test_noise(void);
void test_cookie(void);
void test_device(void);


#endif /* _WGTEST_H_INCLUDED_ */
