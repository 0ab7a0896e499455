#include <string.h>

#include <sodium.h>

#include "proto/proto.h"

/*
 * The ZeroMQ wire messages: a fixed header, then TLV items in strictly
 * ascending tag order. Decoding first gathers the items as views (checking
 * order, tag range and lengths), then each message type takes exactly the
 * items it allows and requires. One validity check (msg_check) serves both
 * directions, so whatever decodes re-encodes to the same bytes.
 */

static const uint8_t wire_magic[2] = {'S', 'K'};

enum wire_tag {
    TAG_KEY_ID = 0x01,
    TAG_OP = 0x02,
    TAG_DIGEST = 0x03,
    TAG_REQUESTER_PK = 0x04,
    TAG_SPLIT_ID = 0x05,
    TAG_INDEX = 0x06,
    TAG_FIELD = 0x07,
    TAG_SESSION_PK = 0x08,
    TAG_NONCE = 0x09,
    TAG_SEALED = 0x0a,
    TAG_INPUT = 0x0b,
    TAG_CLIENT_VERSION = 0x0c,
    TAG_RESULT = 0x0d,
    TAG_ERR_CODE = 0x0e,
    TAG_ERR_TEXT = 0x0f,
    TAG_OP_COUNT = 0x10,
    TAG_SALT = 0x11,
    TAG_PROOF_C = 0x12,
    TAG_PROOF_Z = 0x13,
};

#define TAG_MAX 0x13
#define BIT(t) (1u << (t))

struct wire_items {
    struct proto_rd v[TAG_MAX + 1];
    uint32_t seen;
};

/* ---- operations and error codes ------------------------------------------ */

void proto_ops_digest_init(struct proto_ops_digest *d)
{
    crypto_hash_sha256_init(&d->sha);
    d->num_ops = 0;
}

bool proto_ops_digest_add(struct proto_ops_digest *d, uint8_t op, const uint8_t *in, size_t in_len)
{
    uint8_t head[3] = {op, (uint8_t)(in_len >> 8), (uint8_t)in_len};

    if (in_len == 0 || in_len > PROTO_BN_MAX || d->num_ops >= PROTO_OP_COUNT_MAX) {
        return false;
    }
    crypto_hash_sha256_update(&d->sha, head, sizeof(head));
    crypto_hash_sha256_update(&d->sha, in, in_len);
    d->num_ops++;
    return true;
}

void proto_ops_digest_final(struct proto_ops_digest *d, uint8_t out[PROTO_SHA256_LEN])
{
    crypto_hash_sha256_final(&d->sha, out);
    sodium_memzero(d, sizeof(*d));
}

/* The SPK_ERR_* values that may cross the wire; the code is the negation. */
static const int wire_errors[] = {
    SPK_ERR_UNKNOWN_KEY, SPK_ERR_NOT_ALLOWED, SPK_ERR_RATE_LIMITED, SPK_ERR_MALFORMED,
    SPK_ERR_VERSION,     SPK_ERR_INTERNAL,    SPK_ERR_UNAVAILABLE,  SPK_ERR_TIMEOUT,
    SPK_ERR_FAULT,       SPK_ERR_DECRYPT,     SPK_ERR_UNSUPPORTED,  SPK_ERR_THRESHOLD,
};

int proto_err_from_wire(uint16_t code)
{
    for (size_t i = 0; i < sizeof(wire_errors) / sizeof(wire_errors[0]); i++) {
        if (-wire_errors[i] == (int)code) {
            return wire_errors[i];
        }
    }
    return 0;
}

uint16_t proto_err_to_wire(int err)
{
    for (size_t i = 0; i < sizeof(wire_errors) / sizeof(wire_errors[0]); i++) {
        if (wire_errors[i] == err) {
            return (uint16_t)-err;
        }
    }
    return (uint16_t)-SPK_ERR_INTERNAL;
}

/* ---- validity, shared by encoder and decoder ------------------------------ */

static bool text_valid(const char *text, size_t *out_len)
{
    size_t n = 0;

    while (n <= PROTO_ERR_TEXT_MAX && text[n] != '\0') {
        if ((unsigned char)text[n] < 0x20 || (unsigned char)text[n] > 0x7e) {
            return false;
        }
        n++;
    }
    if (n > PROTO_ERR_TEXT_MAX) {
        return false;
    }
    *out_len = n;
    return true;
}

static bool msg_check(const struct proto_msg *m)
{
    size_t y_len;
    size_t text_len;

    switch ((enum proto_msg_type)m->type) {
    case PROTO_MSG_PING:
    case PROTO_MSG_PONG:
        return true;
    case PROTO_MSG_SHARE_REQUEST:
        return proto_op_valid(m->u.share_req.op) && m->u.share_req.op_count >= 1 &&
               m->u.share_req.op_count <= PROTO_OP_COUNT_MAX;
    case PROTO_MSG_SHARE_RESPONSE:
        y_len = proto_field_y_len(m->u.share_resp.field_bits);
        return m->u.share_resp.index != 0 && y_len != 0 &&
               m->u.share_resp.sealed_len == PROTO_NUM_SECRETS * y_len + PROTO_AEAD_TAG_LEN;
    case PROTO_MSG_OP_REQUEST:
        if (!proto_op_valid(m->u.op_req.op)) {
            return false;
        }
        if (m->u.op_req.op != PROTO_OP_DECRYPT_TLS_PREMASTER && m->u.op_req.client_version != 0) {
            return false;
        }
        if (proto_op_digest_len(m->u.op_req.op) != 0) {
            return m->u.op_req.input_len == proto_op_digest_len(m->u.op_req.op);
        }
        return m->u.op_req.input_len >= 1 && m->u.op_req.input_len <= PROTO_BN_MAX;
    case PROTO_MSG_OP_RESPONSE:
        return m->u.op_resp.result_len >= 1 && m->u.op_resp.result_len <= PROTO_BN_MAX;
    case PROTO_MSG_ERROR:
        return proto_err_from_wire(m->u.error.code) != 0 && text_valid(m->u.error.text, &text_len);
    case PROTO_MSG_SIGSHARE_REQUEST:
        return proto_op_valid(m->u.sigshare_req.op) && m->u.sigshare_req.digest_len >= 1 &&
               m->u.sigshare_req.digest_len <= PROTO_DIGEST_MAX &&
               m->u.sigshare_req.salt_len <= PROTO_DIGEST_MAX;
    case PROTO_MSG_SIGSHARE_RESPONSE:
        return m->u.sigshare_resp.index != 0 && m->u.sigshare_resp.share_len >= 1 &&
               m->u.sigshare_resp.share_len <= PROTO_BN_MAX;
    default:
        return false;
    }
}

/* ---- header ---------------------------------------------------------------- */

static int hdr_read(struct proto_rd *rd, uint8_t *out_type, uint64_t *out_req_id,
                    uint32_t *out_body_len)
{
    uint8_t magic[2];
    uint8_t version;
    uint8_t type;
    uint8_t flags;

    if (!proto_rd_copy(rd, magic, sizeof(magic)) || magic[0] != wire_magic[0] ||
        magic[1] != wire_magic[1]) {
        return SPK_ERR_MALFORMED;
    }
    if (!proto_rd_u8(rd, &version)) {
        return SPK_ERR_MALFORMED;
    }
    if (version != PROTO_WIRE_VERSION) {
        return SPK_ERR_VERSION;
    }
    if (!proto_rd_u8(rd, &type) || !proto_rd_u8(rd, &flags) || !proto_rd_u64(rd, out_req_id) ||
        !proto_rd_u32(rd, out_body_len)) {
        return SPK_ERR_MALFORMED;
    }
    if (type < PROTO_MSG_PING || type > PROTO_MSG_SIGSHARE_RESPONSE || flags != 0) {
        return SPK_ERR_MALFORMED;
    }
    *out_type = type;
    return 0;
}

int proto_msg_peek(const uint8_t *in, size_t in_len, uint8_t *out_type, uint64_t *out_req_id)
{
    struct proto_rd rd;
    uint32_t body_len;

    if (in_len > PROTO_MSG_MAX) {
        return SPK_ERR_MALFORMED;
    }
    proto_rd_init(&rd, in, in_len);
    return hdr_read(&rd, out_type, out_req_id, &body_len);
}

/* ---- decoding ---------------------------------------------------------------- */

static bool items_read(struct wire_items *items, struct proto_rd *body)
{
    unsigned last = 0;

    memset(items, 0, sizeof(*items));
    while (proto_rd_len(body) > 0) {
        uint8_t tag;
        struct proto_rd value;

        if (!proto_rd_u8(body, &tag) || !proto_rd_u16_prefixed(body, &value)) {
            return false;
        }
        if (tag <= last || tag > TAG_MAX) {
            return false;
        }
        items->v[tag] = value;
        items->seen |= BIT(tag);
        last = tag;
    }
    return true;
}

/* items_take copies the value of |tag|, which must be exactly |n| bytes. */
static bool items_take(const struct wire_items *items, unsigned tag, uint8_t *out, size_t n)
{
    struct proto_rd v = items->v[tag];

    return proto_rd_len(&v) == n && proto_rd_copy(&v, out, n);
}

/* items_take_var copies the value of |tag|: 1..|cap| bytes. */
static bool items_take_var(const struct wire_items *items, unsigned tag, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    struct proto_rd v = items->v[tag];
    size_t n = proto_rd_len(&v);

    if (n == 0 || n > cap || !proto_rd_copy(&v, out, n)) {
        return false;
    }
    *out_len = n;
    return true;
}

static bool items_take_u8(const struct wire_items *items, unsigned tag, uint8_t *out)
{
    struct proto_rd v = items->v[tag];

    return proto_rd_len(&v) == 1 && proto_rd_u8(&v, out);
}

static bool items_take_u16(const struct wire_items *items, unsigned tag, uint16_t *out)
{
    struct proto_rd v = items->v[tag];

    return proto_rd_len(&v) == 2 && proto_rd_u16(&v, out);
}

/* items_exactly: every tag of |required| present, nothing else. */
static bool items_exactly(const struct wire_items *items, uint32_t required, uint32_t optional)
{
    return (items->seen & required) == required && (items->seen & ~(required | optional)) == 0;
}

static bool body_decode(struct proto_msg *m, const struct wire_items *it)
{
    size_t text_len = 0;

    switch ((enum proto_msg_type)m->type) {
    case PROTO_MSG_PING:
    case PROTO_MSG_PONG:
        return it->seen == 0;
    case PROTO_MSG_SHARE_REQUEST: {
        struct proto_share_req *r = &m->u.share_req;

        return items_exactly(it,
                             BIT(TAG_KEY_ID) | BIT(TAG_OP) | BIT(TAG_DIGEST) |
                                 BIT(TAG_REQUESTER_PK) | BIT(TAG_OP_COUNT),
                             0) &&
               items_take(it, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               items_take_u8(it, TAG_OP, &r->op) &&
               items_take(it, TAG_DIGEST, r->input_digest, sizeof(r->input_digest)) &&
               items_take(it, TAG_REQUESTER_PK, r->requester_pk, sizeof(r->requester_pk)) &&
               items_take_u16(it, TAG_OP_COUNT, &r->op_count);
    }
    case PROTO_MSG_SHARE_RESPONSE: {
        struct proto_share_resp *r = &m->u.share_resp;

        return items_exactly(it,
                             BIT(TAG_KEY_ID) | BIT(TAG_SPLIT_ID) | BIT(TAG_INDEX) | BIT(TAG_FIELD) |
                                 BIT(TAG_SESSION_PK) | BIT(TAG_NONCE) | BIT(TAG_SEALED),
                             0) &&
               items_take(it, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               items_take(it, TAG_SPLIT_ID, r->split_id, sizeof(r->split_id)) &&
               items_take_u8(it, TAG_INDEX, &r->index) &&
               items_take_u16(it, TAG_FIELD, &r->field_bits) &&
               items_take(it, TAG_SESSION_PK, r->session_pk, sizeof(r->session_pk)) &&
               items_take(it, TAG_NONCE, r->nonce, sizeof(r->nonce)) &&
               items_take_var(it, TAG_SEALED, r->sealed, sizeof(r->sealed), &r->sealed_len);
    }
    case PROTO_MSG_OP_REQUEST: {
        struct proto_op_req *r = &m->u.op_req;

        r->client_version = 0;
        return items_exactly(it, BIT(TAG_KEY_ID) | BIT(TAG_OP) | BIT(TAG_INPUT),
                             BIT(TAG_CLIENT_VERSION)) &&
               items_take(it, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               items_take_u8(it, TAG_OP, &r->op) &&
               items_take_var(it, TAG_INPUT, r->input, sizeof(r->input), &r->input_len) &&
               /* the client version comes exactly with a TLS premaster */
               ((r->op == PROTO_OP_DECRYPT_TLS_PREMASTER) ==
                ((it->seen & BIT(TAG_CLIENT_VERSION)) != 0)) &&
               (r->op != PROTO_OP_DECRYPT_TLS_PREMASTER ||
                items_take_u16(it, TAG_CLIENT_VERSION, &r->client_version));
    }
    case PROTO_MSG_OP_RESPONSE: {
        struct proto_op_resp *r = &m->u.op_resp;

        return items_exactly(it, BIT(TAG_RESULT), 0) &&
               items_take_var(it, TAG_RESULT, r->result, sizeof(r->result), &r->result_len);
    }
    case PROTO_MSG_ERROR: {
        struct proto_err_msg *r = &m->u.error;

        memset(r->text, 0, sizeof(r->text));
        if (!items_exactly(it, BIT(TAG_ERR_CODE), BIT(TAG_ERR_TEXT)) ||
            !items_take_u16(it, TAG_ERR_CODE, &r->code)) {
            return false;
        }
        /* An empty text is written by leaving the item out: one encoding. */
        return (it->seen & BIT(TAG_ERR_TEXT)) == 0 ||
               (items_take_var(it, TAG_ERR_TEXT, (uint8_t *)r->text, PROTO_ERR_TEXT_MAX,
                               &text_len) &&
                strlen(r->text) == text_len);
    }
    case PROTO_MSG_SIGSHARE_REQUEST: {
        struct proto_sigshare_req *r = &m->u.sigshare_req;

        /* No salt is written by leaving the item out (PKCS#1): one encoding. */
        return items_exactly(it, BIT(TAG_KEY_ID) | BIT(TAG_OP) | BIT(TAG_INPUT), BIT(TAG_SALT)) &&
               items_take(it, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               items_take_u8(it, TAG_OP, &r->op) &&
               items_take_var(it, TAG_INPUT, r->digest, sizeof(r->digest), &r->digest_len) &&
               ((it->seen & BIT(TAG_SALT)) == 0 ||
                items_take_var(it, TAG_SALT, r->salt, sizeof(r->salt), &r->salt_len));
    }
    case PROTO_MSG_SIGSHARE_RESPONSE: {
        struct proto_sigshare_resp *r = &m->u.sigshare_resp;

        bool has_c = (it->seen & BIT(TAG_PROOF_C)) != 0;
        bool has_z = (it->seen & BIT(TAG_PROOF_Z)) != 0;
        size_t z_len = 0;

        /* The proof is both items or neither; z is exactly the share's length + 33. */
        r->has_proof = has_c && has_z;
        return items_exactly(it, BIT(TAG_KEY_ID) | BIT(TAG_INDEX) | BIT(TAG_RESULT),
                             BIT(TAG_PROOF_C) | BIT(TAG_PROOF_Z)) &&
               has_c == has_z && items_take(it, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               items_take_u8(it, TAG_INDEX, &r->index) &&
               items_take_var(it, TAG_RESULT, r->share, sizeof(r->share), &r->share_len) &&
               (!r->has_proof ||
                (items_take(it, TAG_PROOF_C, r->proof_c, sizeof(r->proof_c)) &&
                 items_take_var(it, TAG_PROOF_Z, r->proof_z, sizeof(r->proof_z), &z_len) &&
                 z_len == r->share_len + PROTO_TSS_Z_EXTRA));
    }
    default:
        return false;
    }
}

int proto_msg_decode(struct proto_msg *out, const uint8_t *in, size_t in_len)
{
    struct proto_rd rd;
    struct proto_rd body;
    struct wire_items items;
    uint32_t body_len;
    int r;

    if (in_len > PROTO_MSG_MAX) {
        return SPK_ERR_MALFORMED;
    }
    memset(out, 0, sizeof(*out));
    proto_rd_init(&rd, in, in_len);
    if ((r = hdr_read(&rd, &out->type, &out->req_id, &body_len)) != 0) {
        return r;
    }
    if (proto_rd_len(&rd) != body_len || !proto_rd_sub(&rd, &body, body_len) ||
        !items_read(&items, &body) || !body_decode(out, &items) || !msg_check(out)) {
        return SPK_ERR_MALFORMED;
    }
    return 0;
}

/* ---- encoding ------------------------------------------------------------------ */

static bool wr_item(struct proto_wr *wr, unsigned tag, const uint8_t *p, size_t n)
{
    return n <= UINT16_MAX && proto_wr_u8(wr, (uint8_t)tag) && proto_wr_u16(wr, (uint16_t)n) &&
           proto_wr_bytes(wr, p, n);
}

static bool wr_item_u8(struct proto_wr *wr, unsigned tag, uint8_t v)
{
    return wr_item(wr, tag, &v, 1);
}

static bool wr_item_u16(struct proto_wr *wr, unsigned tag, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

    return wr_item(wr, tag, b, sizeof(b));
}

static bool body_encode(struct proto_wr *wr, const struct proto_msg *m)
{
    switch ((enum proto_msg_type)m->type) {
    case PROTO_MSG_PING:
    case PROTO_MSG_PONG:
        return true;
    case PROTO_MSG_SHARE_REQUEST: {
        const struct proto_share_req *r = &m->u.share_req;

        return wr_item(wr, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               wr_item_u8(wr, TAG_OP, r->op) &&
               wr_item(wr, TAG_DIGEST, r->input_digest, sizeof(r->input_digest)) &&
               wr_item(wr, TAG_REQUESTER_PK, r->requester_pk, sizeof(r->requester_pk)) &&
               wr_item_u16(wr, TAG_OP_COUNT, r->op_count);
    }
    case PROTO_MSG_SHARE_RESPONSE: {
        const struct proto_share_resp *r = &m->u.share_resp;

        return wr_item(wr, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               wr_item(wr, TAG_SPLIT_ID, r->split_id, sizeof(r->split_id)) &&
               wr_item_u8(wr, TAG_INDEX, r->index) && wr_item_u16(wr, TAG_FIELD, r->field_bits) &&
               wr_item(wr, TAG_SESSION_PK, r->session_pk, sizeof(r->session_pk)) &&
               wr_item(wr, TAG_NONCE, r->nonce, sizeof(r->nonce)) &&
               wr_item(wr, TAG_SEALED, r->sealed, r->sealed_len);
    }
    case PROTO_MSG_OP_REQUEST: {
        const struct proto_op_req *r = &m->u.op_req;

        return wr_item(wr, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               wr_item_u8(wr, TAG_OP, r->op) && wr_item(wr, TAG_INPUT, r->input, r->input_len) &&
               (r->op != PROTO_OP_DECRYPT_TLS_PREMASTER ||
                wr_item_u16(wr, TAG_CLIENT_VERSION, r->client_version));
    }
    case PROTO_MSG_OP_RESPONSE:
        return wr_item(wr, TAG_RESULT, m->u.op_resp.result, m->u.op_resp.result_len);
    case PROTO_MSG_ERROR: {
        size_t n = strlen(m->u.error.text);

        return wr_item_u16(wr, TAG_ERR_CODE, m->u.error.code) &&
               (n == 0 || wr_item(wr, TAG_ERR_TEXT, (const uint8_t *)m->u.error.text, n));
    }
    case PROTO_MSG_SIGSHARE_REQUEST: {
        const struct proto_sigshare_req *r = &m->u.sigshare_req;

        return wr_item(wr, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               wr_item_u8(wr, TAG_OP, r->op) && wr_item(wr, TAG_INPUT, r->digest, r->digest_len) &&
               (r->salt_len == 0 || wr_item(wr, TAG_SALT, r->salt, r->salt_len));
    }
    case PROTO_MSG_SIGSHARE_RESPONSE: {
        const struct proto_sigshare_resp *r = &m->u.sigshare_resp;

        return wr_item(wr, TAG_KEY_ID, r->key_id, sizeof(r->key_id)) &&
               wr_item_u8(wr, TAG_INDEX, r->index) &&
               wr_item(wr, TAG_RESULT, r->share, r->share_len) &&
               (!r->has_proof ||
                (wr_item(wr, TAG_PROOF_C, r->proof_c, sizeof(r->proof_c)) &&
                 wr_item(wr, TAG_PROOF_Z, r->proof_z, r->share_len + PROTO_TSS_Z_EXTRA)));
    }
    default:
        return false;
    }
}

int proto_msg_encode(uint8_t *out, size_t cap, size_t *out_len, const struct proto_msg *m)
{
    struct proto_wr wr;
    size_t body_at;

    if (!msg_check(m)) {
        return SPK_ERR_INVALID_ARG;
    }
    proto_wr_init(&wr, out, cap < PROTO_MSG_MAX ? cap : PROTO_MSG_MAX);
    if (!proto_wr_bytes(&wr, wire_magic, sizeof(wire_magic)) ||
        !proto_wr_u8(&wr, PROTO_WIRE_VERSION) || !proto_wr_u8(&wr, m->type) ||
        !proto_wr_u8(&wr, 0) || !proto_wr_u64(&wr, m->req_id) || !proto_wr_u32(&wr, 0)) {
        return SPK_ERR_NOMEM;
    }
    body_at = wr.len;
    if (!body_encode(&wr, m) || wr.failed ||
        !proto_wr_put_u32_at(&wr, body_at - 4, (uint32_t)(wr.len - body_at))) {
        return SPK_ERR_NOMEM;
    }
    *out_len = wr.len;
    return 0;
}

bool proto_share_ad(uint8_t out[PROTO_SHARE_AD_LEN], const uint8_t *frame, size_t frame_len,
                    const struct proto_share_resp *m)
{
    struct proto_rd rd;
    struct proto_wr wr;

    proto_rd_init(&rd, frame, frame_len);
    proto_wr_init(&wr, out, PROTO_SHARE_AD_LEN);
    return proto_rd_copy(&rd, out, PROTO_WIRE_HDR_LEN) &&
           proto_wr_reserve(&wr, PROTO_WIRE_HDR_LEN) != NULL &&
           proto_wr_bytes(&wr, m->key_id, sizeof(m->key_id)) &&
           proto_wr_bytes(&wr, m->split_id, sizeof(m->split_id)) && proto_wr_u8(&wr, m->index) &&
           proto_wr_u16(&wr, m->field_bits) && wr.len == PROTO_SHARE_AD_LEN;
}

int proto_op_answer(const struct proto_msg *m, uint8_t *out, size_t out_cap, size_t *out_len)
{
    int status;

    switch (m->type) {
    case PROTO_MSG_OP_RESPONSE:
        if (m->u.op_resp.result_len > out_cap) {
            return SPK_ERR_INTERNAL;
        }
        memcpy(out, m->u.op_resp.result, m->u.op_resp.result_len);
        *out_len = m->u.op_resp.result_len;
        return 0;
    case PROTO_MSG_ERROR:
        status = proto_err_from_wire(m->u.error.code);
        return status == 0 ? SPK_ERR_INTERNAL : status;
    case PROTO_MSG_PING:
    case PROTO_MSG_PONG:
    case PROTO_MSG_SHARE_REQUEST:
    case PROTO_MSG_SHARE_RESPONSE:
    case PROTO_MSG_OP_REQUEST:
    default:
        return SPK_ERR_MALFORMED;
    }
}
