/* Text encodings: hex, Z85 (against libzmq), base64 (against libsodium),
 * names, decimals, magic lines and the field table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "proto/proto.h"

static struct proto_rd rd_str(const char *s)
{
    struct proto_rd rd;

    proto_rd_init(&rd, (const uint8_t *)s, strlen(s));
    return rd;
}

static struct proto_rd rd_buf(const uint8_t *p, size_t n)
{
    struct proto_rd rd;

    proto_rd_init(&rd, p, n);
    return rd;
}

/* ---- hex ----------------------------------------------------------------- */

static void test_hex_known(void **state)
{
    static const uint8_t want[] = {0x00, 0xff, 0x10, 0xab, 0x9c, 0xde, 0x01, 0x7f};
    uint8_t out[8], buf[32];
    struct proto_rd rd = rd_str("00ff10ab9cde017f");
    struct proto_wr wr;

    (void)state;
    assert_true(proto_hex_decode(&rd, out, sizeof(out)));
    assert_memory_equal(out, want, sizeof(want));
    proto_wr_init(&wr, buf, sizeof(buf));
    assert_true(proto_wr_hex(&wr, want, sizeof(want)));
    assert_int_equal(wr.len, 16);
    assert_memory_equal(buf, "00ff10ab9cde017f", 16);
    proto_wr_init(&wr, buf, 15);
    assert_false(proto_wr_hex(&wr, want, sizeof(want)));
}

static void test_hex_every_char(void **state)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t in[2], out[1];

    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        const char *d = c != 0 ? memchr(digits, (int)c, 16) : NULL;

        in[0] = (uint8_t)c;
        in[1] = '0';
        struct proto_rd rd = rd_buf(in, 2);
        bool ok = proto_hex_decode(&rd, out, 1);

        assert_int_equal(ok, d != NULL);
        if (ok) {
            assert_int_equal(out[0], (unsigned)(d - digits) << 4);
        } else {
            assert_int_equal(out[0], 0); /* wiped */
        }
        in[0] = '0';
        in[1] = (uint8_t)c;
        rd = rd_buf(in, 2);
        ok = proto_hex_decode(&rd, out, 1);
        assert_int_equal(ok, d != NULL);
        if (ok) {
            assert_int_equal(out[0], (unsigned)(d - digits));
        }
    }
}

static void test_hex_refusals(void **state)
{
    uint8_t out[4];
    size_t n;
    struct proto_rd rd;

    (void)state;
    rd = rd_str("00FF");
    assert_false(proto_hex_decode(&rd, out, 2)); /* uppercase */
    rd = rd_str("00f");
    assert_false(proto_hex_decode(&rd, out, 2));
    rd = rd_str("00ff00");
    assert_false(proto_hex_decode(&rd, out, 2)); /* one byte too long */
    rd = rd_str("00f ");
    assert_false(proto_hex_decode(&rd, out, 2));
    rd = rd_str("");
    assert_true(proto_hex_decode(&rd, out, 0));

    rd = rd_str("010001");
    assert_true(proto_hex_decode_var(&rd, out, 4, &n));
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 1);
    rd = rd_str("00010001"); /* leading zero byte */
    assert_false(proto_hex_decode_var(&rd, out, 4, &n));
    assert_int_equal(n, 0);
    rd = rd_str("00");
    assert_false(proto_hex_decode_var(&rd, out, 4, &n));
    rd = rd_str("");
    assert_false(proto_hex_decode_var(&rd, out, 4, &n));
    rd = rd_str("10001");
    assert_false(proto_hex_decode_var(&rd, out, 4, &n));
    rd = rd_str("ffffffff");
    assert_true(proto_hex_decode_var(&rd, out, 4, &n));
    assert_int_equal(n, 4);
    rd = rd_str("ffffffffff"); /* cap + 1 */
    assert_false(proto_hex_decode_var(&rd, out, 4, &n));
}

/* ---- Z85 ------------------------------------------------------------------ */

static void z85_mine(char out[41], const uint8_t key[32])
{
    struct proto_wr wr;

    proto_wr_init(&wr, (uint8_t *)out, 40);
    assert_true(proto_wr_z85_key(&wr, key));
    assert_int_equal(wr.len, 40);
    out[40] = 0;
}

static void test_z85_rfc32_vector(void **state)
{
    /* RFC 32's example: 86 4F D2 6F B5 59 F7 5B is "HelloWorld"; zero bytes
     * are "00000" per group. */
    uint8_t key[32] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
    char text[41];
    uint8_t back[32];
    struct proto_rd rd;

    (void)state;
    z85_mine(text, key);
    assert_string_equal(text, "HelloWorld000000000000000000000000000000");
    rd = rd_str(text);
    assert_true(proto_z85_decode_key(&rd, back));
    assert_memory_equal(back, key, 32);
}

static void test_z85_zmq_known_keys(void **state)
{
    /* The CURVE test keys of ZeroMQ's documentation (curve_keygen, RFC 26). */
    static const char *pairs[][2] = {
        {"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"},
        {"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"},
    };

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        uint8_t pk[32], sk[32], pk2[32], zpk[32];
        char text[41];
        struct proto_rd rd;

        rd = rd_str(pairs[i][0]);
        assert_true(proto_z85_decode_key(&rd, pk));
        rd = rd_str(pairs[i][1]);
        assert_true(proto_z85_decode_key(&rd, sk));
        assert_non_null(zmq_z85_decode(zpk, pairs[i][0]));
        assert_memory_equal(pk, zpk, 32);
        assert_int_equal(crypto_scalarmult_base(pk2, sk), 0);
        assert_memory_equal(pk, pk2, 32);
        z85_mine(text, sk);
        assert_string_equal(text, pairs[i][1]);
    }
}

static void test_z85_against_libzmq_random(void **state)
{
    (void)state;
    for (int i = 0; i < 2000; i++) {
        uint8_t key[32], back[32];
        char mine[41], theirs[41];
        struct proto_rd rd;

        randombytes_buf(key, sizeof(key));
        if (i < 256) {
            memset(key, i, sizeof(key)); /* every all-same byte value too */
        }
        z85_mine(mine, key);
        assert_non_null(zmq_z85_encode(theirs, key, sizeof(key)));
        assert_string_equal(mine, theirs);
        rd = rd_str(theirs);
        assert_true(proto_z85_decode_key(&rd, back));
        assert_memory_equal(back, key, 32);
    }
}

static void test_z85_against_zmq_curve_keypair(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        char zpub[41], zsec[41], again[41];
        uint8_t pk[32], sk[32], derived[32];
        struct proto_rd rd;

        assert_int_equal(zmq_curve_keypair(zpub, zsec), 0);
        rd = rd_str(zpub);
        assert_true(proto_z85_decode_key(&rd, pk));
        rd = rd_str(zsec);
        assert_true(proto_z85_decode_key(&rd, sk));
        assert_int_equal(crypto_scalarmult_base(derived, sk), 0);
        assert_memory_equal(derived, pk, 32);
        z85_mine(again, sk);
        assert_string_equal(again, zsec);
        z85_mine(again, pk);
        assert_string_equal(again, zpub);
        sodium_memzero(sk, sizeof(sk));
    }
}

static void test_z85_every_char(void **state)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    uint8_t text[40], key[32];

    (void)state;
    assert_int_equal(strlen(alphabet), 85);
    for (unsigned c = 0; c < 256; c++) {
        const char *d = c != 0 ? memchr(alphabet, (int)c, 85) : NULL;
        struct proto_rd rd;
        bool ok;

        memset(text, '0', sizeof(text));
        text[39] = (uint8_t)c;
        rd = rd_buf(text, sizeof(text));
        memset(key, 0x77, sizeof(key));
        ok = proto_z85_decode_key(&rd, key);
        assert_int_equal(ok, d != NULL);
        if (ok) {
            assert_int_equal(key[31], (unsigned)(d - alphabet));
        } else {
            uint8_t zero[32] = {0};

            assert_memory_equal(key, zero, 32); /* wiped on failure */
        }
    }
}

static void test_z85_refusals(void **state)
{
    uint8_t key[32], ff[32];
    char text[48];
    struct proto_rd rd;

    (void)state;
    memset(ff, 0xff, sizeof(ff));
    z85_mine(text, ff);
    rd = rd_str(text);
    assert_true(proto_z85_decode_key(&rd, key));
    assert_memory_equal(key, ff, 32);
    /* "%nSc0" is 0xffffffff; "%nSc1" and "#####" are above 2^32 - 1 and have
     * no byte form: libzmq wraps them, we refuse. */
    assert_memory_equal(text, "%nSc0", 5);
    memcpy(text, "%nSc1", 5);
    rd = rd_str(text);
    assert_false(proto_z85_decode_key(&rd, key));
    memcpy(text + 35, "#####", 5);
    rd = rd_str(text);
    assert_false(proto_z85_decode_key(&rd, key));

    snprintf(text, sizeof(text), "%s", "HelloWorld00000000000000000000000000000");
    rd = rd_str(text); /* 39 characters */
    assert_false(proto_z85_decode_key(&rd, key));
    snprintf(text, sizeof(text), "%s", "HelloWorld0000000000000000000000000000000");
    rd = rd_str(text); /* 41 characters */
    assert_false(proto_z85_decode_key(&rd, key));
    {
        struct proto_wr wr;
        uint8_t small[39];

        proto_wr_init(&wr, small, sizeof(small));
        assert_false(proto_wr_z85_key(&wr, ff));
    }
}

/* ---- base64 ---------------------------------------------------------------- */

static void test_base64_rfc4648(void **state)
{
    static const char *vec[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        uint8_t buf[16], out[16];
        size_t n = 99;
        struct proto_wr wr;
        struct proto_rd rd;

        proto_wr_init(&wr, buf, sizeof(buf));
        assert_true(proto_wr_base64(&wr, (const uint8_t *)vec[i][0], strlen(vec[i][0])));
        assert_int_equal(wr.len, strlen(vec[i][1]));
        assert_memory_equal(buf, vec[i][1], wr.len);
        rd = rd_str(vec[i][1]);
        assert_true(proto_base64_decode(&rd, out, sizeof(out), &n));
        assert_int_equal(n, strlen(vec[i][0]));
        assert_memory_equal(out, vec[i][0], n);
    }
}

static void test_base64_against_libsodium(void **state)
{
    uint8_t bin[100], out[100];
    char theirs[sodium_base64_ENCODED_LEN(100, sodium_base64_VARIANT_ORIGINAL)];
    uint8_t mine[sizeof(theirs)];

    (void)state;
    for (size_t len = 0; len <= sizeof(bin); len++) {
        struct proto_wr wr;
        struct proto_rd rd;
        size_t n;

        randombytes_buf(bin, len);
        sodium_bin2base64(theirs, sizeof(theirs), bin, len, sodium_base64_VARIANT_ORIGINAL);
        proto_wr_init(&wr, mine, sizeof(mine));
        assert_true(proto_wr_base64(&wr, bin, len));
        assert_int_equal(wr.len, strlen(theirs));
        assert_memory_equal(mine, theirs, wr.len);
        rd = rd_str(theirs);
        assert_true(proto_base64_decode(&rd, out, len, &n));
        assert_int_equal(n, len);
        assert_memory_equal(out, bin, len);
        if (len > 0) {
            /* One byte short of room. */
            assert_false(proto_base64_decode(&rd, out, len - 1, &n));
        }
    }
}

static void test_base64_refusals(void **state)
{
    static const char *bad[] = {
        "Zh==", /* non-zero bits under the padding */
        "Zm9=", /* same, one '=' */
        "Zg",   /* padding missing */
        "Zm8",    "Zg=",   "Zg===", "====", "Z===", "Zg==Zg==", /* '=' inside */
        "Zm9v\n", " Zm9v", "Zm 9v", "Zm9-", "Zm9_", "Zm9v=",    "Zm=v", "Zm9vYmFy=",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[16];
        size_t n = 7;
        struct proto_rd rd = rd_str(bad[i]);

        assert_false(proto_base64_decode(&rd, out, sizeof(out), &n));
        assert_int_equal(n, 0);
    }
}

static void test_base64_fuzz_vs_libsodium(void **state)
{
    static const char chars[] = "AZaz09+/=-_ \n";
    uint8_t out[16], out2[16];

    (void)state;
    for (int i = 0; i < 50000; i++) {
        char text[13];
        size_t len = randombytes_uniform(13);
        size_t n, n2;
        struct proto_rd rd;
        bool mine;
        int theirs;

        for (size_t j = 0; j < len; j++) {
            text[j] = chars[randombytes_uniform(sizeof(chars) - 1)];
        }
        text[len] = 0;
        rd = rd_str(text);
        mine = proto_base64_decode(&rd, out, sizeof(out), &n);
        theirs = sodium_base642bin(out2, sizeof(out2), text, len, NULL, &n2, NULL,
                                   sodium_base64_VARIANT_ORIGINAL);
        /* libsodium also refuses non-canonical padding bits; the two agree on
         * every input, and on the bytes when both accept. */
        assert_int_equal(mine, theirs == 0);
        if (mine) {
            assert_int_equal(n, n2);
            assert_memory_equal(out, out2, n);
        }
    }
}

/* ---- names, decimals, lines, field ---------------------------------------- */

static void test_names(void **state)
{
    static const char *good[] = {"a", "holder-1", "edge_01.example", "A.b-C_d", "-x", "0"};
    static const char *bad[] = {"", ".hidden", "..", "a/b", "a b", "a\n", "é", "a:b", "a*"};
    char name[PROTO_NAME_MAX + 2];
    char copy[PROTO_NAME_MAX + 1];
    struct proto_rd rd;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        rd = rd_str(good[i]);
        assert_true(proto_name_valid(&rd));
        assert_true(proto_name_copy(&rd, copy));
        assert_string_equal(copy, good[i]);
        assert_true(proto_name_str_valid(copy));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rd = rd_str(bad[i]);
        assert_false(proto_name_valid(&rd));
        assert_false(proto_name_copy(&rd, copy));
    }
    memset(name, 'n', PROTO_NAME_MAX);
    name[PROTO_NAME_MAX] = 0;
    rd = rd_str(name);
    assert_true(proto_name_valid(&rd));
    assert_true(proto_name_str_valid(name));
    name[PROTO_NAME_MAX] = 'n';
    name[PROTO_NAME_MAX + 1] = 0;
    rd = rd_str(name); /* PROTO_NAME_MAX + 1 */
    assert_false(proto_name_valid(&rd));
    assert_false(proto_name_str_valid(name)); /* no NUL within 65 bytes */
}

static void test_decimal(void **state)
{
    static const struct {
        const char *s;
        bool ok;
        uint32_t v;
    } vec[] = {
        {"0", true, 0},           {"1", true, 1},
        {"255", true, 255},       {"4294967295", true, UINT32_MAX},
        {"4294967296", false, 0}, {"99999999999", false, 0},
        {"00", false, 0},         {"01", false, 0},
        {"+1", false, 0},         {"-1", false, 0},
        {" 1", false, 0},         {"1 ", false, 0},
        {"", false, 0},           {"1a", false, 0},
        {"0x1", false, 0},
    };
    uint8_t buf[16];
    struct proto_wr wr;

    (void)state;
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        struct proto_rd rd = rd_str(vec[i].s);
        uint32_t v = 12345;

        assert_int_equal(proto_dec_decode(&rd, 0, UINT32_MAX, &v), vec[i].ok);
        if (vec[i].ok) {
            assert_int_equal(v, vec[i].v);
            proto_wr_init(&wr, buf, sizeof(buf));
            assert_true(proto_wr_dec(&wr, v));
            assert_int_equal(wr.len, strlen(vec[i].s));
            assert_memory_equal(buf, vec[i].s, wr.len);
        }
    }
    {
        struct proto_rd rd = rd_str("256");
        uint32_t v;

        assert_false(proto_dec_decode(&rd, 1, 255, &v));
        rd = rd_str("0");
        assert_false(proto_dec_decode(&rd, 1, 255, &v));
        rd = rd_str("255");
        assert_true(proto_dec_decode(&rd, 1, 255, &v));
    }
    proto_wr_init(&wr, buf, 2);
    assert_false(proto_wr_dec(&wr, 100));
}

static void test_magic(void **state)
{
    static const struct {
        const char *s;
        int r;
    } vec[] = {
        {"splitkey-x 1\n", 0},
        {"splitkey-x 2\n", SPK_ERR_VERSION},
        {"splitkey-x 0\n", SPK_ERR_VERSION},
        {"splitkey-x 4294967296\n", SPK_ERR_VERSION},
        {"splitkey-x 123456789012345678901234567890\n", SPK_ERR_VERSION},
        {"splitkey-x 01\n", SPK_ERR_MALFORMED},
        {"splitkey-x 1 \n", SPK_ERR_MALFORMED},
        {"splitkey-x  1\n", SPK_ERR_MALFORMED},
        {"splitkey-x 1\r\n", SPK_ERR_MALFORMED},
        {"splitkey-x\n", SPK_ERR_MALFORMED},
        {"splitkey-x \n", SPK_ERR_MALFORMED},
        {"splitkey-x v1\n", SPK_ERR_MALFORMED},
        {"splitkey-y 1\n", SPK_ERR_MALFORMED},
        {"Splitkey-x 1\n", SPK_ERR_MALFORMED},
        {"splitkey-x 1", SPK_ERR_MALFORMED},
        {"", SPK_ERR_MALFORMED},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        struct proto_rd rd;

        assert_int_equal(proto_text_open(&rd, (const uint8_t *)vec[i].s, strlen(vec[i].s),
                                         PROTO_FILE_MAX, "splitkey-x", 1),
                         vec[i].r);
        if (vec[i].r == 0) {
            assert_int_equal(proto_rd_len(&rd), 0);
        }
    }
    /* A file one byte longer than |max_len| is refused before it is read. */
    {
        static const char file[] = "splitkey-x 1\n";
        struct proto_rd rd;

        assert_int_equal(proto_text_open(&rd, (const uint8_t *)file, sizeof(file) - 1,
                                         sizeof(file) - 1, "splitkey-x", 1),
                         0);
        assert_int_equal(proto_text_open(&rd, (const uint8_t *)file, sizeof(file) - 1,
                                         sizeof(file) - 2, "splitkey-x", 1),
                         SPK_ERR_MALFORMED);
    }
}

static void test_field_line(void **state)
{
    struct proto_rd rd, v;

    (void)state;
    rd = rd_str("name abc\nname\nname \nnamex abc\n name abc\n");
    assert_true(proto_text_field(&rd, "name", &v));
    assert_true(proto_rd_equals(&v, "abc"));
    for (int i = 0; i < 4; i++) {
        struct proto_rd before = rd;
        struct proto_rd line;

        assert_false(proto_text_field(&rd, "name", &v));
        assert_true(rd.p == before.p); /* nothing consumed */
        assert_true(proto_rd_line(&rd, &line));
    }
    assert_int_equal(proto_rd_len(&rd), 0);
}

static void test_field_y_len(void **state)
{
    (void)state;
    assert_int_equal(proto_field_y_len(1279), 160);
    assert_int_equal(proto_field_y_len(2203), 276);
    assert_int_equal(proto_field_y_len(2281), 286);
    assert_int_equal(proto_field_y_len(3217), 403);
    assert_int_equal(proto_field_y_len(4253), PROTO_FIELD_Y_MAX);
    assert_int_equal(proto_field_y_len(0), 0);
    assert_int_equal(proto_field_y_len(1278), 0);
    assert_int_equal(proto_field_y_len(1280), 0);
    assert_int_equal(proto_field_y_len(2048), 0);
    assert_int_equal(proto_field_y_len(4254), 0);
    assert_int_equal(proto_field_y_len(127), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_known),
        cmocka_unit_test(test_hex_every_char),
        cmocka_unit_test(test_hex_refusals),
        cmocka_unit_test(test_z85_rfc32_vector),
        cmocka_unit_test(test_z85_zmq_known_keys),
        cmocka_unit_test(test_z85_against_libzmq_random),
        cmocka_unit_test(test_z85_against_zmq_curve_keypair),
        cmocka_unit_test(test_z85_every_char),
        cmocka_unit_test(test_z85_refusals),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_against_libsodium),
        cmocka_unit_test(test_base64_refusals),
        cmocka_unit_test(test_base64_fuzz_vs_libsodium),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_decimal),
        cmocka_unit_test(test_magic),
        cmocka_unit_test(test_field_line),
        cmocka_unit_test(test_field_y_len),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
