/*
 * The table of operation kinds: wire codes, names, what each asks of the key
 * and which digest it takes. Every part (edge, combiner, holder, tools)
 * reads it from here.
 */

#include <string.h>

#include "proto/proto.h"

#define OP_ROW(op, name, short_name, kind, hash, md, len)                                          \
    {                                                                                              \
        op, name, short_name, PROTO_OP_KIND_##kind, PROTO_HASH_##hash, md, len                     \
    }

static const struct proto_op_info op_table[] = {
    OP_ROW(PROTO_OP_SIGN_PKCS1_SHA1, "sign-pkcs1-sha1", "pkcs1-sha1", SIGN_PKCS1, SHA1, "SHA1", 20),
    OP_ROW(PROTO_OP_SIGN_PKCS1_SHA224, "sign-pkcs1-sha224", "pkcs1-sha224", SIGN_PKCS1, SHA224,
           "SHA224", 28),
    OP_ROW(PROTO_OP_SIGN_PKCS1_SHA256, "sign-pkcs1-sha256", "pkcs1-sha256", SIGN_PKCS1, SHA256,
           "SHA256", 32),
    OP_ROW(PROTO_OP_SIGN_PKCS1_SHA384, "sign-pkcs1-sha384", "pkcs1-sha384", SIGN_PKCS1, SHA384,
           "SHA384", 48),
    OP_ROW(PROTO_OP_SIGN_PKCS1_SHA512, "sign-pkcs1-sha512", "pkcs1-sha512", SIGN_PKCS1, SHA512,
           "SHA512", 64),
    OP_ROW(PROTO_OP_SIGN_PKCS1_MD5SHA1, "sign-pkcs1-md5sha1", "pkcs1-md5sha1", SIGN_PKCS1, MD5_SHA1,
           "MD5-SHA1", 36),
    OP_ROW(PROTO_OP_SIGN_PSS_SHA256, "sign-pss-sha256", "pss-sha256", SIGN_PSS, SHA256, "SHA256",
           32),
    OP_ROW(PROTO_OP_SIGN_PSS_SHA384, "sign-pss-sha384", "pss-sha384", SIGN_PSS, SHA384, "SHA384",
           48),
    OP_ROW(PROTO_OP_SIGN_PSS_SHA512, "sign-pss-sha512", "pss-sha512", SIGN_PSS, SHA512, "SHA512",
           64),
    OP_ROW(PROTO_OP_DECRYPT_PKCS1, "decrypt-pkcs1", "pkcs1", DECRYPT_PKCS1, NONE, NULL, 0),
    OP_ROW(PROTO_OP_DECRYPT_TLS_PREMASTER, "decrypt-tls-premaster", "tls-premaster", DECRYPT_TLS,
           NONE, NULL, 0),
    OP_ROW(PROTO_OP_DECRYPT_OAEP_SHA1, "decrypt-oaep-sha1", "oaep-sha1", DECRYPT_OAEP, SHA1, "SHA1",
           0),
    OP_ROW(PROTO_OP_DECRYPT_OAEP_SHA256, "decrypt-oaep-sha256", "oaep-sha256", DECRYPT_OAEP, SHA256,
           "SHA256", 0),
    OP_ROW(PROTO_OP_DECRYPT_RAW, "decrypt-raw", "raw", RAW, NONE, NULL, 0),
};

#define OP_TABLE_LEN (sizeof(op_table) / sizeof(op_table[0]))

const struct proto_op_info *proto_op_table(size_t *num)
{
    *num = OP_TABLE_LEN;
    return op_table;
}

const struct proto_op_info *proto_op_info(uint8_t op)
{
    for (size_t i = 0; i < OP_TABLE_LEN; i++) {
        if (op_table[i].op == op) {
            return &op_table[i];
        }
    }
    return NULL;
}

const struct proto_op_info *proto_op_info_by_name(const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < OP_TABLE_LEN; i++) {
        if (strcmp(op_table[i].name, name) == 0 || strcmp(op_table[i].short_name, name) == 0) {
            return &op_table[i];
        }
    }
    return NULL;
}

bool proto_op_is_sign(const struct proto_op_info *info)
{
    return info != NULL && info->digest_len > 0;
}

bool proto_op_valid(uint8_t op)
{
    return proto_op_info(op) != NULL;
}

const char *proto_op_name(uint8_t op)
{
    const struct proto_op_info *info = proto_op_info(op);

    return info == NULL ? "unknown" : info->name;
}

uint8_t proto_op_from_name(const char *name)
{
    const struct proto_op_info *info = proto_op_info_by_name(name);

    return info == NULL ? 0 : info->op;
}

size_t proto_op_digest_len(uint8_t op)
{
    const struct proto_op_info *info = proto_op_info(op);

    return info == NULL ? 0 : info->digest_len;
}
