/* A ZeroMQ client's connections (base.h): pacing new ones to a peer that
 * refused a handshake, and when to send again what was in flight. */

#include "base/base.h"

bool spk_knock_refused(struct spk_knock *k, uint64_t now_ms)
{
    bool first = !k->refused;

    if (k->at_ms != 0) {
        return false; /* the knock already due answers this refusal too */
    }
    if (k->gap_ms == 0) {
        k->gap_ms = SPK_KNOCK_MIN_MS;
    }
    k->refused = true;
    k->at_ms = now_ms + k->gap_ms;
    k->gap_ms = k->gap_ms * 2 < SPK_KNOCK_MAX_MS ? k->gap_ms * 2 : SPK_KNOCK_MAX_MS;
    return first;
}

bool spk_knock_admitted(struct spk_knock *k)
{
    bool was_refused = k->refused;

    k->refused = false;
    k->gap_ms = SPK_KNOCK_MIN_MS;
    return was_refused;
}

bool spk_knock_due(struct spk_knock *k, uint64_t now_ms)
{
    if (k->at_ms == 0 || now_ms < k->at_ms) {
        return false;
    }
    k->at_ms = 0;
    return true;
}

long spk_knock_wait_ms(const struct spk_knock *k, uint64_t now_ms, long cap)
{
    long left;

    if (k->at_ms == 0) {
        return cap;
    }
    left = k->at_ms <= now_ms ? 0 : (long)(k->at_ms - now_ms);
    return cap >= 0 && cap < left ? cap : left;
}

bool spk_resend_due(bool *after_disconnect, bool disconnected, bool handshake_succeeded)
{
    if (disconnected) {
        *after_disconnect = true;
        return true;
    }
    if (handshake_succeeded && *after_disconnect) {
        *after_disconnect = false;
        return true;
    }
    return false;
}
