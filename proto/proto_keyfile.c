#include <string.h>

#include <sodium.h>

#include "proto/proto.h"

/*
 * Holder key files (PROTOCOL.md, "Holder key files"):
 *
 *   splitkey-holder-pub 1          splitkey-holder-key 1
 *   name NAME                      name NAME
 *   curve-public Z85               curve-public Z85
 *   storage-public Z85             curve-secret Z85
 *                                  storage-public Z85
 *                                  storage-secret Z85
 */

#define KEYFILE_PUB_MAGIC "splitkey-holder-pub"
#define KEYFILE_KEY_MAGIC "splitkey-holder-key"
#define KEYFILE_VERSION 1

static bool rd_name(struct proto_rd *rd, char out[PROTO_NAME_MAX + 1])
{
    struct proto_rd v;

    return proto_text_field(rd, "name", &v) && proto_name_copy(&v, out);
}

static bool rd_z85(struct proto_rd *rd, const char *key, uint8_t out[32])
{
    struct proto_rd v;

    return proto_text_field(rd, key, &v) && proto_z85_decode_key(&v, out);
}

static bool wr_z85_line(struct proto_wr *wr, const char *key, const uint8_t k[32])
{
    return proto_wr_field_key(wr, key) && proto_wr_z85_key(wr, k) && proto_wr_u8(wr, '\n');
}

static bool wr_header(struct proto_wr *wr, const char *magic, const char *name)
{
    return proto_wr_str(wr, magic) && proto_wr_u8(wr, ' ') && proto_wr_dec(wr, KEYFILE_VERSION) &&
           proto_wr_u8(wr, '\n') && proto_wr_field_key(wr, "name") && proto_wr_str(wr, name) &&
           proto_wr_u8(wr, '\n');
}

int proto_holder_pub_decode(struct proto_holder_pub *out, const uint8_t *in, size_t in_len)
{
    struct proto_rd rd;
    int r = SPK_ERR_MALFORMED;

    memset(out, 0, sizeof(*out));
    if ((r = proto_text_open(&rd, in, in_len, PROTO_FILE_MAX, KEYFILE_PUB_MAGIC,
                             KEYFILE_VERSION)) != 0) {
        goto out;
    }
    r = SPK_ERR_MALFORMED;
    if (!rd_name(&rd, out->name) || !rd_z85(&rd, "curve-public", out->curve_pk) ||
        !rd_z85(&rd, "storage-public", out->storage_pk) || proto_rd_len(&rd) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        memset(out, 0, sizeof(*out));
    }
    return r;
}

int proto_holder_pub_encode(uint8_t *out, size_t cap, size_t *out_len,
                            const struct proto_holder_pub *pub)
{
    struct proto_wr wr;

    *out_len = 0;
    if (!proto_name_str_valid(pub->name)) {
        return SPK_ERR_INVALID_ARG;
    }
    proto_wr_init(&wr, out, cap);
    if (!wr_header(&wr, KEYFILE_PUB_MAGIC, pub->name) ||
        !wr_z85_line(&wr, "curve-public", pub->curve_pk) ||
        !wr_z85_line(&wr, "storage-public", pub->storage_pk)) {
        return SPK_ERR_INVALID_ARG;
    }
    *out_len = wr.len;
    return 0;
}

int proto_holder_secret_decode(struct proto_holder_secret *out, const uint8_t *in, size_t in_len)
{
    struct proto_rd rd;
    int r = SPK_ERR_MALFORMED;

    /* Secrets are decoded straight into |out| (the caller's secret memory),
     * in constant time; on any failure all of |out| is wiped. */
    sodium_memzero(out, sizeof(*out));
    if ((r = proto_text_open(&rd, in, in_len, PROTO_FILE_MAX, KEYFILE_KEY_MAGIC,
                             KEYFILE_VERSION)) != 0) {
        goto out;
    }
    r = SPK_ERR_MALFORMED;
    if (!rd_name(&rd, out->pub.name) || !rd_z85(&rd, "curve-public", out->pub.curve_pk) ||
        !rd_z85(&rd, "curve-secret", out->curve_sk) ||
        !rd_z85(&rd, "storage-public", out->pub.storage_pk) ||
        !rd_z85(&rd, "storage-secret", out->storage_sk) || proto_rd_len(&rd) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        sodium_memzero(out, sizeof(*out));
    }
    return r;
}

int proto_holder_secret_encode(uint8_t *out, size_t cap, size_t *out_len,
                               const struct proto_holder_secret *key)
{
    struct proto_wr wr;

    *out_len = 0;
    if (!proto_name_str_valid(key->pub.name)) {
        return SPK_ERR_INVALID_ARG;
    }
    proto_wr_init(&wr, out, cap);
    if (!wr_header(&wr, KEYFILE_KEY_MAGIC, key->pub.name) ||
        !wr_z85_line(&wr, "curve-public", key->pub.curve_pk) ||
        !wr_z85_line(&wr, "curve-secret", key->curve_sk) ||
        !wr_z85_line(&wr, "storage-public", key->pub.storage_pk) ||
        !wr_z85_line(&wr, "storage-secret", key->storage_sk)) {
        /* Do not leave half a secret key in the caller's buffer. */
        sodium_memzero(out, wr.len);
        return SPK_ERR_INVALID_ARG;
    }
    *out_len = wr.len;
    return 0;
}
