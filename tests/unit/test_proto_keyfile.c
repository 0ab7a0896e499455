/* Holder key files NAME.pub and NAME.key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "proto/proto.h"
#include "testutil.h"

/* ---- key files ------------------------------------------------------------- */

/* ZeroMQ's documented CURVE test pairs, used as transport and storage keys. */
#define CURVE_PK "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
#define CURVE_SK "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
#define STORAGE_PK "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
#define STORAGE_SK "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"

static const char pub_text[] = "splitkey-holder-pub 1\n"
                               "name holder-1\n"
                               "curve-public " CURVE_PK "\n"
                               "storage-public " STORAGE_PK "\n";

static const char key_text[] = "splitkey-holder-key 1\n"
                               "name holder-1\n"
                               "curve-public " CURVE_PK "\n"
                               "curve-secret " CURVE_SK "\n"
                               "storage-public " STORAGE_PK "\n"
                               "storage-secret " STORAGE_SK "\n";

static struct proto_holder_secret *secret_buf;

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

static int pub_roundtrip(const uint8_t *in, size_t len)
{
    struct proto_holder_pub pub;
    uint8_t out[1024];
    size_t n = 1;
    int r;

    memset(&pub, 0x55, sizeof(pub));
    r = proto_holder_pub_decode(&pub, in, len);
    if (r != 0) {
        assert_true(all_zero(&pub, sizeof(pub)));
        return r;
    }
    assert_int_equal(proto_holder_pub_encode(out, sizeof(out), &n, &pub), 0);
    assert_int_equal(n, len);
    assert_memory_equal(out, in, len);
    return 0;
}

static int secret_roundtrip(const uint8_t *in, size_t len)
{
    uint8_t out[1024];
    size_t n = 1;
    int r;

    memset(secret_buf, 0x55, sizeof(*secret_buf));
    r = proto_holder_secret_decode(secret_buf, in, len);
    if (r != 0) {
        /* Nothing of a half-read secret key is left behind. */
        assert_true(all_zero(secret_buf, sizeof(*secret_buf)));
        return r;
    }
    assert_int_equal(proto_holder_secret_encode(out, sizeof(out), &n, secret_buf), 0);
    assert_int_equal(n, len);
    assert_memory_equal(out, in, len);
    sodium_memzero(out, sizeof(out));
    return 0;
}

static void zmq_key(uint8_t out[32], const char *z85)
{
    assert_non_null(zmq_z85_decode(out, z85));
}

static void test_pub_known(void **state)
{
    struct proto_holder_pub pub;
    uint8_t want[32];

    (void)state;
    assert_int_equal(proto_holder_pub_decode(&pub, (const uint8_t *)pub_text, strlen(pub_text)), 0);
    assert_string_equal(pub.name, "holder-1");
    zmq_key(want, CURVE_PK);
    assert_memory_equal(pub.curve_pk, want, 32);
    zmq_key(want, STORAGE_PK);
    assert_memory_equal(pub.storage_pk, want, 32);
    assert_int_equal(pub_roundtrip((const uint8_t *)pub_text, strlen(pub_text)), 0);
}

static void test_secret_known(void **state)
{
    uint8_t want[32], derived[32];
    struct proto_holder_secret *k = secret_buf;

    (void)state;
    assert_int_equal(proto_holder_secret_decode(k, (const uint8_t *)key_text, strlen(key_text)), 0);
    assert_string_equal(k->pub.name, "holder-1");
    zmq_key(want, CURVE_PK);
    assert_memory_equal(k->pub.curve_pk, want, 32);
    zmq_key(want, CURVE_SK);
    assert_memory_equal(k->curve_sk, want, 32);
    zmq_key(want, STORAGE_PK);
    assert_memory_equal(k->pub.storage_pk, want, 32);
    zmq_key(want, STORAGE_SK);
    assert_memory_equal(k->storage_sk, want, 32);
    /* The documented pairs are real pairs. */
    assert_int_equal(crypto_scalarmult_base(derived, k->curve_sk), 0);
    assert_memory_equal(derived, k->pub.curve_pk, 32);
    assert_int_equal(secret_roundtrip((const uint8_t *)key_text, strlen(key_text)), 0);
}

static void test_roundtrip_random(void **state)
{
    (void)state;
    for (int i = 0; i < 100; i++) {
        struct proto_holder_secret *k = secret_buf;
        struct proto_holder_pub pub;
        uint8_t buf[1024];
        size_t n, name_len = 1 + randombytes_uniform(PROTO_NAME_MAX);
        static const char chars[] = "abcXYZ019._-";

        memset(k, 0, sizeof(*k));
        for (size_t j = 0; j < name_len; j++) {
            k->pub.name[j] = chars[randombytes_uniform(j == 0 ? 9 : sizeof(chars) - 1)];
        }
        assert_int_equal(crypto_box_keypair(k->pub.curve_pk, k->curve_sk), 0);
        assert_int_equal(crypto_box_keypair(k->pub.storage_pk, k->storage_sk), 0);
        pub = k->pub;
        assert_int_equal(proto_holder_secret_encode(buf, sizeof(buf), &n, k), 0);
        assert_int_equal(secret_roundtrip(buf, n), 0);
        assert_int_equal(proto_holder_pub_encode(buf, sizeof(buf), &n, &pub), 0);
        assert_int_equal(pub_roundtrip(buf, n), 0);
        memset(&pub, 0, sizeof(pub));
        assert_int_equal(proto_holder_pub_decode(&pub, buf, n), 0);
        assert_memory_equal(&pub, &k->pub, sizeof(pub));
    }
}

static void test_pub_mutations(void **state)
{
    (void)state;
    testutil_check_file_mutations(pub_roundtrip, (const uint8_t *)pub_text, strlen(pub_text));
}

static void test_secret_mutations(void **state)
{
    (void)state;
    testutil_check_file_mutations(secret_roundtrip, (const uint8_t *)key_text, strlen(key_text));
}

static void test_wrong_kind(void **state)
{
    (void)state;
    assert_int_equal(secret_roundtrip((const uint8_t *)pub_text, strlen(pub_text)),
                     SPK_ERR_MALFORMED);
    assert_int_equal(pub_roundtrip((const uint8_t *)key_text, strlen(key_text)), SPK_ERR_MALFORMED);
}

static void test_bad_values(void **state)
{
    char name64[PROTO_NAME_MAX + 1], line[256];
    static const char *bad_lines[][2] = {
        {"1", "name "},
        {"1", "name .holder"},
        {"1", "name a/b"},
        {"1", "name holder 1"},
        {"1", "Name holder-1"},
        {"1", "name  holder-1"},
        {"2", "curve-public " CURVE_PK "0"},                           /* 41 characters */
        {"2", "curve-public Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI"}, /* 39 */
        {"2", "curve-public Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI~"},
        {"2", "curve-public Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI\""},
        {"2", "curve-public %nSc1Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[Ia"}, /* > 2^32 */
        {"2", "curve-secret " CURVE_SK},
        {"3", "storage-public"},
        {"3", "storage-secret " STORAGE_SK},
    };
    uint8_t buf[1024];
    size_t n;

    (void)state;
    /* Lines of the .pub file; in the .key file line 3 (storage-public) is 4. */
    for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        size_t at = (size_t)(bad_lines[i][0][0] - '0');

        n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)pub_text, strlen(pub_text), at,
                               bad_lines[i][1]);
        assert_int_equal(pub_roundtrip(buf, n), SPK_ERR_MALFORMED);
        n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)key_text, strlen(key_text),
                               at == 3 ? 4 : at, bad_lines[i][1]);
        assert_int_equal(secret_roundtrip(buf, n), SPK_ERR_MALFORMED);
    }
    /* PROTO_NAME_MAX characters are fine, one more is not. */
    memset(name64, 'h', PROTO_NAME_MAX);
    name64[PROTO_NAME_MAX] = 0;
    snprintf(line, sizeof(line), "name %s", name64);
    n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)pub_text, strlen(pub_text), 1, line);
    assert_int_equal(pub_roundtrip(buf, n), 0);
    snprintf(line, sizeof(line), "name %sh", name64);
    n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)pub_text, strlen(pub_text), 1, line);
    assert_int_equal(pub_roundtrip(buf, n), SPK_ERR_MALFORMED);
    n = testutil_with_line(buf, sizeof(buf), (const uint8_t *)key_text, strlen(key_text), 1, line);
    assert_int_equal(secret_roundtrip(buf, n), SPK_ERR_MALFORMED);
}

static void test_encode_refusals(void **state)
{
    struct proto_holder_pub pub;
    struct proto_holder_secret *k = secret_buf;
    uint8_t buf[1024];
    size_t n = 1, need;

    (void)state;
    assert_int_equal(proto_holder_pub_decode(&pub, (const uint8_t *)pub_text, strlen(pub_text)), 0);
    assert_int_equal(proto_holder_secret_decode(k, (const uint8_t *)key_text, strlen(key_text)), 0);
    need = strlen(pub_text);
    for (size_t cap = 0; cap < need; cap++) {
        n = 1;
        assert_int_equal(proto_holder_pub_encode(buf, cap, &n, &pub), SPK_ERR_INVALID_ARG);
        assert_int_equal(n, 0);
    }
    assert_int_equal(proto_holder_pub_encode(buf, need, &n, &pub), 0);
    assert_int_equal(n, need);
    need = strlen(key_text);
    for (size_t cap = 0; cap < need; cap++) {
        memset(buf, 0, sizeof(buf));
        n = 1;
        assert_int_equal(proto_holder_secret_encode(buf, cap, &n, k), SPK_ERR_INVALID_ARG);
        assert_int_equal(n, 0);
        /* A short buffer is not left holding part of the secret key. */
        assert_true(all_zero(buf, sizeof(buf)));
    }
    assert_int_equal(proto_holder_secret_encode(buf, need, &n, k), 0);
    assert_int_equal(n, need);

    strcpy(pub.name, ".x");
    assert_int_equal(proto_holder_pub_encode(buf, sizeof(buf), &n, &pub), SPK_ERR_INVALID_ARG);
    pub.name[0] = 0;
    assert_int_equal(proto_holder_pub_encode(buf, sizeof(buf), &n, &pub), SPK_ERR_INVALID_ARG);
    memset(pub.name, 'a', sizeof(pub.name)); /* no NUL */
    assert_int_equal(proto_holder_pub_encode(buf, sizeof(buf), &n, &pub), SPK_ERR_INVALID_ARG);
    strcpy(k->pub.name, "a b");
    assert_int_equal(proto_holder_secret_encode(buf, sizeof(buf), &n, k), SPK_ERR_INVALID_ARG);
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0) {
        return -1;
    }
    secret_buf = sodium_malloc(sizeof(*secret_buf));
    return secret_buf == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    sodium_free(secret_buf);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pub_known),        cmocka_unit_test(test_secret_known),
        cmocka_unit_test(test_roundtrip_random), cmocka_unit_test(test_pub_mutations),
        cmocka_unit_test(test_secret_mutations), cmocka_unit_test(test_wrong_kind),
        cmocka_unit_test(test_bad_values),       cmocka_unit_test(test_encode_refusals),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
