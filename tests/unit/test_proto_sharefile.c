/* The share file KEYID.HOLDER.share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "proto/proto.h"
#include "testutil.h"

/* ---- share files ------------------------------------------------------------- */

static struct proto_share_file sf_a, sf_b;
static uint8_t file_buf[8192], file_buf2[8192];

static int sf_roundtrip(const uint8_t *in, size_t len)
{
    size_t n = 1;
    int r;

    memset(&sf_a, 0x55, sizeof(sf_a));
    r = proto_share_file_decode(&sf_a, in, len);
    if (r != 0) {
        assert_int_equal(sf_a.sealed_len, 0);
        assert_int_equal(sf_a.index, 0);
        return r;
    }
    assert_int_equal(proto_share_file_encode(file_buf2, sizeof(file_buf2), &n, &sf_a), 0);
    assert_int_equal(n, len);
    assert_memory_equal(file_buf2, in, len);
    return 0;
}

static void make_share(struct proto_share_file *sf, unsigned field, uint8_t index)
{
    memset(sf, 0, sizeof(*sf));
    randombytes_buf(sf->key_id, sizeof(sf->key_id));
    randombytes_buf(sf->split_id, sizeof(sf->split_id));
    sf->index = index;
    strcpy(sf->holder, "holder-1");
    sf->threshold = 2;
    sf->num_shares = 3;
    sf->field_bits = field;
    sf->sealed_len = PROTO_SEAL_OVERHEAD + PROTO_NUM_SECRETS * proto_field_y_len(field);
    randombytes_buf(sf->sealed, sf->sealed_len);
}

static size_t encode(const struct proto_share_file *sf)
{
    size_t n = 0;

    assert_int_equal(proto_share_file_encode(file_buf, sizeof(file_buf), &n, sf), 0);
    return n;
}

static void assert_shares_equal(const struct proto_share_file *a, const struct proto_share_file *b)
{
    assert_memory_equal(a->key_id, b->key_id, PROTO_KEY_ID_LEN);
    assert_memory_equal(a->split_id, b->split_id, PROTO_SPLIT_ID_LEN);
    assert_int_equal(a->index, b->index);
    assert_string_equal(a->holder, b->holder);
    assert_int_equal(a->threshold, b->threshold);
    assert_int_equal(a->num_shares, b->num_shares);
    assert_int_equal(a->field_bits, b->field_bits);
    assert_int_equal(a->sealed_len, b->sealed_len);
    assert_memory_equal(a->sealed, b->sealed, a->sealed_len);
}

static void test_known(void **state)
{
    static const char text[] =
        "splitkey-share 1\n"
        "key-id 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
        "split-id f0e0d0c0b0a090807060504030201000\n"
        "index 7\n"
        "holder h.7\n"
        "threshold 3\n"
        "shares 5\n"
        "field 1279\n"
        "sealed ";
    uint8_t sealed[848];
    size_t n;
    struct proto_wr wr;

    (void)state;
    for (size_t i = 0; i < sizeof(sealed); i++) {
        sealed[i] = (uint8_t)i;
    }
    proto_wr_init(&wr, file_buf, sizeof(file_buf));
    assert_true(proto_wr_str(&wr, text));
    assert_true(proto_wr_base64(&wr, sealed, sizeof(sealed)));
    assert_true(proto_wr_u8(&wr, '\n'));
    n = wr.len;
    assert_int_equal(sf_roundtrip(file_buf, n), 0);
    assert_int_equal(sf_a.key_id[31], 0x1f);
    assert_int_equal(sf_a.split_id[0], 0xf0);
    assert_int_equal(sf_a.index, 7);
    assert_string_equal(sf_a.holder, "h.7");
    assert_int_equal(sf_a.threshold, 3);
    assert_int_equal(sf_a.num_shares, 5);
    assert_int_equal(sf_a.field_bits, 1279);
    assert_int_equal(sf_a.sealed_len, sizeof(sealed));
    assert_memory_equal(sf_a.sealed, sealed, sizeof(sealed));
}

static void test_roundtrip_fields(void **state)
{
    static const unsigned fields[] = {1279, 2203, 2281, 3217, 4253};

    (void)state;
    for (size_t i = 0; i < 5; i++) {
        for (unsigned index = 1; index <= 255; index += 127) {
            size_t n;

            make_share(&sf_b, fields[i], (uint8_t)index);
            sf_b.num_shares = 255;
            sf_b.threshold = 255;
            n = encode(&sf_b);
            assert_int_equal(sf_roundtrip(file_buf, n), 0);
            assert_shares_equal(&sf_a, &sf_b);
        }
    }
    make_share(&sf_b, 4253, 9);
    assert_int_equal(sf_b.sealed_len, PROTO_SEALED_MAX);
}

/* find: the first |needle| in |hay|, or NULL (memmem is a GNU extension). */
static uint8_t *find(uint8_t *hay, size_t len, const char *needle, size_t n)
{
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

/* Threshold mode: "mode threshold", s_i of 256..1024 bytes sealed, index <= n. */
static void test_threshold_mode(void **state)
{
    static const size_t lens[] = {256, 384, 512, 1024};
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        make_share(&sf_b, 1279, 3);
        sf_b.mode = PROTO_MODE_THRESHOLD;
        sf_b.field_bits = 0;
        sf_b.sealed_len = PROTO_SEAL_OVERHEAD + lens[i];
        n = encode(&sf_b);
        assert_non_null(find(file_buf, n, "\nshares 3\nmode threshold\nsealed ", 32));
        assert_int_equal(sf_roundtrip(file_buf, n), 0);
        assert_int_equal(sf_a.mode, PROTO_MODE_THRESHOLD);
        assert_shares_equal(&sf_a, &sf_b);
    }
    testutil_check_file_mutations(sf_roundtrip, file_buf, n);
    /* s_i shorter than RSA-2048's, longer than RSA-8192's, an index above n. */
    sf_b.sealed_len = PROTO_SEAL_OVERHEAD + 255;
    assert_int_equal(proto_share_file_encode(file_buf, sizeof(file_buf), &n, &sf_b),
                     SPK_ERR_INVALID_ARG);
    sf_b.sealed_len = PROTO_SEAL_OVERHEAD + 1025;
    assert_int_equal(proto_share_file_encode(file_buf, sizeof(file_buf), &n, &sf_b),
                     SPK_ERR_INVALID_ARG);
    sf_b.sealed_len = PROTO_SEAL_OVERHEAD + 256;
    sf_b.index = 4;
    assert_int_equal(proto_share_file_encode(file_buf, sizeof(file_buf), &n, &sf_b),
                     SPK_ERR_INVALID_ARG);
    /* A rebuild share's sealed length with the threshold line: refused. */
    make_share(&sf_b, 4253, 3);
    n = encode(&sf_b);
    memcpy(file_buf2, file_buf, n);
    {
        uint8_t *f = find(file_buf2, n, "\nfield 4253\n", 12);
        size_t tail;

        assert_non_null(f);
        tail = n - (size_t)(f + 12 - file_buf2);
        memmove(f + 16, f + 12, tail);
        memcpy(f, "\nmode threshold\n", 16);
        assert_int_equal(proto_share_file_decode(&sf_a, file_buf2, n + 4), SPK_ERR_MALFORMED);
    }
}

static void test_mutations(void **state)
{
    size_t n;

    (void)state;
    make_share(&sf_b, 1279, 2);
    n = encode(&sf_b);
    testutil_check_file_mutations(sf_roundtrip, file_buf, n);
}

static void expect_line(const uint8_t *base, size_t base_len, size_t at, const char *line, int want)
{
    static uint8_t tmp[8192];
    size_t n = testutil_with_line(tmp, sizeof(tmp), base, base_len, at, line);
    uint8_t *copy = malloc(n);

    assert_non_null(copy);
    memcpy(copy, tmp, n);
    if (sf_roundtrip(copy, n) != want) {
        fail_msg("line %zu \"%.80s\": expected %d", at, line, want);
    }
    free(copy);
}

/* sealed_line: "sealed " and the base64 of |len| bytes. */
static const char *sealed_line(size_t len, uint8_t last)
{
    static char line[4096];
    uint8_t bytes[PROTO_SEALED_MAX + 8];
    struct proto_wr wr;

    memset(bytes, 0xa5, sizeof(bytes));
    if (len > 0) {
        bytes[len - 1] = last;
    }
    proto_wr_init(&wr, (uint8_t *)line, sizeof(line) - 1);
    assert_true(proto_wr_str(&wr, "sealed "));
    assert_true(proto_wr_base64(&wr, bytes, len));
    line[wr.len] = 0;
    return line;
}

static void test_bad_values(void **state)
{
    uint8_t base[8192];
    size_t len;
    char line[4096];

    (void)state;
    make_share(&sf_b, 1279, 2);
    len = encode(&sf_b);
    memcpy(base, file_buf, len);
    /* Lines: 0 magic, 1 key-id, 2 split-id, 3 index, 4 holder, 5 threshold,
     * 6 shares, 7 field, 8 sealed. */
    expect_line(base, len, 1, "key-id 00", SPK_ERR_MALFORMED);
    expect_line(base, len, 1,
                "key-id 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00",
                SPK_ERR_MALFORMED);
    expect_line(base, len, 1,
                "key-id 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1F",
                SPK_ERR_MALFORMED);
    expect_line(base, len, 1,
                "key-id 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0);
    expect_line(base, len, 2, "split-id f0e0d0c0b0a09080706050403020100", SPK_ERR_MALFORMED);
    expect_line(base, len, 2, "split-id f0e0d0c0b0a0908070605040302010000", SPK_ERR_MALFORMED);
    expect_line(base, len, 3, "index 0", SPK_ERR_MALFORMED);
    expect_line(base, len, 3, "index 256", SPK_ERR_MALFORMED);
    expect_line(base, len, 3, "index 02", SPK_ERR_MALFORMED);
    expect_line(base, len, 3, "index -2", SPK_ERR_MALFORMED);
    expect_line(base, len, 3, "index 255", 0);
    expect_line(base, len, 4, "holder .h", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "holder h/1", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "holder h 1", SPK_ERR_MALFORMED);
    expect_line(base, len, 4, "holder ", SPK_ERR_MALFORMED);
    memset(line, 0, sizeof(line));
    memcpy(line, "holder ", 7);
    memset(line + 7, 'h', PROTO_NAME_MAX);
    expect_line(base, len, 4, line, 0);
    line[7 + PROTO_NAME_MAX] = 'h'; /* PROTO_NAME_MAX + 1 */
    expect_line(base, len, 4, line, SPK_ERR_MALFORMED);
    expect_line(base, len, 5, "threshold 1", SPK_ERR_MALFORMED);
    expect_line(base, len, 5, "threshold 4", SPK_ERR_MALFORMED);
    expect_line(base, len, 5, "threshold 3", 0);
    expect_line(base, len, 6, "shares 1", SPK_ERR_MALFORMED);
    expect_line(base, len, 6, "shares 256", SPK_ERR_MALFORMED);
    expect_line(base, len, 6, "shares 255", 0);
    expect_line(base, len, 7, "field 1278", SPK_ERR_MALFORMED);
    expect_line(base, len, 7, "field 2203", SPK_ERR_MALFORMED); /* sealed is for 1279 */
    expect_line(base, len, 7, "field ", SPK_ERR_MALFORMED);

    /* sealed: exactly 48 + 5 * 160 = 848 bytes of canonical base64. */
    expect_line(base, len, 8, sealed_line(848, 0), 0);
    expect_line(base, len, 8, sealed_line(847, 0), SPK_ERR_MALFORMED);
    expect_line(base, len, 8, sealed_line(849, 0), SPK_ERR_MALFORMED); /* one too long */
    expect_line(base, len, 8, sealed_line(PROTO_SEALED_MAX + 1, 0), SPK_ERR_MALFORMED);
    expect_line(base, len, 8, sealed_line(0, 0), SPK_ERR_MALFORMED);
    /* 848 = 3 * 282 + 2: the last group is "xxx="; set a bit under the '='. */
    strcpy(line, sealed_line(848, 0));
    assert_int_equal(line[strlen(line) - 1], '=');
    assert_int_equal(line[strlen(line) - 2], 'A');
    line[strlen(line) - 2] = 'B';
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    strcpy(line, sealed_line(848, 0));
    line[strlen(line) - 1] = 0; /* padding dropped */
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    strcpy(line, sealed_line(848, 0));
    line[20] = '-'; /* base64url is not base64 */
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
    strcpy(line, sealed_line(848, 0));
    line[76] = ' '; /* no line breaks or spaces inside */
    expect_line(base, len, 8, line, SPK_ERR_MALFORMED);
}

static void test_encode_refusals(void **state)
{
    size_t n = 1, need;

    (void)state;
    make_share(&sf_b, 2203, 3);
    need = encode(&sf_b);
    for (size_t cap = 0; cap < need; cap++) {
        n = 1;
        assert_int_equal(proto_share_file_encode(file_buf, cap, &n, &sf_b), SPK_ERR_INVALID_ARG);
        assert_int_equal(n, 0);
    }
    assert_int_equal(proto_share_file_encode(file_buf, need, &n, &sf_b), 0);

#define REFUSED(stmt)                                                                              \
    do {                                                                                           \
        make_share(&sf_b, 2203, 3);                                                                \
        stmt;                                                                                      \
        assert_int_equal(proto_share_file_encode(file_buf, sizeof(file_buf), &n, &sf_b),           \
                         SPK_ERR_INVALID_ARG);                                                     \
    } while (0)
    REFUSED(sf_b.index = 0);
    REFUSED(sf_b.holder[0] = 0);
    REFUSED(strcpy(sf_b.holder, "a b"));
    REFUSED(memset(sf_b.holder, 'h', sizeof(sf_b.holder)));
    REFUSED(sf_b.threshold = 1);
    REFUSED(sf_b.threshold = 4);
    REFUSED((sf_b.threshold = 256, sf_b.num_shares = 256));
    REFUSED(sf_b.field_bits = 2204);
    REFUSED(sf_b.field_bits = 1279);
    REFUSED(sf_b.sealed_len--);
    REFUSED(sf_b.sealed_len++);
    REFUSED(sf_b.sealed_len = PROTO_SEALED_MAX + 1);
#undef REFUSED
}

static void test_sealed_opens(void **state)
{
    /* The format carries crypto_box_seal output as is: seal, write, read, open. */
    uint8_t pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
    uint8_t y[PROTO_NUM_SECRETS * 160], opened[sizeof(y)];
    size_t n;

    (void)state;
    assert_int_equal(PROTO_SEAL_OVERHEAD, crypto_box_SEALBYTES);
    assert_int_equal(crypto_box_keypair(pk, sk), 0);
    randombytes_buf(y, sizeof(y));
    make_share(&sf_b, 1279, 1);
    assert_int_equal(crypto_box_seal(sf_b.sealed, y, sizeof(y), pk), 0);
    n = encode(&sf_b);
    assert_int_equal(proto_share_file_decode(&sf_a, file_buf, n), 0);
    assert_int_equal(crypto_box_seal_open(opened, sf_a.sealed, sf_a.sealed_len, pk, sk), 0);
    assert_memory_equal(opened, y, sizeof(y));
    sodium_memzero(sk, sizeof(sk));
    sodium_memzero(opened, sizeof(opened));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known),           cmocka_unit_test(test_roundtrip_fields),
        cmocka_unit_test(test_mutations),       cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_encode_refusals), cmocka_unit_test(test_sealed_opens),
        cmocka_unit_test(test_threshold_mode),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
