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

uint8_t *testutil_read_file(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *out_len = (size_t)n;
    return buf;
}

bool testutil_under_valgrind(void)
{
    const char *vg = getenv("SPK_UNDER_VALGRIND");

    return vg != NULL && strcmp(vg, "1") == 0;
}

const char *testutil_data_path(const char *name)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/%s", SPK_TEST_DATA, name);
    return path;
}

/* ---- text-file mutations (test_proto_record/sharefile/keyfile) ----------- */
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
static int run_exact(testutil_decode_fn fn, const uint8_t *in, size_t len)
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

static void check_truncations(testutil_decode_fn fn, const uint8_t *in, size_t len)
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
static void check_line_edits(testutil_decode_fn fn, const uint8_t *in, size_t len)
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
static void check_framing(testutil_decode_fn fn, const uint8_t *in, size_t len)
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

/* Under memcheck a decode costs about a millisecond (a record's includes an
 * RSA verification), and the byte edits below are most of a file's
 * mutations: there each byte gets every VALGRIND_EDIT_STRIDE-th character,
 * by turns, so that every position and every character are still tried.
 * Natively and under ASan every byte gets every character. */
#define VALGRIND_EDIT_STRIDE 4

/* Every byte replaced by each of a few characters: a decoder either refuses
 * or accepts exactly what it would write itself (fn checks the re-encoding). */
static void check_byte_edits(testutil_decode_fn fn, const uint8_t *in, size_t len)
{
    static const char subst[] = "0129afgAZ=+/.- \n\r";
    const size_t stride = testutil_under_valgrind() ? VALGRIND_EDIT_STRIDE : 1;
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    for (size_t i = 0; i < len; i++) {
        for (size_t j = 0; j < sizeof(subst) - 1; j++) {
            int r;

            if ((uint8_t)subst[j] == in[i] || (i + j) % stride != 0) {
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

void testutil_check_file_mutations(testutil_decode_fn fn, const uint8_t *in, size_t len)
{
    check_truncations(fn, in, len);
    check_line_edits(fn, in, len);
    check_framing(fn, in, len);
    check_byte_edits(fn, in, len);
}

size_t testutil_with_line(uint8_t *out, size_t cap, const uint8_t *in, size_t len, size_t n,
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
