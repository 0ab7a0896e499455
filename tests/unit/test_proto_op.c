/* The table of operation kinds, checked against what each name says. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

/* Digest lengths by OpenSSL name, written out here independently of the table. */
static size_t md_len(const char *md)
{
    static const struct {
        const char *md;
        size_t len;
    } lens[] = {{"SHA1", 20},   {"SHA224", 28}, {"SHA256", 32},
                {"SHA384", 48}, {"SHA512", 64}, {"MD5-SHA1", 36}};

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        if (strcmp(lens[i].md, md) == 0) {
            return lens[i].len;
        }
    }
    fail_msg("unknown digest %s", md);
    return 0;
}

static void test_every_row_says_what_its_name_says(void **state)
{
    size_t num = 0;
    const struct proto_op_info *ops = proto_op_table(&num);

    (void)state;
    assert_int_equal(num, 14);
    for (size_t i = 0; i < num; i++) {
        const struct proto_op_info *o = &ops[i];
        bool sign = strncmp(o->name, "sign-", 5) == 0;
        const char *rest = o->name + (sign ? 5 : 8);

        assert_true(sign || strncmp(o->name, "decrypt-", 8) == 0);
        assert_string_equal(o->short_name, rest);
        assert_ptr_equal(proto_op_info(o->op), o);
        assert_ptr_equal(proto_op_info_by_name(o->name), o);
        assert_ptr_equal(proto_op_info_by_name(o->short_name), o);
        assert_int_equal(proto_op_is_sign(o), sign);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(ops[j].op, o->op);
            assert_string_not_equal(ops[j].name, o->name);
        }
        if (sign) {
            assert_non_null(o->md);
            assert_int_equal(o->digest_len, md_len(o->md));
            assert_int_equal(o->kind, strncmp(rest, "pss-", 4) == 0 ? PROTO_OP_KIND_SIGN_PSS
                                                                    : PROTO_OP_KIND_SIGN_PKCS1);
        } else {
            assert_int_equal(o->digest_len, 0);
            assert_int_equal(o->md != NULL, strncmp(rest, "oaep-", 5) == 0);
        }
    }
    assert_null(proto_op_info(0));
    assert_null(proto_op_info_by_name("sign"));
    assert_null(proto_op_info_by_name(NULL));
    assert_int_equal(proto_op_info_by_name("tls-premaster")->kind, PROTO_OP_KIND_DECRYPT_TLS);
    assert_int_equal(proto_op_info_by_name("raw")->kind, PROTO_OP_KIND_RAW);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_says_what_its_name_says),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
