/* The monotonic clock every timeout and measurement uses. */

#include <time.h>

#include "base/base.h"

uint64_t spk_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t spk_now_us(void)
{
    return spk_now_ns() / 1000u;
}

uint64_t spk_now_ms(void)
{
    return spk_now_ns() / 1000000u;
}
