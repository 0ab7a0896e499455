#include <string.h>

#include "proto/proto.h"

/*
 * The key record KEYID.record (PROTOCOL.md, "Key record"):
 *
 *   splitkey-record 1
 *   key-id HEX64
 *   split-id HEX32
 *   modulus HEX
 *   exponent HEX
 *   threshold K
 *   shares N
 *   field BITS                         (rebuild mode), or
 *   mode threshold                     (threshold mode)
 *   share INDEX HOLDER COMMITMENT      (N lines, INDEX strictly increasing;
 *                                       exactly 1..N in threshold mode)
 *   verify-base HEX                    (threshold mode, safe-prime keys only:
 *   verify-key INDEX HEX                v, then N lines v_1 .. v_N)
 *   signature-alg rsa-pss-sha256
 *   signature HEX                      (not covered by itself)
 */

#define RECORD_MAGIC "splitkey-record"
#define RECORD_VERSION 1
#define RECORD_SIG_ALG "rsa-pss-sha256"

/*
 * record_params_valid: the checks shared by encoder and decoder on everything
 * but the share lines and the signature.
 */
static bool record_params_valid(const struct proto_record *rec)
{
    size_t y_len = proto_field_y_len(rec->field_bits);

    if (rec->modulus_len < PROTO_BN_MIN || rec->modulus_len > PROTO_BN_MAX ||
        rec->modulus[0] == 0 || (rec->modulus[rec->modulus_len - 1] & 1) == 0) {
        return false;
    }
    if (rec->exponent_len < 1 || rec->exponent_len > PROTO_EXP_MAX || rec->exponent[0] == 0 ||
        (rec->exponent[rec->exponent_len - 1] & 1) == 0 ||
        (rec->exponent_len == 1 && rec->exponent[0] < 3)) {
        return false;
    }
    if (rec->threshold < 2 || rec->threshold > rec->num_shares ||
        rec->num_shares > PROTO_SHARES_MAX) {
        return false;
    }
    if (rec->mode == PROTO_MODE_THRESHOLD) {
        return rec->field_bits == 0;
    }
    if (rec->mode != PROTO_MODE_REBUILD) {
        return false;
    }
    /* Each prime is at least half the modulus long, and M = 2^bits - 1 must
     * exceed 2^bits(prime): a smaller field can hold no split of this key. */
    if (y_len == 0 || rec->field_bits <= (proto_record_modulus_bits(rec) + 1) / 2) {
        return false;
    }
    return true;
}

/* record_share_ok: share |i| against the ones before it. */
static bool record_share_ok(const struct proto_record *rec, unsigned i)
{
    const struct proto_record_share *s = &rec->shares[i];

    if (s->index == 0 || !proto_name_str_valid(s->holder)) {
        return false;
    }
    if (i > 0 && s->index <= rec->shares[i - 1].index) {
        return false;
    }
    /* Delta = n! makes the Lagrange coefficients integers only for indices 1..n. */
    if (rec->mode == PROTO_MODE_THRESHOLD && s->index != i + 1) {
        return false;
    }
    for (unsigned j = 0; j < i; j++) {
        if (strcmp(rec->shares[j].holder, s->holder) == 0) {
            return false;
        }
    }
    return true;
}

/* vkey_valid: a verification key, |len| bytes big-endian, is in [2, modulus). */
static bool vkey_valid(const struct proto_record *rec, const uint8_t *v)
{
    uint8_t above_one = 0;
    int cmp = 0;

    for (size_t i = 0; i < rec->modulus_len; i++) {
        if (cmp == 0 && v[i] != rec->modulus[i]) {
            cmp = v[i] < rec->modulus[i] ? -1 : 1;
        }
        above_one |= i + 1 < rec->modulus_len ? v[i] : (uint8_t)(v[i] & 0xfe);
    }
    return cmp < 0 && above_one != 0;
}

/* record_vkeys_valid: verification keys only in threshold mode, all in range. */
static bool record_vkeys_valid(const struct proto_record *rec)
{
    if (!rec->has_vkeys) {
        return true;
    }
    if (rec->mode != PROTO_MODE_THRESHOLD ||
        (size_t)rec->num_shares * rec->modulus_len > PROTO_VKEYS_MAX ||
        !vkey_valid(rec, rec->vkey_base)) {
        return false;
    }
    for (unsigned i = 0; i < rec->num_shares; i++) {
        if (!vkey_valid(rec, rec->vkeys + (size_t)i * rec->modulus_len)) {
            return false;
        }
    }
    return true;
}

static bool rd_hex_fixed(struct proto_rd *rd, const char *key, uint8_t *out, size_t n)
{
    struct proto_rd v;

    return proto_text_field(rd, key, &v) && proto_hex_decode(&v, out, n);
}

static bool rd_share(struct proto_rd *rd, struct proto_record_share *s)
{
    struct proto_rd line, word;
    uint32_t index;

    if (!proto_text_field(rd, "share", &line) || !proto_rd_word(&line, &word) ||
        !proto_dec_decode(&word, 1, 255, &index) || !proto_rd_word(&line, &word) ||
        !proto_name_copy(&word, s->holder) ||
        !proto_hex_decode(&line, s->commitment, PROTO_COMMIT_LEN)) {
        return false;
    }
    s->index = (uint8_t)index;
    return true;
}

/* rd_vkey: "verify-key INDEX HEX" for share number |i| (index i + 1). */
static bool rd_vkey(struct proto_rd *rd, const struct proto_record *rec, unsigned i, uint8_t *out)
{
    struct proto_rd line, word;
    uint32_t index;

    return proto_text_field(rd, "verify-key", &line) && proto_rd_word(&line, &word) &&
           proto_dec_decode(&word, 1, 255, &index) && index == rec->shares[i].index &&
           proto_hex_decode(&line, out, rec->modulus_len) && vkey_valid(rec, out);
}

/*
 * rd_vkeys reads the optional block of verification keys: present when the
 * line after the shares is "verify-base", then complete or refused.
 */
static bool rd_vkeys(struct proto_rd *rd, struct proto_record *rec)
{
    struct proto_rd peek = *rd;
    struct proto_rd v;

    if (!proto_text_field(&peek, "verify-base", &v)) {
        return true;
    }
    *rd = peek;
    rec->has_vkeys = true;
    if (rec->mode != PROTO_MODE_THRESHOLD ||
        (size_t)rec->num_shares * rec->modulus_len > PROTO_VKEYS_MAX ||
        !proto_hex_decode(&v, rec->vkey_base, rec->modulus_len) ||
        !vkey_valid(rec, rec->vkey_base)) {
        return false;
    }
    for (unsigned i = 0; i < rec->num_shares; i++) {
        if (!rd_vkey(rd, rec, i, rec->vkeys + (size_t)i * rec->modulus_len)) {
            return false;
        }
    }
    return true;
}

int proto_record_decode(struct proto_record *out, const uint8_t *in, size_t in_len)
{
    struct proto_rd rd, v;
    int r = SPK_ERR_MALFORMED;

    memset(out, 0, sizeof(*out));
    if ((r = proto_text_open(&rd, in, in_len, PROTO_FILE_MAX, RECORD_MAGIC, RECORD_VERSION)) != 0) {
        goto out;
    }
    r = SPK_ERR_MALFORMED;
    if (!rd_hex_fixed(&rd, "key-id", out->key_id, PROTO_KEY_ID_LEN) ||
        !rd_hex_fixed(&rd, "split-id", out->split_id, PROTO_SPLIT_ID_LEN)) {
        goto out;
    }
    if (!proto_text_field(&rd, "modulus", &v) ||
        !proto_hex_decode_var(&v, out->modulus, PROTO_BN_MAX, &out->modulus_len) ||
        !proto_text_field(&rd, "exponent", &v) ||
        !proto_hex_decode_var(&v, out->exponent, PROTO_EXP_MAX, &out->exponent_len)) {
        goto out;
    }
    if (!proto_text_field_dec(&rd, "threshold", 2, PROTO_SHARES_MAX, &out->threshold) ||
        !proto_text_field_dec(&rd, "shares", 2, PROTO_SHARES_MAX, &out->num_shares) ||
        !proto_rd_mode_or_field(&rd, &out->mode, &out->field_bits) || !record_params_valid(out)) {
        goto out;
    }
    for (unsigned i = 0; i < out->num_shares; i++) {
        if (!rd_share(&rd, &out->shares[i]) || !record_share_ok(out, i)) {
            goto out;
        }
    }
    if (!rd_vkeys(&rd, out)) {
        goto out;
    }
    if (!proto_text_field(&rd, "signature-alg", &v) || !proto_rd_equals(&v, RECORD_SIG_ALG)) {
        goto out;
    }
    out->signed_len = proto_rd_offset(&rd, in);
    if (!rd_hex_fixed(&rd, "signature", out->signature, out->modulus_len) ||
        proto_rd_len(&rd) != 0) {
        goto out;
    }
    out->signature_len = out->modulus_len;
    r = 0;
out:
    if (r != 0) {
        memset(out, 0, sizeof(*out));
    }
    return r;
}

static bool wr_line_hex(struct proto_wr *wr, const char *key, const uint8_t *p, size_t n)
{
    return proto_wr_field_key(wr, key) && proto_wr_hex(wr, p, n) && proto_wr_u8(wr, '\n');
}

static bool wr_line_dec(struct proto_wr *wr, const char *key, uint32_t n)
{
    return proto_wr_field_key(wr, key) && proto_wr_dec(wr, n) && proto_wr_u8(wr, '\n');
}

static bool wr_body(struct proto_wr *wr, const struct proto_record *rec)
{
    if (!proto_wr_str(wr, RECORD_MAGIC " ") || !proto_wr_dec(wr, RECORD_VERSION) ||
        !proto_wr_u8(wr, '\n') || !wr_line_hex(wr, "key-id", rec->key_id, PROTO_KEY_ID_LEN) ||
        !wr_line_hex(wr, "split-id", rec->split_id, PROTO_SPLIT_ID_LEN) ||
        !wr_line_hex(wr, "modulus", rec->modulus, rec->modulus_len) ||
        !wr_line_hex(wr, "exponent", rec->exponent, rec->exponent_len) ||
        !wr_line_dec(wr, "threshold", rec->threshold) ||
        !wr_line_dec(wr, "shares", rec->num_shares) ||
        !proto_wr_mode_or_field(wr, rec->mode, rec->field_bits)) {
        return false;
    }
    for (unsigned i = 0; i < rec->num_shares; i++) {
        const struct proto_record_share *s = &rec->shares[i];

        if (!proto_wr_field_key(wr, "share") || !proto_wr_dec(wr, s->index) ||
            !proto_wr_u8(wr, ' ') || !proto_wr_str(wr, s->holder) || !proto_wr_u8(wr, ' ') ||
            !proto_wr_hex(wr, s->commitment, PROTO_COMMIT_LEN) || !proto_wr_u8(wr, '\n')) {
            return false;
        }
    }
    if (rec->has_vkeys) {
        if (!wr_line_hex(wr, "verify-base", rec->vkey_base, rec->modulus_len)) {
            return false;
        }
        for (unsigned i = 0; i < rec->num_shares; i++) {
            if (!proto_wr_field_key(wr, "verify-key") || !proto_wr_dec(wr, rec->shares[i].index) ||
                !proto_wr_u8(wr, ' ') ||
                !proto_wr_hex(wr, rec->vkeys + (size_t)i * rec->modulus_len, rec->modulus_len) ||
                !proto_wr_u8(wr, '\n')) {
                return false;
            }
        }
    }
    return proto_wr_field_key(wr, "signature-alg") && proto_wr_str(wr, RECORD_SIG_ALG) &&
           proto_wr_u8(wr, '\n');
}

static bool record_valid(const struct proto_record *rec)
{
    if (!record_params_valid(rec)) {
        return false;
    }
    for (unsigned i = 0; i < rec->num_shares; i++) {
        if (!record_share_ok(rec, i)) {
            return false;
        }
    }
    return record_vkeys_valid(rec);
}

int proto_record_encode_body(uint8_t *out, size_t cap, size_t *out_len,
                             const struct proto_record *rec)
{
    struct proto_wr wr;

    *out_len = 0;
    if (!record_valid(rec)) {
        return SPK_ERR_INVALID_ARG;
    }
    proto_wr_init(&wr, out, cap);
    if (!wr_body(&wr, rec)) {
        return SPK_ERR_INVALID_ARG;
    }
    *out_len = wr.len;
    return 0;
}

int proto_record_encode(uint8_t *out, size_t cap, size_t *out_len, const struct proto_record *rec)
{
    struct proto_wr wr;

    *out_len = 0;
    if (!record_valid(rec) || rec->signature_len != rec->modulus_len) {
        return SPK_ERR_INVALID_ARG;
    }
    proto_wr_init(&wr, out, cap);
    if (!wr_body(&wr, rec) || !wr_line_hex(&wr, "signature", rec->signature, rec->signature_len)) {
        return SPK_ERR_INVALID_ARG;
    }
    *out_len = wr.len;
    return 0;
}

unsigned proto_record_modulus_bits(const struct proto_record *rec)
{
    unsigned bits;

    if (rec->modulus_len == 0 || rec->modulus_len > PROTO_BN_MAX) {
        return 0;
    }
    bits = 8 * (unsigned)(rec->modulus_len - 1);
    for (uint8_t top = rec->modulus[0]; top != 0; top >>= 1) {
        bits++;
    }
    return bits;
}

const struct proto_record_share *proto_record_find_share(const struct proto_record *rec,
                                                         uint8_t index)
{
    unsigned n = rec->num_shares <= PROTO_SHARES_MAX ? rec->num_shares : PROTO_SHARES_MAX;

    for (unsigned i = 0; i < n; i++) {
        if (rec->shares[i].index == index) {
            return &rec->shares[i];
        }
    }
    return NULL;
}

const uint8_t *proto_record_vkey(const struct proto_record *rec, unsigned index)
{
    if (!rec->has_vkeys || index < 1 || index > rec->num_shares ||
        rec->num_shares > PROTO_SHARES_MAX ||
        (size_t)rec->num_shares * rec->modulus_len > PROTO_VKEYS_MAX) {
        return NULL;
    }
    /* Threshold indices are exactly 1..n. */
    return rec->vkeys + (size_t)(index - 1) * rec->modulus_len;
}
