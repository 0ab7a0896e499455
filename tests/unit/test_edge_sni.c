/*
 * test_edge_sni: the server_name extension parser and the session id
 * context of a name (edge_sni.c). The end-to-end behaviour (sessions refused
 * across names, trailing dots) is tests/integration/test_edge_sni.sh.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "edge/internal.h"

/* sni_ext: a server_name extension body with one entry of |type|. */
static size_t sni_ext(uint8_t *out, uint8_t type, const char *name)
{
    size_t n = strlen(name);

    out[0] = (uint8_t)((n + 3) >> 8);
    out[1] = (uint8_t)(n + 3);
    out[2] = type;
    out[3] = (uint8_t)(n >> 8);
    out[4] = (uint8_t)n;
    memcpy(out + 5, name, n);
    return n + 5;
}

static void test_parse(void **state)
{
    uint8_t ext[600];
    char name[EDGE_SNI_NAME_MAX + 1];
    char long_name[300];
    size_t len;

    (void)state;
    len = sni_ext(ext, 0, "www.example");
    assert_int_equal(edge_sni_parse(name, ext, len), 0);
    assert_string_equal(name, "www.example");
    len = sni_ext(ext, 0, "API.Example.");
    assert_int_equal(edge_sni_parse(name, ext, len), 0);
    assert_string_equal(name, "api.example");
    len = sni_ext(ext, 1, "not-a-host");
    assert_int_equal(edge_sni_parse(name, ext, len), 0);
    assert_string_equal(name, "");

    len = sni_ext(ext, 0, "api.example..");
    assert_int_equal(edge_sni_parse(name, ext, len), SPK_ERR_MALFORMED);
    len = sni_ext(ext, 0, ".");
    assert_int_equal(edge_sni_parse(name, ext, len), SPK_ERR_MALFORMED);
    len = sni_ext(ext, 0, "a b");
    assert_int_equal(edge_sni_parse(name, ext, len), SPK_ERR_MALFORMED);
    len = sni_ext(ext, 0, "");
    assert_int_equal(edge_sni_parse(name, ext, len), SPK_ERR_MALFORMED);
    memset(long_name, 'a', 256);
    long_name[256] = '\0';
    len = sni_ext(ext, 0, long_name);
    assert_int_equal(edge_sni_parse(name, ext, len), SPK_ERR_MALFORMED);
    long_name[255] = '\0';
    len = sni_ext(ext, 0, long_name);
    assert_int_equal(edge_sni_parse(name, ext, len), 0);
    assert_int_equal(strlen(name), 255);
    /* Two host names; a list longer than the extension; trailing bytes. */
    len = sni_ext(ext, 0, "a.test");
    ext[1] = (uint8_t)(ext[1] + 9);
    memcpy(ext + len,
           "\x00\x00\x06"
           "b.test",
           9);
    assert_int_equal(edge_sni_parse(name, ext, len + 9), SPK_ERR_MALFORMED);
    len = sni_ext(ext, 0, "a.test");
    assert_int_equal(edge_sni_parse(name, ext, len - 1), SPK_ERR_MALFORMED);
    ext[len] = 0;
    assert_int_equal(edge_sni_parse(name, ext, len + 1), SPK_ERR_MALFORMED);
    assert_int_equal(edge_sni_parse(name, ext, 0), SPK_ERR_MALFORMED);
}

static void test_context(void **state)
{
    uint8_t a[EDGE_SNI_CTX_LEN], b[EDGE_SNI_CTX_LEN], none[EDGE_SNI_CTX_LEN];

    (void)state;
    edge_sni_session_context(a, "www.example");
    edge_sni_session_context(b, "www.example");
    assert_memory_equal(a, b, sizeof(a));
    edge_sni_session_context(b, "api.example");
    assert_memory_not_equal(a, b, sizeof(a));
    edge_sni_session_context(none, "");
    assert_memory_not_equal(a, none, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
