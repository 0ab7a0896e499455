#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "share-holder/internal.h"

/* The allow-list parser and its lookups, and the token bucket. */

/* Z85 of 32 bytes 0x00..0x1f and of 32 bytes 0xff (checked against libzmq). */
static char key_a[41];
static char key_b[41];
static uint8_t raw_a[32];
static uint8_t raw_b[32];

#define KID1 "0101010101010101010101010101010101010101010101010101010101010101"
#define KID2 "02020202020202020202020202020202020202020202020202020202020202ff"

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 32; i++) {
        raw_a[i] = (uint8_t)i;
        raw_b[i] = 0xff;
    }
    if (zmq_z85_encode(key_a, raw_a, 32) == NULL || zmq_z85_encode(key_b, raw_b, 32) == NULL) {
        return -1;
    }
    return 0;
}

static int parse(struct sh_allow *a, const char *text, char *why, size_t why_len)
{
    return sh_allow_parse(a, (const uint8_t *)text, strlen(text), why, why_len);
}

static void test_good(void **state)
{
    char text[1024];
    char why[200] = "";
    struct sh_allow a;
    const struct sh_allow_client *c;
    uint8_t kid[32];

    (void)state;
    snprintf(text, sizeof(text),
             "# comment\n"
             "\n"
             "client edge-1 %s *\n"
             "client edge.2 %s " KID1 "," KID2 " 10.0.0.0/8,192.168.1.7,fd00::/8\n",
             key_a, key_b);
    assert_int_equal(parse(&a, text, why, sizeof(why)), 0);
    assert_int_equal(a.num_clients, 2);

    c = sh_allow_find(&a, raw_a);
    assert_non_null(c);
    assert_string_equal(c->name, "edge-1");
    assert_true(c->all_keys);
    memset(kid, 0x77, sizeof(kid));
    assert_true(sh_allow_key(c, kid));
    assert_true(sh_allow_address(c, "203.0.113.9"));
    assert_true(sh_allow_address(c, "anything")); /* no ranges: any peer */

    c = sh_allow_find(&a, raw_b);
    assert_non_null(c);
    assert_string_equal(c->name, "edge.2");
    assert_false(c->all_keys);
    assert_int_equal(c->num_key_ids, 2);
    memset(kid, 0x01, sizeof(kid));
    assert_true(sh_allow_key(c, kid));
    kid[31] = 0x02;
    assert_false(sh_allow_key(c, kid));
    memset(kid, 0x02, sizeof(kid));
    kid[31] = 0xff;
    assert_true(sh_allow_key(c, kid));

    assert_int_equal(c->num_ranges, 3);
    assert_true(sh_allow_address(c, "10.1.2.3"));
    assert_true(sh_allow_address(c, "::ffff:10.255.0.1"));
    assert_false(sh_allow_address(c, "11.0.0.1"));
    assert_true(sh_allow_address(c, "192.168.1.7"));
    assert_false(sh_allow_address(c, "192.168.1.8"));
    assert_true(sh_allow_address(c, "fd12:3456::1"));
    assert_false(sh_allow_address(c, "fe80::1"));
    assert_false(sh_allow_address(c, "not an address"));
    assert_false(sh_allow_address(c, NULL));

    memset(kid, 0, sizeof(kid));
    assert_null(sh_allow_find(&a, kid));
    sh_allow_cleanup(&a);
    assert_int_equal(a.num_clients, 0);
    sh_allow_cleanup(&a); /* twice is fine */
}

static void test_last_line_without_newline(void **state)
{
    char text[256];
    struct sh_allow a;

    (void)state;
    snprintf(text, sizeof(text), "client x %s *", key_a);
    assert_int_equal(parse(&a, text, NULL, 0), 0);
    assert_int_equal(a.num_clients, 1);
    sh_allow_cleanup(&a);
    assert_int_equal(parse(&a, "", NULL, 0), 0);
    assert_int_equal(a.num_clients, 0);
    sh_allow_cleanup(&a);
}

static void test_bad(void **state)
{
    static const char *const fmts[] = {
        "client\n",
        "client x\n",
        "client x %s\n",                    /* no key ids */
        "client x %s *  \n",                /* double space */
        "client x %s * 10.0.0.0/8 extra\n", /* extra word */
        "client .x %s *\n",                 /* bad name */
        "client x %s " KID1 ",\n",          /* trailing comma */
        "client x %s ," KID1 "\n",          /* leading comma */
        "client x %s 0101\n",               /* short key id */
        "client x %s " KID1 "0\n",          /* long key id */
        "client x %s "
        "0A01010101010101010101010101010101010101010101010101010101010101"
        "\n",
        "client x %s * 10.0.0.1/8\n",     /* host bits */
        "client x %s * 10.0.0.0/33\n",    /* prefix */
        "client x %s * 10.0.0.0/\n",      /* empty prefix */
        "client x %s * 10.0.0.0/08\n",    /* leading zero */
        "client x %s * 300.0.0.1\n",      /* not an address */
        "client x %s * ::1/129\n",        /* prefix */
        "client x %s *\r\n",              /* CR */
        "clients x %s *\n",               /* keyword */
        " client x %s *\n",               /* leading space */
        "client x %s *\nclient x %s *\n", /* duplicate name (second key) */
    };
    char text[512];
    char why[200];
    struct sh_allow a;

    (void)state;
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        /* every format takes one or two keys; give key_a then key_b */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(text, sizeof(text), fmts[i], key_a, key_b);
#pragma GCC diagnostic pop
        why[0] = '\0';
        assert_int_equal(parse(&a, text, why, sizeof(why)), SPK_ERR_MALFORMED);
        assert_true(strncmp(why, "line ", 5) == 0);
        assert_int_equal(a.num_clients, 0);
    }
    /* a bad Z85 key */
    snprintf(text, sizeof(text), "client x %.39s~ *\n", key_a);
    assert_int_equal(parse(&a, text, why, sizeof(why)), SPK_ERR_MALFORMED);
    /* the same key twice under two names */
    snprintf(text, sizeof(text), "client x %s *\n# ok\nclient y %s *\n", key_a, key_a);
    assert_int_equal(parse(&a, text, why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_string_equal(why, "line 3: client y has the key of client x");
    /* a NUL inside */
    snprintf(text, sizeof(text), "client x %s *\n", key_a);
    text[3] = '\0';
    assert_int_equal(sh_allow_parse(&a, (const uint8_t *)text, 10, why, sizeof(why)),
                     SPK_ERR_MALFORMED);
}

static void test_truncations(void **state)
{
    char text[256];
    struct sh_allow a;
    size_t len;

    (void)state;
    /* every prefix either parses to at most one client or is refused; never crashes */
    len = (size_t)snprintf(text, sizeof(text), "client edge %s " KID1 " 127.0.0.1/32,::1\n", key_a);
    for (size_t cut = 0; cut <= len; cut++) {
        int r = sh_allow_parse(&a, (const uint8_t *)text, cut, NULL, 0);

        assert_true(r == 0 || r == SPK_ERR_MALFORMED);
        assert_true(a.num_clients <= 1);
        sh_allow_cleanup(&a);
    }
}

static void test_bucket(void **state)
{
    struct sh_bucket b;
    unsigned taken = 0;

    (void)state;
    memset(&b, 0, sizeof(b));
    b.tokens = 5;
    b.last_ms = 1000;
    for (int i = 0; i < 10; i++) {
        taken += sh_bucket_take(&b, 2.0, 5, 1000) ? 1 : 0;
    }
    assert_int_equal(taken, 5);
    /* 500 ms at 2/s: one more token */
    assert_true(sh_bucket_take(&b, 2.0, 5, 1500));
    assert_false(sh_bucket_take(&b, 2.0, 5, 1500));
    /* a long pause refills only up to the burst */
    taken = 0;
    for (int i = 0; i < 10; i++) {
        taken += sh_bucket_take(&b, 2.0, 5, 100000) ? 1 : 0;
    }
    assert_int_equal(taken, 5);
    /* time going backwards adds nothing */
    assert_false(sh_bucket_take(&b, 2.0, 5, 50));
}

static void test_config(void **state)
{
    char path[] = "/tmp/spk-sh-config-XXXXXX";
    int fd = mkstemp(path);
    FILE *f;
    struct sh_options opt;
    char why[256] = "";

    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("# holder h1\nkey /etc/h1.key\nshares /var/lib/h1\nallow /etc/h1.allow\n"
          "bind tcp://127.0.0.1:7001\nrate 7\nburst 9\nallow-unlocked no\n",
          f);
    fclose(f);
    sh_options_init(&opt);
    memcpy(opt.bind, "tcp://127.0.0.1:9", 18); /* the command line wins */
    opt.set_burst = true;
    opt.burst = 3;
    assert_int_equal(sh_config_load(&opt, path, why, sizeof(why)), 0);
    assert_string_equal(opt.key_path, "/etc/h1.key");
    assert_string_equal(opt.shares_dir, "/var/lib/h1");
    assert_string_equal(opt.bind, "tcp://127.0.0.1:9");
    assert_true(opt.rate == 7.0);
    assert_int_equal(opt.burst, 3);
    assert_false(opt.allow_unlocked);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("key /k\nlisten tcp://x\n", f);
    fclose(f);
    sh_options_init(&opt);
    assert_int_equal(sh_config_load(&opt, path, why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "line 2: unknown option"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),   cmocka_unit_test(test_last_line_without_newline),
        cmocka_unit_test(test_bad),    cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_bucket), cmocka_unit_test(test_config),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
