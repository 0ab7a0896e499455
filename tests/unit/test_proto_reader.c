/* Bounded reader and fixed-buffer writer primitives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

static void test_rd_ints(void **state)
{
    static const uint8_t buf[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    struct proto_rd rd;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;

    (void)state;
    proto_rd_init(&rd, buf, sizeof(buf));
    assert_true(proto_rd_u8(&rd, &u8));
    assert_int_equal(u8, 1);
    assert_true(proto_rd_u16(&rd, &u16));
    assert_int_equal(u16, 0x0203);
    assert_true(proto_rd_u32(&rd, &u32));
    assert_int_equal(u32, 0x04050607);
    assert_true(proto_rd_u64(&rd, &u64));
    assert_true(u64 == 0x08090a0b0c0d0e0fULL);
    assert_int_equal(proto_rd_len(&rd), 0);
    assert_false(proto_rd_u8(&rd, &u8));
    assert_int_equal(proto_rd_offset(&rd, buf), sizeof(buf));
}

static void test_rd_short_reads_leave_reader(void **state)
{
    static const uint8_t buf[] = {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11};
    struct proto_rd rd;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    uint8_t copy[8];

    (void)state;
    for (size_t n = 0; n < sizeof(buf); n++) {
        proto_rd_init(&rd, buf, n);
        if (n < 2) {
            assert_false(proto_rd_u16(&rd, &u16));
        }
        if (n < 4) {
            assert_false(proto_rd_u32(&rd, &u32));
        }
        assert_false(proto_rd_u64(&rd, &u64));
        assert_false(proto_rd_copy(&rd, copy, n + 1));
        assert_false(proto_rd_skip(&rd, n + 1));
        /* A failed read consumes nothing. */
        assert_int_equal(proto_rd_len(&rd), n);
        assert_true(rd.p == buf);
    }
    proto_rd_init(&rd, buf, sizeof(buf));
    assert_false(proto_rd_skip(&rd, SIZE_MAX));
    assert_true(proto_rd_skip(&rd, sizeof(buf)));
    assert_true(proto_rd_skip(&rd, 0));
}

static void test_rd_sub_and_prefixed(void **state)
{
    static const uint8_t buf[] = {0x00, 0x03, 'a', 'b', 'c', 0x00, 0x03, 'x', 'y'};
    struct proto_rd rd, child;
    uint8_t c;

    (void)state;
    proto_rd_init(&rd, buf, sizeof(buf));
    assert_true(proto_rd_u16_prefixed(&rd, &child));
    assert_true(proto_rd_equals(&child, "abc"));
    /* The second prefix claims one byte more than is left. */
    assert_false(proto_rd_u16_prefixed(&rd, &child));
    assert_int_equal(proto_rd_len(&rd), 4);
    assert_true(proto_rd_sub(&rd, &child, 4));
    assert_int_equal(proto_rd_len(&child), 4);
    assert_true(proto_rd_u8(&child, &c));
    assert_int_equal(c, 0);
    assert_false(proto_rd_sub(&rd, &child, 1));
}

static void test_rd_line(void **state)
{
    static const char text[] = "one two\n\nthree\nno-newline";
    struct proto_rd rd, line, word;

    (void)state;
    proto_rd_init(&rd, (const uint8_t *)text, strlen(text));
    assert_true(proto_rd_line(&rd, &line));
    assert_true(proto_rd_equals(&line, "one two"));
    assert_true(proto_rd_word(&line, &word));
    assert_true(proto_rd_equals(&word, "one"));
    assert_true(proto_rd_word(&line, &word));
    assert_true(proto_rd_equals(&word, "two"));
    assert_false(proto_rd_word(&line, &word));
    assert_true(proto_rd_line(&rd, &line));
    assert_int_equal(proto_rd_len(&line), 0);
    assert_true(proto_rd_line(&rd, &line));
    assert_true(proto_rd_equals(&line, "three"));
    assert_false(proto_rd_line(&rd, &line));
    assert_true(proto_rd_equals(&rd, "no-newline"));
}

static void test_rd_line_refuses_cr_nul(void **state)
{
    static const uint8_t crlf[] = {'a', '\r', '\n'};
    static const uint8_t nul[] = {'a', 0, 'b', '\n'};
    struct proto_rd rd, line;

    (void)state;
    proto_rd_init(&rd, crlf, sizeof(crlf));
    assert_false(proto_rd_line(&rd, &line));
    assert_int_equal(proto_rd_len(&rd), sizeof(crlf));
    proto_rd_init(&rd, nul, sizeof(nul));
    assert_false(proto_rd_line(&rd, &line));
    proto_rd_init(&rd, NULL, 0);
    assert_false(proto_rd_line(&rd, &line));
}

static void test_rd_word_empty(void **state)
{
    static const char text[] = "a  b";
    struct proto_rd rd, word;

    (void)state;
    proto_rd_init(&rd, (const uint8_t *)text, strlen(text));
    assert_true(proto_rd_word(&rd, &word));
    assert_true(proto_rd_equals(&word, "a"));
    /* Two spaces make an empty word. */
    assert_false(proto_rd_word(&rd, &word));
    proto_rd_init(&rd, (const uint8_t *)text, 0);
    assert_false(proto_rd_word(&rd, &word));
}

static void test_rd_equals(void **state)
{
    struct proto_rd rd;

    (void)state;
    proto_rd_init(&rd, (const uint8_t *)"abc", 3);
    assert_true(proto_rd_equals(&rd, "abc"));
    assert_false(proto_rd_equals(&rd, "ab"));
    assert_false(proto_rd_equals(&rd, "abcd"));
    assert_false(proto_rd_equals(&rd, "abd"));
    proto_rd_init(&rd, NULL, 0);
    assert_true(proto_rd_equals(&rd, ""));
}

static void test_wr_fixed_buffer(void **state)
{
    uint8_t buf[16];
    struct proto_wr wr;

    (void)state;
    memset(buf, 0x5a, sizeof(buf));
    proto_wr_init(&wr, buf, 15);
    assert_true(proto_wr_u8(&wr, 0x01));
    assert_true(proto_wr_u16(&wr, 0x0203));
    assert_true(proto_wr_u32(&wr, 0x04050607));
    assert_true(proto_wr_u64(&wr, 0x08090a0b0c0d0e0fULL));
    assert_int_equal(wr.len, 15);
    for (size_t i = 0; i < 15; i++) {
        assert_int_equal(buf[i], i + 1);
    }
    /* Full: the next write fails, writes nothing past cap, and sticks. */
    assert_false(proto_wr_u8(&wr, 0xff));
    assert_int_equal(buf[15], 0x5a);
    assert_true(wr.failed);
    assert_false(proto_wr_bytes(&wr, NULL, 0));
    assert_null(proto_wr_reserve(&wr, 0));
    assert_int_equal(wr.len, 15);
}

static void test_wr_partial_does_not_write(void **state)
{
    uint8_t buf[8];
    struct proto_wr wr;

    (void)state;
    memset(buf, 0, sizeof(buf));
    proto_wr_init(&wr, buf, 3);
    assert_true(proto_wr_u8(&wr, 9));
    assert_false(proto_wr_u32(&wr, 0xffffffff));
    assert_int_equal(buf[1], 0);
    assert_int_equal(wr.len, 1);
    proto_wr_init(&wr, buf, 4);
    assert_null(proto_wr_reserve(&wr, SIZE_MAX));
    assert_true(wr.failed);
}

static void test_wr_put_at(void **state)
{
    uint8_t buf[8];
    struct proto_wr wr;

    (void)state;
    proto_wr_init(&wr, buf, sizeof(buf));
    assert_true(proto_wr_u16(&wr, 0));
    assert_true(proto_wr_str(&wr, "xy"));
    assert_true(proto_wr_put_u16_at(&wr, 0, 2));
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[1], 2);
    assert_false(proto_wr_put_u16_at(&wr, 3, 1));
    assert_false(proto_wr_put_u16_at(&wr, SIZE_MAX, 1));
    assert_true(proto_wr_put_u32_at(&wr, 0, 0x01020304));
    assert_false(proto_wr_put_u32_at(&wr, 1, 0));
    assert_int_equal(buf[3], 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rd_ints),
        cmocka_unit_test(test_rd_short_reads_leave_reader),
        cmocka_unit_test(test_rd_sub_and_prefixed),
        cmocka_unit_test(test_rd_line),
        cmocka_unit_test(test_rd_line_refuses_cr_nul),
        cmocka_unit_test(test_rd_word_empty),
        cmocka_unit_test(test_rd_equals),
        cmocka_unit_test(test_wr_fixed_buffer),
        cmocka_unit_test(test_wr_partial_does_not_write),
        cmocka_unit_test(test_wr_put_at),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
