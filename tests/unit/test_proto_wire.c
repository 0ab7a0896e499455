#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

/* Wire codec: round trips of every type, and the negative cases STYLE.md asks
 * of every decoder. */

#define NUM_SAMPLES 14

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + 7 * i);
    }
}

/* sample: message number |i| of a set covering every type and option. */
static void sample(struct proto_msg *m, int i)
{
    memset(m, 0, sizeof(*m));
    m->req_id = 0x0102030405060708ull + (uint64_t)i;
    switch (i) {
    case 0:
        m->type = PROTO_MSG_PING;
        break;
    case 1:
        m->type = PROTO_MSG_PONG;
        m->req_id = UINT64_MAX;
        break;
    case 2:
        m->type = PROTO_MSG_SHARE_REQUEST;
        fill(m->u.share_req.key_id, PROTO_KEY_ID_LEN, 1);
        m->u.share_req.op = PROTO_OP_SIGN_PSS_SHA256;
        fill(m->u.share_req.input_digest, PROTO_SHA256_LEN, 2);
        fill(m->u.share_req.requester_pk, PROTO_X25519_LEN, 3);
        m->u.share_req.op_count = PROTO_OP_COUNT_MAX;
        break;
    case 3:
        m->type = PROTO_MSG_SHARE_RESPONSE;
        fill(m->u.share_resp.key_id, PROTO_KEY_ID_LEN, 4);
        fill(m->u.share_resp.split_id, PROTO_SPLIT_ID_LEN, 5);
        m->u.share_resp.index = 255;
        m->u.share_resp.field_bits = 1279;
        fill(m->u.share_resp.session_pk, PROTO_X25519_LEN, 6);
        fill(m->u.share_resp.nonce, PROTO_AEAD_NONCE_LEN, 7);
        m->u.share_resp.sealed_len = 5 * 160 + PROTO_AEAD_TAG_LEN;
        fill(m->u.share_resp.sealed, m->u.share_resp.sealed_len, 8);
        break;
    case 4:
        m->type = PROTO_MSG_SHARE_RESPONSE;
        m->u.share_resp.index = 1;
        m->u.share_resp.field_bits = 4253;
        m->u.share_resp.sealed_len = PROTO_SHARE_CT_MAX;
        fill(m->u.share_resp.sealed, m->u.share_resp.sealed_len, 9);
        break;
    case 5:
        m->type = PROTO_MSG_OP_REQUEST;
        fill(m->u.op_req.key_id, PROTO_KEY_ID_LEN, 10);
        m->u.op_req.op = PROTO_OP_SIGN_PKCS1_MD5SHA1;
        m->u.op_req.input_len = 36;
        fill(m->u.op_req.input, 36, 11);
        break;
    case 6:
        m->type = PROTO_MSG_OP_REQUEST;
        m->u.op_req.op = PROTO_OP_DECRYPT_TLS_PREMASTER;
        m->u.op_req.input_len = PROTO_BN_MAX;
        fill(m->u.op_req.input, PROTO_BN_MAX, 12);
        m->u.op_req.client_version = 0x0303;
        break;
    case 7:
        m->type = PROTO_MSG_OP_RESPONSE;
        m->u.op_resp.result_len = 256;
        fill(m->u.op_resp.result, 256, 13);
        break;
    case 8:
        m->type = PROTO_MSG_ERROR;
        m->u.error.code = proto_err_to_wire(SPK_ERR_NOT_ALLOWED);
        strcpy(m->u.error.text, "client edge-1 may not fetch this key");
        break;
    case 10:
        m->type = PROTO_MSG_SIGSHARE_REQUEST;
        fill(m->u.sigshare_req.key_id, PROTO_KEY_ID_LEN, 14);
        m->u.sigshare_req.op = PROTO_OP_SIGN_PSS_SHA512;
        m->u.sigshare_req.digest_len = PROTO_DIGEST_MAX;
        fill(m->u.sigshare_req.digest, PROTO_DIGEST_MAX, 15);
        m->u.sigshare_req.salt_len = PROTO_DIGEST_MAX;
        fill(m->u.sigshare_req.salt, PROTO_DIGEST_MAX, 16);
        break;
    case 11:
        /* no salt: the item is left out */
        m->type = PROTO_MSG_SIGSHARE_REQUEST;
        m->u.sigshare_req.op = PROTO_OP_SIGN_PKCS1_SHA256;
        m->u.sigshare_req.digest_len = 32;
        fill(m->u.sigshare_req.digest, 32, 17);
        break;
    case 12:
        m->type = PROTO_MSG_SIGSHARE_RESPONSE;
        fill(m->u.sigshare_resp.key_id, PROTO_KEY_ID_LEN, 18);
        m->u.sigshare_resp.index = 3;
        m->u.sigshare_resp.share_len = PROTO_BN_MAX;
        fill(m->u.sigshare_resp.share, PROTO_BN_MAX, 19);
        break;
    case 13:
        /* with Shoup's proof: c, and z of the share's length + 33 */
        m->type = PROTO_MSG_SIGSHARE_RESPONSE;
        fill(m->u.sigshare_resp.key_id, PROTO_KEY_ID_LEN, 20);
        m->u.sigshare_resp.index = 2;
        m->u.sigshare_resp.share_len = 256;
        fill(m->u.sigshare_resp.share, 256, 21);
        m->u.sigshare_resp.has_proof = true;
        fill(m->u.sigshare_resp.proof_c, PROTO_TSS_C_LEN, 22);
        fill(m->u.sigshare_resp.proof_z, 256 + PROTO_TSS_Z_EXTRA, 23);
        break;
    default:
        m->type = PROTO_MSG_ERROR;
        m->u.error.code = proto_err_to_wire(SPK_ERR_RATE_LIMITED);
        break;
    }
}

static size_t encode(uint8_t *buf, size_t cap, const struct proto_msg *m)
{
    size_t len = 0;

    assert_int_equal(proto_msg_encode(buf, cap, &len, m), 0);
    return len;
}

static void test_round_trip(void **state)
{
    static uint8_t buf[PROTO_MSG_MAX];
    static uint8_t buf2[PROTO_MSG_MAX];
    static struct proto_msg m;
    static struct proto_msg d;

    (void)state;
    for (int i = 0; i < NUM_SAMPLES; i++) {
        size_t len, len2;
        uint8_t type;
        uint64_t req_id;

        sample(&m, i);
        len = encode(buf, sizeof(buf), &m);
        assert_int_equal(proto_msg_decode(&d, buf, len), 0);
        /* both structs start zeroed and every field is copied: compare whole */
        assert_memory_equal(&m, &d, sizeof(m));
        len2 = encode(buf2, sizeof(buf2), &d);
        assert_int_equal(len, len2);
        assert_memory_equal(buf, buf2, len);
        assert_int_equal(proto_msg_peek(buf, len, &type, &req_id), 0);
        assert_int_equal(type, m.type);
        assert_true(req_id == m.req_id);
    }
}

static void test_header_layout(void **state)
{
    uint8_t buf[64];
    struct proto_msg m;
    size_t len;
    static const uint8_t want[] = {'S', 'K', 1, PROTO_MSG_PING, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0,
                                   0,   0,   0};

    (void)state;
    sample(&m, 0);
    len = encode(buf, sizeof(buf), &m);
    assert_int_equal(len, PROTO_WIRE_HDR_LEN);
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_truncation(void **state)
{
    static uint8_t buf[PROTO_MSG_MAX];
    static struct proto_msg m;
    static struct proto_msg d;

    (void)state;
    for (int i = 0; i < NUM_SAMPLES; i++) {
        size_t len;

        sample(&m, i);
        len = encode(buf, sizeof(buf), &m);
        for (size_t cut = 0; cut < len; cut++) {
            assert_int_equal(proto_msg_decode(&d, buf, cut), SPK_ERR_MALFORMED);
        }
    }
}

static void test_trailing_and_lengths(void **state)
{
    static uint8_t buf[PROTO_MSG_MAX + 2];
    static struct proto_msg m;
    static struct proto_msg d;

    (void)state;
    for (int i = 0; i < NUM_SAMPLES; i++) {
        size_t len;
        uint32_t body;

        sample(&m, i);
        len = encode(buf, sizeof(buf), &m);
        body = (uint32_t)(len - PROTO_WIRE_HDR_LEN);

        /* a trailing byte the body length does not cover */
        buf[len] = 0;
        assert_int_equal(proto_msg_decode(&d, buf, len + 1), SPK_ERR_MALFORMED);
        /* body length one too large, and one too small */
        buf[16] = (uint8_t)(body + 1);
        buf[15] = (uint8_t)((body + 1) >> 8);
        assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
        /* ... and covering the trailing byte: an incomplete item */
        assert_int_equal(proto_msg_decode(&d, buf, len + 1), SPK_ERR_MALFORMED);
        if (body > 0) {
            buf[16] = (uint8_t)(body - 1);
            buf[15] = (uint8_t)((body - 1) >> 8);
            assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
            buf[16] = (uint8_t)body;
            buf[15] = (uint8_t)(body >> 8);
            /* first item's length one too large */
            buf[PROTO_WIRE_HDR_LEN + 2]++;
            assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
            buf[PROTO_WIRE_HDR_LEN + 2] -= 2;
            assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
        }
    }
}

static void test_msg_max(void **state)
{
    static uint8_t buf[PROTO_MSG_MAX + 1];
    struct proto_msg d;
    uint8_t type;
    uint64_t req_id;

    (void)state;
    /* a valid PING followed by padding to PROTO_MSG_MAX + 1 is refused for
     * size before anything else is looked at */
    memset(buf, 0, sizeof(buf));
    buf[0] = 'S';
    buf[1] = 'K';
    buf[2] = 1;
    buf[3] = PROTO_MSG_PING;
    assert_int_equal(proto_msg_decode(&d, buf, PROTO_WIRE_HDR_LEN), 0);
    assert_int_equal(proto_msg_decode(&d, buf, PROTO_MSG_MAX + 1), SPK_ERR_MALFORMED);
    assert_int_equal(proto_msg_peek(buf, PROTO_MSG_MAX + 1, &type, &req_id), SPK_ERR_MALFORMED);
}

static void test_header_fields(void **state)
{
    uint8_t buf[64];
    struct proto_msg m;
    struct proto_msg d;
    size_t len;
    uint8_t type;
    uint64_t req_id;

    (void)state;
    sample(&m, 0);
    len = encode(buf, sizeof(buf), &m);
    buf[0] = 'X';
    assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
    buf[0] = 'S';
    buf[2] = 2;
    assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_VERSION);
    assert_int_equal(proto_msg_peek(buf, len, &type, &req_id), SPK_ERR_VERSION);
    buf[2] = 0;
    assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_VERSION);
    buf[2] = 1;
    buf[3] = 0;
    assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
    buf[3] = PROTO_MSG_SIGSHARE_RESPONSE + 1;
    assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
    buf[3] = PROTO_MSG_PING;
    buf[4] = 1;
    assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
    buf[4] = 0;
    assert_int_equal(proto_msg_decode(&d, buf, len), 0);
    /* PING with a body */
    buf[16] = 3;
    buf[17] = 0x01;
    buf[18] = 0;
    buf[19] = 0;
    assert_int_equal(proto_msg_decode(&d, buf, len + 3), SPK_ERR_MALFORMED);
}

/* Build frames by hand: header for |type| and then raw item bytes. */
static size_t frame(uint8_t *buf, uint8_t type, const uint8_t *items, size_t items_len)
{
    static const uint8_t hdr[] = {'S', 'K', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};

    memcpy(buf, hdr, sizeof(hdr));
    buf[3] = type;
    buf[13] = (uint8_t)(items_len >> 24);
    buf[14] = (uint8_t)(items_len >> 16);
    buf[15] = (uint8_t)(items_len >> 8);
    buf[16] = (uint8_t)items_len;
    memcpy(buf + PROTO_WIRE_HDR_LEN, items, items_len);
    return PROTO_WIRE_HDR_LEN + items_len;
}

static void test_items(void **state)
{
    uint8_t buf[256];
    struct proto_msg d;
    size_t len;
    /* ERROR with code 19 (not allowed) */
    static const uint8_t ok[] = {0x0e, 0, 2, 0, 19};
    static const uint8_t ok_text[] = {0x0e, 0, 2, 0, 19, 0x0f, 0, 2, 'h', 'i'};
    static const uint8_t dup[] = {0x0e, 0, 2, 0, 19, 0x0e, 0, 2, 0, 19};
    static const uint8_t order[] = {0x0f, 0, 2, 'h', 'i', 0x0e, 0, 2, 0, 19};
    static const uint8_t unknown_tag[] = {0x0e, 0, 2, 0, 19, 0x11, 0, 0};
    static const uint8_t op_count_on_error[] = {0x0e, 0, 2, 0, 19, 0x10, 0, 2, 0, 1};
    static const uint8_t zero_tag[] = {0x00, 0, 0, 0x0e, 0, 2, 0, 19};
    static const uint8_t foreign_tag[] = {0x01, 0, 0, 0x0e, 0, 2, 0, 19};
    static const uint8_t missing[] = {0x0f, 0, 2, 'h', 'i'};
    static const uint8_t bad_code[] = {0x0e, 0, 2, 0, 26};
    /* SPK_ERR_MIXED_SPLIT, next to too-few-shares, never crosses the wire */
    static const uint8_t next_code[] = {0x0e, 0, 2, 0, 11};
    static const uint8_t too_few[] = {0x0e, 0, 2, 0, 10};
    static const uint8_t code_len[] = {0x0e, 0, 3, 0, 0, 19};
    static const uint8_t empty_text[] = {0x0e, 0, 2, 0, 19, 0x0f, 0, 0};
    static const uint8_t nul_text[] = {0x0e, 0, 2, 0, 19, 0x0f, 0, 2, 'h', 0};
    static const uint8_t ctl_text[] = {0x0e, 0, 2, 0, 19, 0x0f, 0, 2, 'h', '\n'};
    uint8_t long_text[5 + 3 + PROTO_ERR_TEXT_MAX + 1];

    (void)state;
    len = frame(buf, PROTO_MSG_ERROR, ok, sizeof(ok));
    assert_int_equal(proto_msg_decode(&d, buf, len), 0);
    assert_int_equal(proto_err_from_wire(d.u.error.code), SPK_ERR_NOT_ALLOWED);
    assert_string_equal(d.u.error.text, "");
    len = frame(buf, PROTO_MSG_ERROR, ok_text, sizeof(ok_text));
    assert_int_equal(proto_msg_decode(&d, buf, len), 0);
    assert_string_equal(d.u.error.text, "hi");
    len = frame(buf, PROTO_MSG_ERROR, too_few, sizeof(too_few));
    assert_int_equal(proto_msg_decode(&d, buf, len), 0);
    assert_int_equal(proto_err_from_wire(d.u.error.code), SPK_ERR_THRESHOLD);

#define REFUSED(items)                                                                             \
    do {                                                                                           \
        len = frame(buf, PROTO_MSG_ERROR, items, sizeof(items));                                   \
        assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);                       \
    } while (0)
    REFUSED(dup);
    REFUSED(order);
    REFUSED(unknown_tag);
    REFUSED(op_count_on_error);
    REFUSED(zero_tag);
    REFUSED(foreign_tag);
    REFUSED(missing);
    REFUSED(bad_code);
    REFUSED(next_code);
    REFUSED(code_len);
    REFUSED(empty_text);
    REFUSED(nul_text);
    REFUSED(ctl_text);

    /* PROTO_ERR_TEXT_MAX is fine, one more is not */
    memcpy(long_text, ok, sizeof(ok));
    long_text[5] = 0x0f;
    long_text[6] = 0;
    long_text[7] = PROTO_ERR_TEXT_MAX;
    memset(long_text + 8, 'a', PROTO_ERR_TEXT_MAX + 1);
    len = frame(buf, PROTO_MSG_ERROR, long_text, sizeof(long_text) - 1);
    assert_int_equal(proto_msg_decode(&d, buf, len), 0);
    long_text[7] = PROTO_ERR_TEXT_MAX + 1;
    REFUSED(long_text);
#undef REFUSED
}

static void test_semantic(void **state)
{
    static uint8_t buf[PROTO_MSG_MAX];
    static struct proto_msg m;
    static struct proto_msg d;
    size_t len;

    (void)state;
    /* client version on a non-premaster op: refused by the encoder */
    sample(&m, 5);
    m.u.op_req.client_version = 0x0303;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    /* digest length must match the hash */
    sample(&m, 5);
    m.u.op_req.input_len = 35;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    /* a ciphertext larger than PROTO_BN_MAX */
    sample(&m, 6);
    m.u.op_req.input_len = PROTO_BN_MAX + 1;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    /* unknown op */
    sample(&m, 2);
    m.u.share_req.op = 0x07;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    /* op-count 0 and PROTO_OP_COUNT_MAX + 1 */
    sample(&m, 2);
    m.u.share_req.op_count = 0;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    m.u.share_req.op_count = PROTO_OP_COUNT_MAX + 1;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    /* share index 0, unknown field, sealed length not 5 * y_len + tag */
    sample(&m, 3);
    m.u.share_resp.index = 0;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    sample(&m, 3);
    m.u.share_resp.field_bits = 1280;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    sample(&m, 3);
    m.u.share_resp.sealed_len--;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    /* an unknown error code, a control character in the text */
    sample(&m, 8);
    m.u.error.code = 2;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    sample(&m, 8);
    m.u.error.text[3] = '\t';
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    /* too small a buffer */
    sample(&m, 3);
    assert_int_equal(proto_msg_encode(buf, 100, &len, &m), SPK_ERR_NOMEM);

    /* decoder side of the premaster rule: drop the client version item
     * (the last 5 bytes) and fix the body length */
    sample(&m, 6);
    len = encode(buf, sizeof(buf), &m);
    buf[16] = (uint8_t)(len - 5 - PROTO_WIRE_HDR_LEN);
    buf[15] = (uint8_t)((len - 5 - PROTO_WIRE_HDR_LEN) >> 8);
    assert_int_equal(proto_msg_decode(&d, buf, len - 5), SPK_ERR_MALFORMED);
    /* SHARE_REQUEST: op-count is the last item (tag 0x10, 2 bytes); out of
     * range, or dropped altogether, is refused */
    sample(&m, 2);
    len = encode(buf, sizeof(buf), &m);
    assert_int_equal(buf[len - 5], 0x10);
    assert_int_equal(buf[len - 1], PROTO_OP_COUNT_MAX);
    buf[len - 1] = 0;
    assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
    buf[len - 1] = PROTO_OP_COUNT_MAX + 1;
    assert_int_equal(proto_msg_decode(&d, buf, len), SPK_ERR_MALFORMED);
    buf[len - 1] = 1;
    assert_int_equal(proto_msg_decode(&d, buf, len), 0);
    assert_int_equal(d.u.share_req.op_count, 1);
    buf[16] = (uint8_t)(len - 5 - PROTO_WIRE_HDR_LEN);
    assert_int_equal(proto_msg_decode(&d, buf, len - 5), SPK_ERR_MALFORMED);
    /* a sealed share one byte short of 5 * y_len + tag: cut the last byte
     * and shorten the item and the body */
    sample(&m, 3);
    len = encode(buf, sizeof(buf), &m);
    buf[len - 816 - 1]--;
    buf[16]--;
    assert_int_equal(proto_msg_decode(&d, buf, len - 1), SPK_ERR_MALFORMED);
}

static void test_errors_and_ops(void **state)
{
    static const int wire[] = {SPK_ERR_UNKNOWN_KEY, SPK_ERR_NOT_ALLOWED, SPK_ERR_RATE_LIMITED,
                               SPK_ERR_MALFORMED,   SPK_ERR_VERSION,     SPK_ERR_INTERNAL,
                               SPK_ERR_UNAVAILABLE, SPK_ERR_TIMEOUT,     SPK_ERR_FAULT,
                               SPK_ERR_DECRYPT,     SPK_ERR_UNSUPPORTED, SPK_ERR_THRESHOLD};

    (void)state;
    for (size_t i = 0; i < sizeof(wire) / sizeof(wire[0]); i++) {
        assert_int_equal(proto_err_to_wire(wire[i]), -wire[i]);
        assert_int_equal(proto_err_from_wire(proto_err_to_wire(wire[i])), wire[i]);
    }
    /* PROTOCOL.md's table: too-few-shares is 10 */
    assert_int_equal(proto_err_to_wire(SPK_ERR_THRESHOLD), 10);
    assert_int_equal(proto_err_to_wire(SPK_ERR_UNSEAL), -SPK_ERR_INTERNAL);
    assert_int_equal(proto_err_to_wire(SPK_ERR_MIXED_SPLIT), -SPK_ERR_INTERNAL);
    assert_int_equal(proto_err_from_wire(0), 0);
    assert_int_equal(proto_err_from_wire((uint16_t)-SPK_ERR_UNSEAL), 0);
    assert_int_equal(proto_err_from_wire((uint16_t)-SPK_ERR_MIXED_SPLIT), 0);
    assert_int_equal(proto_err_from_wire(0xffff), 0);

    assert_string_equal(proto_op_name(PROTO_OP_SIGN_PSS_SHA384), "sign-pss-sha384");
    assert_string_equal(proto_op_name(0), "unknown");
    assert_int_equal(proto_op_from_name("decrypt-tls-premaster"), PROTO_OP_DECRYPT_TLS_PREMASTER);
    assert_int_equal(proto_op_from_name("decrypt"), 0);
    assert_int_equal(proto_op_digest_len(PROTO_OP_SIGN_PKCS1_SHA1), 20);
    assert_int_equal(proto_op_digest_len(PROTO_OP_DECRYPT_RAW), 0);
    for (unsigned op = 0; op < 256; op++) {
        if (proto_op_valid((uint8_t)op)) {
            assert_int_equal(proto_op_from_name(proto_op_name((uint8_t)op)), op);
        }
    }
}

/* The input-digest construction of PROTOCOL.md 7.3, against a value computed
 * independently: python3 -c "import hashlib; print(hashlib.sha256(
 *   bytes([0x03,0,3]) + b'abc' + bytes([0x03,0,2]) + b'de').hexdigest())" */
static void test_ops_digest(void **state)
{
    static const uint8_t want[PROTO_SHA256_LEN] = {
        0x25, 0xc0, 0x6e, 0x10, 0x26, 0xb6, 0xfb, 0x0a, 0xb3, 0xd3, 0x76,
        0x0d, 0x65, 0xe6, 0xbc, 0x97, 0x51, 0x12, 0x57, 0x42, 0x2c, 0xf6,
        0x19, 0xd4, 0x6c, 0x29, 0x28, 0x1d, 0x24, 0xae, 0xe5, 0x3f,
    };
    static uint8_t big[PROTO_BN_MAX + 1];
    struct proto_ops_digest d;
    uint8_t out[PROTO_SHA256_LEN];

    (void)state;
    proto_ops_digest_init(&d);
    assert_true(proto_ops_digest_add(&d, PROTO_OP_SIGN_PKCS1_SHA256, (const uint8_t *)"abc", 3));
    assert_true(proto_ops_digest_add(&d, PROTO_OP_SIGN_PKCS1_SHA256, (const uint8_t *)"de", 2));
    /* refused inputs change nothing */
    assert_false(proto_ops_digest_add(&d, PROTO_OP_SIGN_PKCS1_SHA256, big, 0));
    assert_false(proto_ops_digest_add(&d, PROTO_OP_DECRYPT_RAW, big, PROTO_BN_MAX + 1));
    proto_ops_digest_final(&d, out);
    assert_memory_equal(out, want, sizeof(want));

    /* at most PROTO_OP_COUNT_MAX operations */
    proto_ops_digest_init(&d);
    for (int i = 0; i < PROTO_OP_COUNT_MAX; i++) {
        assert_true(proto_ops_digest_add(&d, PROTO_OP_DECRYPT_RAW, big, PROTO_BN_MAX));
    }
    assert_false(proto_ops_digest_add(&d, PROTO_OP_DECRYPT_RAW, big, 1));
    proto_ops_digest_final(&d, out);
}

/* wire_set_body writes the body length of the |n|-byte message |msg| into
 * its header (bytes 13..16), after items were cut or appended by hand. */
static void wire_set_body(uint8_t *msg, size_t n)
{
    uint32_t body = (uint32_t)(n - PROTO_WIRE_HDR_LEN);

    msg[13] = (uint8_t)(body >> 24);
    msg[14] = (uint8_t)(body >> 16);
    msg[15] = (uint8_t)(body >> 8);
    msg[16] = (uint8_t)body;
}

/* wire_put_item appends at |n| an item |tag| of |len| bytes of 1; returns
 * the new length. */
static size_t wire_put_item(uint8_t *msg, size_t n, uint8_t tag, size_t len)
{
    msg[n++] = tag;
    msg[n++] = (uint8_t)(len >> 8);
    msg[n++] = (uint8_t)len;
    memset(msg + n, 1, len);
    return n + len;
}

/* SIGSHARE_REQUEST/RESPONSE: an empty salt or share, an index 0, a digest over 64 bytes. */
static void test_sigshare(void **state)
{
    static uint8_t buf[PROTO_MSG_MAX];
    static struct proto_msg m;
    static struct proto_msg d;
    size_t len = 0;

    (void)state;
    sample(&m, 11);
    m.u.sigshare_req.digest_len = PROTO_DIGEST_MAX + 1;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    m.u.sigshare_req.digest_len = 0;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    m.u.sigshare_req.digest_len = 32;
    m.u.sigshare_req.salt_len = PROTO_DIGEST_MAX + 1;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    m.u.sigshare_req.salt_len = 0;
    m.u.sigshare_req.op = 0x7f;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    sample(&m, 12);
    m.u.sigshare_resp.index = 0;
    assert_int_equal(proto_msg_encode(buf, sizeof(buf), &len, &m), SPK_ERR_INVALID_ARG);
    /* A salt item of length 0 is refused: no salt is written by leaving it out. */
    sample(&m, 11);
    len = encode(buf, sizeof(buf), &m);
    buf[len] = 0x11;
    buf[len + 1] = 0;
    buf[len + 2] = 0;
    buf[16] = (uint8_t)(buf[16] + 3);
    assert_int_equal(proto_msg_decode(&d, buf, len + 3), SPK_ERR_MALFORMED);

    /* The proof: c alone, z alone, z one byte short or long, c of 15 bytes. */
    sample(&m, 13);
    len = encode(buf, sizeof(buf), &m);
    assert_int_equal(proto_msg_decode(&d, buf, len), 0);
    assert_true(d.u.sigshare_resp.has_proof);
    {
        /* items: key-id 3+32, index 3+1, result 3+256, c 3+16, z 3+289 */
        size_t at_c = PROTO_WIRE_HDR_LEN + 35 + 4 + 259;
        size_t at_z = at_c + 3 + PROTO_TSS_C_LEN;
        static uint8_t cut[PROTO_MSG_MAX];
        size_t n;

        assert_int_equal(buf[at_c], 0x12);
        assert_int_equal(buf[at_z], 0x13);
        assert_int_equal(at_z + 3 + 256 + PROTO_TSS_Z_EXTRA, len);
        /* without z: c alone */
        memcpy(cut, buf, at_z);
        n = at_z;
        wire_set_body(cut, n);
        assert_int_equal(proto_msg_decode(&d, cut, n), SPK_ERR_MALFORMED);
    }
    m.u.sigshare_resp.has_proof = false;
    len = encode(buf, sizeof(buf), &m);
    assert_int_equal(proto_msg_decode(&d, buf, len), 0);
    assert_false(d.u.sigshare_resp.has_proof);
    /* c alone / z alone / z of another length: appended by hand after the result */
    {
        static uint8_t ext[PROTO_MSG_MAX];
        static const size_t z_lens[] = {256 + PROTO_TSS_Z_EXTRA - 1, 256 + PROTO_TSS_Z_EXTRA + 1};
        size_t n;

        memcpy(ext, buf, len);
        /* c only */
        n = wire_put_item(ext, len, 0x12, PROTO_TSS_C_LEN);
        wire_set_body(ext, n);
        assert_int_equal(proto_msg_decode(&d, ext, n), SPK_ERR_MALFORMED);
        /* z only */
        n = wire_put_item(ext, len, 0x13, 256 + PROTO_TSS_Z_EXTRA);
        wire_set_body(ext, n);
        assert_int_equal(proto_msg_decode(&d, ext, n), SPK_ERR_MALFORMED);
        /* c and a z one byte short or long; c of 15 bytes with a right z */
        for (int t = 0; t < 3; t++) {
            size_t c_len = t == 2 ? PROTO_TSS_C_LEN - 1 : PROTO_TSS_C_LEN;
            size_t z_len = t == 2 ? 256 + PROTO_TSS_Z_EXTRA : z_lens[t];

            n = wire_put_item(ext, len, 0x12, c_len);
            n = wire_put_item(ext, n, 0x13, z_len);
            wire_set_body(ext, n);
            assert_int_equal(proto_msg_decode(&d, ext, n), SPK_ERR_MALFORMED);
        }
        /* and the right lengths decode */
        n = wire_put_item(ext, len, 0x12, PROTO_TSS_C_LEN);
        n = wire_put_item(ext, n, 0x13, 256 + PROTO_TSS_Z_EXTRA);
        wire_set_body(ext, n);
        assert_int_equal(proto_msg_decode(&d, ext, n), 0);
        assert_true(d.u.sigshare_resp.has_proof);
    }
}

static void test_share_ad(void **state)
{
    static uint8_t buf[PROTO_MSG_MAX];
    static struct proto_msg m;
    uint8_t ad[PROTO_SHARE_AD_LEN];
    size_t len;

    (void)state;
    sample(&m, 3);
    len = encode(buf, sizeof(buf), &m);
    assert_true(proto_share_ad(ad, buf, len, &m.u.share_resp));
    assert_memory_equal(ad, buf, PROTO_WIRE_HDR_LEN);
    assert_memory_equal(ad + PROTO_WIRE_HDR_LEN, m.u.share_resp.key_id, PROTO_KEY_ID_LEN);
    assert_memory_equal(ad + PROTO_WIRE_HDR_LEN + PROTO_KEY_ID_LEN, m.u.share_resp.split_id,
                        PROTO_SPLIT_ID_LEN);
    assert_int_equal(ad[PROTO_WIRE_HDR_LEN + PROTO_KEY_ID_LEN + PROTO_SPLIT_ID_LEN], 255);
    /* the field is authenticated too: 1279 = 0x04ff */
    assert_int_equal(PROTO_SHARE_AD_LEN, 68);
    assert_int_equal(ad[PROTO_SHARE_AD_LEN - 2], 0x04);
    assert_int_equal(ad[PROTO_SHARE_AD_LEN - 1], 0xff);
    assert_false(proto_share_ad(ad, buf, PROTO_WIRE_HDR_LEN - 1, &m.u.share_resp));
}

/* proto_op_answer: what the edge and splitkey.so make of the combiner's answer. */
static void test_op_answer(void **state)
{
    static struct proto_msg m;
    uint8_t out[8];
    size_t n = 0;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.type = PROTO_MSG_OP_RESPONSE;
    m.u.op_resp.result_len = 3;
    memcpy(m.u.op_resp.result, "abc", 3);
    assert_int_equal(proto_op_answer(&m, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "abc", 3);
    m.u.op_resp.result_len = sizeof(out) + 1;
    assert_int_equal(proto_op_answer(&m, out, sizeof(out), &n), SPK_ERR_INTERNAL);
    m.type = PROTO_MSG_ERROR;
    m.u.error.code = proto_err_to_wire(SPK_ERR_NOT_ALLOWED);
    assert_int_equal(proto_op_answer(&m, out, sizeof(out), &n), SPK_ERR_NOT_ALLOWED);
    m.u.error.code = proto_err_to_wire(SPK_ERR_THRESHOLD);
    assert_int_equal(proto_op_answer(&m, out, sizeof(out), &n), SPK_ERR_THRESHOLD);
    m.u.error.code = 0xffff;
    assert_int_equal(proto_op_answer(&m, out, sizeof(out), &n), SPK_ERR_INTERNAL);
    m.type = PROTO_MSG_PONG;
    assert_int_equal(proto_op_answer(&m, out, sizeof(out), &n), SPK_ERR_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_truncation),     cmocka_unit_test(test_trailing_and_lengths),
        cmocka_unit_test(test_msg_max),        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_items),          cmocka_unit_test(test_semantic),
        cmocka_unit_test(test_errors_and_ops), cmocka_unit_test(test_share_ad),
        cmocka_unit_test(test_ops_digest),     cmocka_unit_test(test_sigshare),
        cmocka_unit_test(test_op_answer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
