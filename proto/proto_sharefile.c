#include <string.h>

#include "proto/proto.h"

/*
 * The share file KEYID.HOLDER.share (PROTOCOL.md, "Share file"):
 *
 *   splitkey-share 1
 *   key-id HEX64
 *   split-id HEX32
 *   index I
 *   holder NAME
 *   threshold K
 *   shares N
 *   field BITS          (rebuild mode), or
 *   mode threshold      (threshold mode)
 *   sealed BASE64       crypto_box_seal(y_1 || ... || y_5), 48 + 5 * y_len bytes,
 *                       or in threshold mode crypto_box_seal(s_i), 48 + 256..1024 bytes
 */

#define SHARE_MAGIC "splitkey-share"
#define SHARE_VERSION 1

static bool share_file_valid(const struct proto_share_file *sf)
{
    size_t y_len = proto_field_y_len(sf->field_bits);

    if (sf->index == 0 || !proto_name_str_valid(sf->holder) || sf->threshold < 2 ||
        sf->threshold > sf->num_shares || sf->num_shares > PROTO_SHARES_MAX) {
        return false;
    }
    switch (sf->mode) {
    case PROTO_MODE_REBUILD:
        return y_len != 0 && sf->sealed_len == PROTO_SEAL_OVERHEAD + PROTO_NUM_SECRETS * y_len;
    case PROTO_MODE_THRESHOLD:
        /* Threshold indices are 1..n; s_i is as long as the modulus. */
        return sf->field_bits == 0 && sf->index <= sf->num_shares &&
               sf->sealed_len >= PROTO_SEAL_OVERHEAD + PROTO_BN_MIN &&
               sf->sealed_len <= PROTO_SEAL_OVERHEAD + PROTO_BN_MAX;
    default:
        return false;
    }
}

int proto_share_file_decode(struct proto_share_file *out, const uint8_t *in, size_t in_len)
{
    struct proto_rd rd, v;
    unsigned index;
    int r = SPK_ERR_MALFORMED;

    memset(out, 0, sizeof(*out));
    if ((r = proto_text_open(&rd, in, in_len, PROTO_FILE_MAX, SHARE_MAGIC, SHARE_VERSION)) != 0) {
        goto out;
    }
    r = SPK_ERR_MALFORMED;
    if (!proto_text_field(&rd, "key-id", &v) ||
        !proto_hex_decode(&v, out->key_id, PROTO_KEY_ID_LEN) ||
        !proto_text_field(&rd, "split-id", &v) ||
        !proto_hex_decode(&v, out->split_id, PROTO_SPLIT_ID_LEN) ||
        !proto_text_field_dec(&rd, "index", 1, 255, &index) ||
        !proto_text_field(&rd, "holder", &v) || !proto_name_copy(&v, out->holder) ||
        !proto_text_field_dec(&rd, "threshold", 2, PROTO_SHARES_MAX, &out->threshold) ||
        !proto_text_field_dec(&rd, "shares", 2, PROTO_SHARES_MAX, &out->num_shares) ||
        !proto_rd_mode_or_field(&rd, &out->mode, &out->field_bits) ||
        !proto_text_field(&rd, "sealed", &v) ||
        !proto_base64_decode(&v, out->sealed, PROTO_SEALED_MAX, &out->sealed_len) ||
        proto_rd_len(&rd) != 0) {
        goto out;
    }
    out->index = (uint8_t)index;
    if (!share_file_valid(out)) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        memset(out, 0, sizeof(*out));
    }
    return r;
}

static bool wr_line_dec(struct proto_wr *wr, const char *key, uint32_t n)
{
    return proto_wr_field_key(wr, key) && proto_wr_dec(wr, n) && proto_wr_u8(wr, '\n');
}

int proto_share_file_encode(uint8_t *out, size_t cap, size_t *out_len,
                            const struct proto_share_file *sf)
{
    struct proto_wr wr;

    *out_len = 0;
    if (!share_file_valid(sf)) {
        return SPK_ERR_INVALID_ARG;
    }
    proto_wr_init(&wr, out, cap);
    if (!proto_wr_str(&wr, SHARE_MAGIC " ") || !proto_wr_dec(&wr, SHARE_VERSION) ||
        !proto_wr_u8(&wr, '\n') || !proto_wr_field_key(&wr, "key-id") ||
        !proto_wr_hex(&wr, sf->key_id, PROTO_KEY_ID_LEN) || !proto_wr_u8(&wr, '\n') ||
        !proto_wr_field_key(&wr, "split-id") ||
        !proto_wr_hex(&wr, sf->split_id, PROTO_SPLIT_ID_LEN) || !proto_wr_u8(&wr, '\n') ||
        !wr_line_dec(&wr, "index", sf->index) || !proto_wr_field_key(&wr, "holder") ||
        !proto_wr_str(&wr, sf->holder) || !proto_wr_u8(&wr, '\n') ||
        !wr_line_dec(&wr, "threshold", sf->threshold) ||
        !wr_line_dec(&wr, "shares", sf->num_shares) ||
        !proto_wr_mode_or_field(&wr, sf->mode, sf->field_bits) ||
        !proto_wr_field_key(&wr, "sealed") || !proto_wr_base64(&wr, sf->sealed, sf->sealed_len) ||
        !proto_wr_u8(&wr, '\n')) {
        return SPK_ERR_INVALID_ARG;
    }
    *out_len = wr.len;
    return 0;
}
