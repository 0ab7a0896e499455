/* Key references: the body of a "SPLITKEY KEY REFERENCE" PEM block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "testutil.h"

#define KEY_ID "914b1c78c51bffd6d858e45d4724d1868fae5e582f5699d0fe8a33c8d9533742"
#define SPKI "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqFCOSu5k1BecElqg7CcU"

static const char ipc_text[] = "splitkey-key-reference 1\n"
                               "key-id " KEY_ID "\n"
                               "public-key " SPKI "\n"
                               "combiner ipc:///run/splitkey/combiner.sock\n";

static const char tcp_text[] = "splitkey-key-reference 1\n"
                               "key-id " KEY_ID "\n"
                               "public-key " SPKI "\n"
                               "combiner tcp://10.0.0.5:7300\n"
                               "combiner-public Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID\n"
                               "client-key /etc/splitkey/nginx-client.key\n";

static int roundtrip(const uint8_t *in, size_t len)
{
    static const struct proto_keyref zero;
    struct proto_keyref ref;
    uint8_t out[PROTO_KEYREF_MAX];
    size_t n = 1;
    int r;

    memset(&ref, 0x55, sizeof(ref));
    r = proto_keyref_decode(&ref, in, len);
    if (r != 0) {
        assert_memory_equal(&ref, &zero, sizeof(ref));
        return r;
    }
    assert_int_equal(proto_keyref_encode(out, sizeof(out), &n, &ref), 0);
    assert_int_equal(n, len);
    assert_memory_equal(out, in, len);
    return 0;
}

static void test_known(void **state)
{
    struct proto_keyref ref;
    uint8_t buf[PROTO_KEYREF_MAX];
    size_t n;

    (void)state;
    assert_int_equal(proto_keyref_decode(&ref, (const uint8_t *)ipc_text, strlen(ipc_text)), 0);
    assert_string_equal(ref.endpoint, "ipc:///run/splitkey/combiner.sock");
    assert_false(ref.has_curve);
    assert_int_equal(ref.spki_len, 48);
    assert_int_equal(ref.key_id[0], 0x91);
    assert_int_equal(roundtrip((const uint8_t *)ipc_text, strlen(ipc_text)), 0);

    /* unix:// is checked by the peer's uid, as ipc:// is: no CURVE lines. */
    n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)ipc_text, strlen(ipc_text), 3,
                           "combiner unix:///run/splitkey/combiner.sock");
    assert_int_equal(proto_keyref_decode(&ref, buf, n), 0);
    assert_string_equal(ref.endpoint, "unix:///run/splitkey/combiner.sock");
    assert_false(ref.has_curve);
    assert_int_equal(roundtrip(buf, n), 0);
    n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)ipc_text, strlen(ipc_text), 3,
                           "combiner unix://@splitkey-combiner");
    assert_int_equal(roundtrip(buf, n), 0);

    assert_int_equal(proto_keyref_decode(&ref, (const uint8_t *)tcp_text, strlen(tcp_text)), 0);
    assert_true(ref.has_curve);
    assert_string_equal(ref.client_key, "/etc/splitkey/nginx-client.key");
    assert_int_equal(roundtrip((const uint8_t *)tcp_text, strlen(tcp_text)), 0);
}

static void test_mutations(void **state)
{
    (void)state;
    testutil_check_file_mutations(roundtrip, (const uint8_t *)ipc_text, strlen(ipc_text));
    testutil_check_file_mutations(roundtrip, (const uint8_t *)tcp_text, strlen(tcp_text));
}

static void test_bad_values(void **state)
{
    static const char *const endpoints[] = {
        "combiner http://x",   "combiner ipc://",  "combiner tcp://a b",
        "combiner ipc://\x01", "combiner IPC://x", "combiner unix://",
        "combiner UNIX://x",   "combiner unix:/x", "combiner unix://a b",
    };
    uint8_t buf[PROTO_KEYREF_MAX];
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)ipc_text, strlen(ipc_text), 3,
                               endpoints[i]);
        assert_int_equal(roundtrip(buf, n), SPK_ERR_MALFORMED);
    }
    n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)ipc_text, strlen(ipc_text), 1,
                           "key-id " KEY_ID "00");
    assert_int_equal(roundtrip(buf, n), SPK_ERR_MALFORMED);
    n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)ipc_text, strlen(ipc_text), 2,
                           "public-key !!!!");
    assert_int_equal(roundtrip(buf, n), SPK_ERR_MALFORMED);
    /* A client key path with a control character. */
    n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)tcp_text, strlen(tcp_text), 5,
                           "client-key /a\tb");
    assert_int_equal(roundtrip(buf, n), SPK_ERR_MALFORMED);
}

static void test_too_long(void **state)
{
    static char big[PROTO_KEYREF_MAX + 64];
    size_t len;

    (void)state;
    /* A combiner endpoint of PROTO_ENDPOINT_MAX + 1 characters. */
    len = (size_t)snprintf(big, sizeof(big),
                           "splitkey-key-reference 1\nkey-id %s\npublic-key %s\n"
                           "combiner ipc://",
                           KEY_ID, SPKI);
    memset(big + len, 'a', PROTO_ENDPOINT_MAX + 1 - 6);
    len += PROTO_ENDPOINT_MAX + 1 - 6;
    big[len++] = '\n';
    assert_int_equal(roundtrip((const uint8_t *)big, len), SPK_ERR_MALFORMED);
    /* At exactly PROTO_ENDPOINT_MAX it is fine. */
    big[len - 2] = '\n';
    assert_int_equal(roundtrip((const uint8_t *)big, len - 1), 0);
}

static void test_encode_refusals(void **state)
{
    struct proto_keyref ref;
    uint8_t out[PROTO_KEYREF_MAX];
    size_t n;

    (void)state;
    assert_int_equal(proto_keyref_decode(&ref, (const uint8_t *)tcp_text, strlen(tcp_text)), 0);
    assert_int_equal(proto_keyref_encode(out, 10, &n, &ref), SPK_ERR_NOMEM);
    ref.client_key[0] = '\0';
    assert_int_equal(proto_keyref_encode(out, sizeof(out), &n, &ref), SPK_ERR_INVALID_ARG);
    memcpy(ref.endpoint, "udp://x", 8);
    assert_int_equal(proto_keyref_encode(out, sizeof(out), &n, &ref), SPK_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known),           cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_bad_values),      cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_encode_refusals),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
