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

/* ---- file-mutation helpers (the same in each test_proto_* file) ----------- */

/* A decoder under test: returns the decoder's result; on success it must also
 * have checked that re-encoding gives back exactly |in|. */
typedef int (*decode_fn)(const uint8_t *in, size_t len);

#define MAX_LINES 300

struct lines {
    size_t num;
    size_t off[MAX_LINES];
    size_t len[MAX_LINES]; /* with the '\n' */
};

static void split_lines(struct lines *l, const uint8_t *in, size_t len)
{
    size_t start = 0;

    l->num = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n') {
            assert_true(l->num < MAX_LINES);
            l->off[l->num] = start;
            l->len[l->num] = i + 1 - start;
            l->num++;
            start = i + 1;
        }
    }
    assert_int_equal(start, len);
}

/* run_exact: |fn| on a heap copy of exactly |len| bytes, so ASan sees any
 * read past the end. */
static int run_exact(decode_fn fn, const uint8_t *in, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    int r;

    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, in, len);
    }
    r = fn(copy, len);
    free(copy);
    return r;
}

static void check_truncations(decode_fn fn, const uint8_t *in, size_t len)
{
    assert_int_equal(run_exact(fn, in, len), 0);
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(run_exact(fn, in, n), SPK_ERR_MALFORMED);
    }
}

/* Build |in| with its lines in the order |idx[0..num)|. */
static size_t assemble(uint8_t *out, const uint8_t *in, const struct lines *l, const size_t *idx,
                       size_t num)
{
    size_t n = 0;

    for (size_t i = 0; i < num; i++) {
        memcpy(out + n, in + l->off[idx[i]], l->len[idx[i]]);
        n += l->len[idx[i]];
    }
    return n;
}

/* Every line missing, duplicated (in place and at the end), or swapped with
 * the next one: all refused. */
static void check_line_edits(decode_fn fn, const uint8_t *in, size_t len)
{
    static struct lines l;
    size_t idx[MAX_LINES + 1];
    uint8_t *buf = malloc(2 * len);
    size_t n;

    assert_non_null(buf);
    split_lines(&l, in, len);
    for (size_t i = 0; i < l.num; i++) {
        size_t k = 0;

        for (size_t j = 0; j < l.num; j++) {
            if (j != i) {
                idx[k++] = j;
            }
        }
        n = assemble(buf, in, &l, idx, k);
        assert_int_equal(run_exact(fn, buf, n), SPK_ERR_MALFORMED);

        k = 0;
        for (size_t j = 0; j < l.num; j++) {
            idx[k++] = j;
            if (j == i) {
                idx[k++] = j;
            }
        }
        n = assemble(buf, in, &l, idx, k);
        assert_int_equal(run_exact(fn, buf, n), SPK_ERR_MALFORMED);

        for (size_t j = 0; j < l.num; j++) {
            idx[j] = j;
        }
        idx[l.num] = i;
        n = assemble(buf, in, &l, idx, l.num + 1);
        assert_int_equal(run_exact(fn, buf, n), SPK_ERR_MALFORMED);

        if (i + 1 < l.num) {
            for (size_t j = 0; j < l.num; j++) {
                idx[j] = j;
            }
            idx[i] = i + 1;
            idx[i + 1] = i;
            n = assemble(buf, in, &l, idx, l.num);
            assert_int_equal(run_exact(fn, buf, n), SPK_ERR_MALFORMED);
        }
    }
    free(buf);
}

/* Trailing bytes, CR before any LF, a space before any LF, a space doubled,
 * the version changed, the file over PROTO_FILE_MAX. */
static void check_framing(decode_fn fn, const uint8_t *in, size_t len)
{
    static const char *tails[] = {"x", "\n", " ", "\r", "#", "name x\n"};
    uint8_t *buf = calloc(1, PROTO_FILE_MAX + 2);
    size_t nl = 0;

    assert_non_null(buf);
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        memcpy(buf, in, len);
        memcpy(buf + len, tails[i], strlen(tails[i]));
        assert_int_equal(run_exact(fn, buf, len + strlen(tails[i])), SPK_ERR_MALFORMED);
    }
    memcpy(buf, in, len);
    buf[len] = 0;
    assert_int_equal(run_exact(fn, buf, len + 1), SPK_ERR_MALFORMED);
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n' || in[i] == ' ') {
            /* insert one byte before it */
            memcpy(buf, in, i);
            buf[i] = in[i] == '\n' ? '\r' : ' ';
            memcpy(buf + i + 1, in + i, len - i);
            assert_int_equal(run_exact(fn, buf, len + 1), SPK_ERR_MALFORMED);
            if (in[i] == '\n') {
                buf[i] = ' ';
                assert_int_equal(run_exact(fn, buf, len + 1), SPK_ERR_MALFORMED);
                nl++;
            }
        }
    }
    assert_true(nl >= 3);
    /* The version is the last character of the first line. */
    for (nl = 0; in[nl] != '\n'; nl++) {
    }
    assert_int_equal(in[nl - 1], '1');
    memcpy(buf, in, len);
    buf[nl - 1] = '2';
    assert_int_equal(run_exact(fn, buf, len), SPK_ERR_VERSION);
    buf[nl - 1] = '0';
    assert_int_equal(run_exact(fn, buf, len), SPK_ERR_VERSION);
    buf[nl - 1] = 'x';
    assert_int_equal(run_exact(fn, buf, len), SPK_ERR_MALFORMED);
    /* Over the cap: a valid file followed by padding up to PROTO_FILE_MAX + 1. */
    memcpy(buf, in, len);
    memset(buf + len, '\n', PROTO_FILE_MAX + 1 - len);
    assert_int_equal(fn(buf, PROTO_FILE_MAX + 1), SPK_ERR_MALFORMED);
    assert_int_equal(fn(buf, PROTO_FILE_MAX), SPK_ERR_MALFORMED);
    free(buf);
}

/* Every byte replaced by each of a few characters: a decoder either refuses
 * or accepts exactly what it would write itself (fn checks the re-encoding). */
static void check_byte_edits(decode_fn fn, const uint8_t *in, size_t len)
{
    static const char subst[] = "0129afgAZ=+/.- \n\r";
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    for (size_t i = 0; i < len; i++) {
        for (size_t j = 0; j < sizeof(subst) - 1; j++) {
            int r;

            if ((uint8_t)subst[j] == in[i]) {
                continue;
            }
            memcpy(buf, in, len);
            buf[i] = (uint8_t)subst[j];
            r = run_exact(fn, buf, len);
            assert_true(r == 0 || r == SPK_ERR_MALFORMED || r == SPK_ERR_VERSION);
        }
    }
    free(buf);
}

static void check_all_mutations(decode_fn fn, const uint8_t *in, size_t len)
{
    check_truncations(fn, in, len);
    check_line_edits(fn, in, len);
    check_framing(fn, in, len);
    check_byte_edits(fn, in, len);
}

/* with_line: |in| with line |n| (0-based) replaced by |line| (no '\n'). */
static size_t with_line(uint8_t *out, size_t cap, const uint8_t *in, size_t len, size_t n,
                        const char *line)
{
    static struct lines l;
    size_t w = 0;

    split_lines(&l, in, len);
    assert_true(n < l.num);
    for (size_t i = 0; i < l.num; i++) {
        if (i == n) {
            size_t s = strlen(line);

            assert_true(w + s + 1 <= cap);
            memcpy(out + w, line, s);
            out[w + s] = '\n';
            w += s + 1;
        } else {
            assert_true(w + l.len[i] <= cap);
            memcpy(out + w, in + l.off[i], l.len[i]);
            w += l.len[i];
        }
    }
    return w;
}

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
    check_all_mutations(pub_roundtrip, (const uint8_t *)pub_text, strlen(pub_text));
}

static void test_secret_mutations(void **state)
{
    (void)state;
    check_all_mutations(secret_roundtrip, (const uint8_t *)key_text, strlen(key_text));
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

        n = with_line(buf, sizeof(buf), (const uint8_t *)pub_text, strlen(pub_text), at,
                      bad_lines[i][1]);
        assert_int_equal(pub_roundtrip(buf, n), SPK_ERR_MALFORMED);
        n = with_line(buf, sizeof(buf), (const uint8_t *)key_text, strlen(key_text),
                      at == 3 ? 4 : at, bad_lines[i][1]);
        assert_int_equal(secret_roundtrip(buf, n), SPK_ERR_MALFORMED);
    }
    /* PROTO_NAME_MAX characters are fine, one more is not. */
    memset(name64, 'h', PROTO_NAME_MAX);
    name64[PROTO_NAME_MAX] = 0;
    snprintf(line, sizeof(line), "name %s", name64);
    n = with_line(buf, sizeof(buf), (const uint8_t *)pub_text, strlen(pub_text), 1, line);
    assert_int_equal(pub_roundtrip(buf, n), 0);
    snprintf(line, sizeof(line), "name %sh", name64);
    n = with_line(buf, sizeof(buf), (const uint8_t *)pub_text, strlen(pub_text), 1, line);
    assert_int_equal(pub_roundtrip(buf, n), SPK_ERR_MALFORMED);
    n = with_line(buf, sizeof(buf), (const uint8_t *)key_text, strlen(key_text), 1, line);
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
