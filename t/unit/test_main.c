/*
 * Unit test runner for the WireGuard core.
 */

#include <string.h>

#include "wgtest.h"
#include "wg_crypto.h"


unsigned  wgt_passed;
unsigned  wgt_failed;


size_t
wgt_unhex(const char *hex, uint8_t *out, size_t max)
{
    size_t        n;
    unsigned int  v;

    for (n = 0; n < max && hex[0] != '\0' && hex[1] != '\0'; n++, hex += 2) {
        if (sscanf(hex, "%2x", &v) != 1) {
            break;
        }

        out[n] = (uint8_t) v;
    }

    return n;
}


int
wgt_hex_equal(const uint8_t *buf, size_t len, const char *hex)
{
    uint8_t  want[1024];

    if (strlen(hex) != len * 2 || len > sizeof(want)) {
        return 0;
    }

    wgt_unhex(hex, want, sizeof(want));

    return memcmp(buf, want, len) == 0;
}


void
wgt_section(const char *name)
{
    printf("# %s\n", name);
}


int
main(void)
{
    if (wg_crypto_init() != 0) {
        printf("crypto init failed\n0 passed, 1 failed\n");
        return 1;
    }

    test_crypto();
    test_replay();
    test_allowedips();
    test_ratelimiter();
    test_noise();
    test_cookie();
    test_device();

    printf("%u passed, %u failed\n", wgt_passed, wgt_failed);

    return wgt_failed == 0 ? 0 : 1;
}
