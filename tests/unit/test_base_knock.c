/* struct spk_knock: when a client refused by its peer connects anew;
 * spk_resend_due: when it sends again what was in flight. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"

static void test_knock_backoff(void **state)
{
    struct spk_knock k = {0};
    uint64_t now = 1000;

    (void)state;
    assert_false(spk_knock_due(&k, now));
    assert_int_equal(spk_knock_wait_ms(&k, now, 20), 20);
    assert_int_equal(spk_knock_wait_ms(&k, now, -1), -1);
    /* The first refusal is the one to log; the knock is SPK_KNOCK_MIN_MS away. */
    assert_true(spk_knock_refused(&k, now));
    assert_int_equal(spk_knock_wait_ms(&k, now, -1), SPK_KNOCK_MIN_MS);
    assert_int_equal(spk_knock_wait_ms(&k, now, 20), 20);
    /* A second refusal before the knock (another event of the same
     * session) changes nothing. */
    assert_false(spk_knock_refused(&k, now + 10));
    assert_false(spk_knock_due(&k, now + SPK_KNOCK_MIN_MS - 1));
    assert_true(spk_knock_due(&k, now + SPK_KNOCK_MIN_MS));
    assert_false(spk_knock_due(&k, now + SPK_KNOCK_MIN_MS)); /* once */
    /* Refused again: not logged again, and the wait doubles up to the most. */
    now += SPK_KNOCK_MIN_MS;
    for (uint64_t gap = 2 * SPK_KNOCK_MIN_MS; gap < 4 * SPK_KNOCK_MAX_MS; gap *= 2) {
        uint64_t want = gap < SPK_KNOCK_MAX_MS ? gap : SPK_KNOCK_MAX_MS;

        assert_false(spk_knock_refused(&k, now));
        assert_int_equal(spk_knock_wait_ms(&k, now, -1), (long)want);
        assert_int_equal(spk_knock_wait_ms(&k, now + want + 5, -1), 0);
        assert_true(spk_knock_due(&k, now + want));
        now += want;
    }
    /* Let in: that is logged once, and the next refusal starts from the least wait. */
    assert_true(spk_knock_admitted(&k));
    assert_false(spk_knock_admitted(&k));
    assert_true(spk_knock_refused(&k, now));
    assert_int_equal(spk_knock_wait_ms(&k, now, -1), SPK_KNOCK_MIN_MS);
}

static void test_resend_due(void **state)
{
    bool after_disconnect = false;

    (void)state;
    /* The first connection: nothing was lost, nothing goes twice. */
    assert_false(spk_resend_due(&after_disconnect, false, true));
    assert_false(spk_resend_due(&after_disconnect, false, false));
    /* A disconnect: at once, and once more when the next handshake is done. */
    assert_true(spk_resend_due(&after_disconnect, true, false));
    assert_false(spk_resend_due(&after_disconnect, false, false));
    assert_true(spk_resend_due(&after_disconnect, true, false));
    assert_true(spk_resend_due(&after_disconnect, false, true));
    /* ... only once. */
    assert_false(spk_resend_due(&after_disconnect, false, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_knock_backoff),
        cmocka_unit_test(test_resend_due),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
