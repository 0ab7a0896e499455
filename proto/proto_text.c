#include <string.h>

#include <sodium.h>

#include "proto/proto.h"

/*
 * Text encodings of the file formats. Key material goes through hex and Z85,
 * so both map characters to values with masks and arithmetic only: no branch
 * and no table index depends on a digit's value (wireguard-tools'
 * encoding.c is the model). Validity itself is public: a bad file is refused
 * at the end, and the partial output is wiped.
 *
 * Bytes are read only through proto_rd; this file does no pointer arithmetic.
 */

/* ct_lt: all ones when a < b, else 0; a and b below 2^31. */
static uint32_t ct_lt(uint32_t a, uint32_t b)
{
    return (uint32_t)0 - ((a - b) >> 31);
}

/* ct_range: all ones when lo <= c <= hi; all three below 2^31 - 1. */
static uint32_t ct_range(uint32_t c, uint32_t lo, uint32_t hi)
{
    return ~ct_lt(c, lo) & ct_lt(c, hi + 1);
}

/* ct_eq: all ones when a == b; both below 2^31. */
static uint32_t ct_eq(uint32_t a, uint32_t b)
{
    return ct_lt(a ^ b, 1);
}

/* ---- hex ----------------------------------------------------------------- */

/* hex_digit: the value of a lowercase hex digit; clears *ok's bits if |c| is none. */
static uint32_t hex_digit(uint32_t c, uint32_t *ok)
{
    uint32_t is_dec = ct_range(c, '0', '9');
    uint32_t is_low = ct_range(c, 'a', 'f');

    *ok &= is_dec | is_low;
    return (is_dec & (c - '0')) | (is_low & (c - 'a' + 10));
}

static uint8_t hex_char(uint32_t v)
{
    /* 0..9 -> '0'..'9', 10..15 -> 'a'..'f' */
    return (uint8_t)(v + '0' + (ct_lt(9, v) & ('a' - '0' - 10)));
}

bool proto_hex_decode(const struct proto_rd *in, uint8_t *out, size_t out_len)
{
    struct proto_rd rd = *in;
    uint32_t ok = 0xffffffffu;

    if (out_len > SIZE_MAX / 2 || proto_rd_len(&rd) != 2 * out_len) {
        return false;
    }
    for (size_t i = 0; i < out_len; i++) {
        uint8_t hi, lo;

        if (!proto_rd_u8(&rd, &hi) || !proto_rd_u8(&rd, &lo)) {
            sodium_memzero(out, out_len);
            return false;
        }
        out[i] = (uint8_t)((hex_digit(hi, &ok) << 4) | hex_digit(lo, &ok));
    }
    if (ok != 0xffffffffu) {
        sodium_memzero(out, out_len);
        return false;
    }
    return true;
}

bool proto_hex_decode_var(const struct proto_rd *in, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = proto_rd_len(in);

    *out_len = 0;
    if (n == 0 || n % 2 != 0 || n / 2 > cap) {
        return false;
    }
    if (!proto_hex_decode(in, out, n / 2)) {
        return false;
    }
    /* Public integers only: one spelling per value, so no leading zero byte. */
    if (out[0] == 0) {
        return false;
    }
    *out_len = n / 2;
    return true;
}

bool proto_wr_hex(struct proto_wr *wr, const uint8_t *p, size_t n)
{
    uint8_t *at;

    if (n > SIZE_MAX / 2) {
        wr->failed = true;
        return false;
    }
    at = proto_wr_reserve(wr, 2 * n);
    if (at == NULL) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        at[2 * i] = hex_char((uint32_t)p[i] >> 4);
        at[2 * i + 1] = hex_char((uint32_t)p[i] & 15);
    }
    return true;
}

/* ---- Z85 ------------------------------------------------------------------ */

/*
 * ZeroMQ RFC 32: each 4 bytes, read as a big-endian u32, become 5 base-85
 * digits, most significant first, from this alphabet. The 23 punctuation
 * characters are matched by scanning all of them, never by indexing.
 */
static const char z85_punct[] = ".-:+=^!/*?&<>()[]{}@%$#";
#define Z85_PUNCT_NUM 23

static uint8_t z85_char(uint32_t v)
{
    uint32_t c = 0;

    c |= ct_range(v, 0, 9) & (v + '0');
    c |= ct_range(v, 10, 35) & (v - 10 + 'a');
    c |= ct_range(v, 36, 61) & (v - 36 + 'A');
    for (uint32_t j = 0; j < Z85_PUNCT_NUM; j++) {
        c |= ct_eq(v, 62 + j) & (uint32_t)(uint8_t)z85_punct[j];
    }
    return (uint8_t)c;
}

static uint32_t z85_digit(uint32_t c, uint32_t *ok)
{
    uint32_t v = 0;
    uint32_t found = 0;
    uint32_t m;

    m = ct_range(c, '0', '9');
    v |= m & (c - '0');
    found |= m;
    m = ct_range(c, 'a', 'z');
    v |= m & (c - 'a' + 10);
    found |= m;
    m = ct_range(c, 'A', 'Z');
    v |= m & (c - 'A' + 36);
    found |= m;
    for (uint32_t j = 0; j < Z85_PUNCT_NUM; j++) {
        m = ct_eq(c, (uint32_t)(uint8_t)z85_punct[j]);
        v |= m & (62 + j);
        found |= m;
    }
    *ok &= found;
    return v;
}

bool proto_z85_decode_key(const struct proto_rd *in, uint8_t out[32])
{
    struct proto_rd rd = *in;
    uint32_t ok = 0xffffffffu;

    if (proto_rd_len(&rd) != PROTO_Z85_KEY_LEN) {
        return false;
    }
    for (size_t g = 0; g < 8; g++) {
        uint64_t acc = 0;

        for (size_t i = 0; i < 5; i++) {
            uint8_t c;

            if (!proto_rd_u8(&rd, &c)) {
                sodium_memzero(out, 32);
                return false;
            }
            acc = acc * 85 + z85_digit(c, &ok);
        }
        /* 85^5 > 2^32: a group above 0xffffffff has no byte form; refuse it
         * rather than wrap as libzmq does, so each key has one spelling. */
        ok &= ct_eq((uint32_t)(acc >> 32), 0);
        for (size_t i = 0; i < 4; i++) {
            out[4 * g + i] = (uint8_t)(acc >> (24 - 8 * i));
        }
    }
    if (ok != 0xffffffffu) {
        sodium_memzero(out, 32);
        return false;
    }
    return true;
}

bool proto_wr_z85_key(struct proto_wr *wr, const uint8_t key[32])
{
    uint8_t *at = proto_wr_reserve(wr, PROTO_Z85_KEY_LEN);

    if (at == NULL) {
        return false;
    }
    for (size_t g = 0; g < 8; g++) {
        uint32_t v = ((uint32_t)key[4 * g] << 24) | ((uint32_t)key[4 * g + 1] << 16) |
                     ((uint32_t)key[4 * g + 2] << 8) | (uint32_t)key[4 * g + 3];

        for (size_t i = 5; i-- > 0;) {
            at[5 * g + i] = z85_char(v % 85);
            v /= 85;
        }
    }
    return true;
}

/* ---- base64 ---------------------------------------------------------------- */

/* RFC 4648 section 4 alphabet; '=' padding is handled by the caller. */
static uint32_t b64_digit(uint32_t c, uint32_t *ok)
{
    uint32_t v = 0;
    uint32_t found = 0;
    uint32_t m;

    m = ct_range(c, 'A', 'Z');
    v |= m & (c - 'A');
    found |= m;
    m = ct_range(c, 'a', 'z');
    v |= m & (c - 'a' + 26);
    found |= m;
    m = ct_range(c, '0', '9');
    v |= m & (c - '0' + 52);
    found |= m;
    m = ct_eq(c, '+');
    v |= m & 62;
    found |= m;
    m = ct_eq(c, '/');
    v |= m & 63;
    found |= m;
    *ok &= found;
    return v;
}

static uint8_t b64_char(uint32_t v)
{
    uint32_t c = 0;

    c |= ct_range(v, 0, 25) & (v + 'A');
    c |= ct_range(v, 26, 51) & (v - 26 + 'a');
    c |= ct_range(v, 52, 61) & (v - 52 + '0');
    c |= ct_eq(v, 62) & '+';
    c |= ct_eq(v, 63) & '/';
    return (uint8_t)c;
}

bool proto_base64_decode(const struct proto_rd *in, uint8_t *out, size_t cap, size_t *out_len)
{
    struct proto_rd rd = *in;
    size_t n = proto_rd_len(&rd);
    size_t groups = n / 4;
    size_t len = 0;
    uint32_t ok = 0xffffffffu;

    *out_len = 0;
    if (n % 4 != 0) {
        return false;
    }
    for (size_t g = 0; g < groups; g++) {
        uint8_t c[4];
        uint32_t acc = 0;
        size_t pad = 0;

        if (!proto_rd_copy(&rd, c, 4)) {
            goto fail;
        }
        /* Padding only in the last group: "xx==" or "xxx=". */
        if (g + 1 == groups) {
            if (c[3] == '=') {
                pad = c[2] == '=' ? 2 : 1;
            }
        }
        for (size_t i = 0; i < 4 - pad; i++) {
            acc = (acc << 6) | b64_digit(c[i], &ok);
        }
        acc <<= 6 * pad;
        /* Canonical: the bits that padding drops must be zero. */
        if (pad == 2 && (acc & 0xffff) != 0) {
            goto fail;
        }
        if (pad == 1 && (acc & 0xff) != 0) {
            goto fail;
        }
        if (cap - len < 3 - pad) {
            goto fail;
        }
        for (size_t i = 0; i < 3 - pad; i++) {
            out[len + i] = (uint8_t)(acc >> (16 - 8 * i));
        }
        len += 3 - pad;
    }
    if (ok != 0xffffffffu) {
        goto fail;
    }
    *out_len = len;
    return true;
fail:
    if (cap > 0) {
        sodium_memzero(out, len < cap ? len : cap);
    }
    return false;
}

bool proto_wr_base64(struct proto_wr *wr, const uint8_t *p, size_t n)
{
    size_t groups = n / 3 + (n % 3 != 0);
    uint8_t *at;

    if (groups > SIZE_MAX / 4) {
        wr->failed = true;
        return false;
    }
    at = proto_wr_reserve(wr, 4 * groups);
    if (at == NULL) {
        return false;
    }
    for (size_t g = 0; g < groups; g++) {
        size_t left = n - 3 * g;
        size_t take = left < 3 ? left : 3;
        uint32_t acc = 0;

        for (size_t i = 0; i < 3; i++) {
            acc = (acc << 8) | (i < take ? p[3 * g + i] : 0);
        }
        for (size_t i = 0; i < 4; i++) {
            at[4 * g + i] = i <= take ? b64_char((acc >> (18 - 6 * i)) & 63) : '=';
        }
    }
    return true;
}

/* ---- names and decimals ------------------------------------------------------ */

static bool name_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool proto_name_valid(const struct proto_rd *name)
{
    struct proto_rd rd = *name;
    uint8_t c;

    if (proto_rd_len(&rd) == 0 || proto_rd_len(&rd) > PROTO_NAME_MAX) {
        return false;
    }
    /* A leading '.' would make NAME.key a hidden file, and ".." a path. */
    if (!proto_rd_u8(&rd, &c) || c == '.' || !name_char_ok(c)) {
        return false;
    }
    while (proto_rd_len(&rd) > 0) {
        if (!proto_rd_u8(&rd, &c) || !name_char_ok(c)) {
            return false;
        }
    }
    return true;
}

bool proto_name_copy(const struct proto_rd *name, char out[PROTO_NAME_MAX + 1])
{
    struct proto_rd rd = *name;
    size_t n = proto_rd_len(name);

    memset(out, 0, PROTO_NAME_MAX + 1);
    if (!proto_name_valid(name) || !proto_rd_copy(&rd, (uint8_t *)out, n)) {
        return false;
    }
    return true;
}

bool proto_name_str_valid(const char s[PROTO_NAME_MAX + 1])
{
    struct proto_rd rd;
    size_t n = strnlen(s, PROTO_NAME_MAX + 1);

    if (n > PROTO_NAME_MAX) {
        return false;
    }
    proto_rd_init(&rd, (const uint8_t *)s, n);
    return proto_name_valid(&rd);
}

bool proto_dec_decode(const struct proto_rd *in, uint32_t min, uint32_t max, uint32_t *out)
{
    struct proto_rd rd = *in;
    size_t n = proto_rd_len(in);
    uint64_t v = 0;
    uint8_t c;

    if (n == 0 || n > 10) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!proto_rd_u8(&rd, &c) || c < '0' || c > '9' || (i == 0 && c == '0' && n > 1)) {
            return false;
        }
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (v < min || v > max) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool proto_wr_dec(struct proto_wr *wr, uint32_t v)
{
    uint8_t digits[10];
    size_t n = 0;

    do {
        digits[n++] = (uint8_t)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) {
        if (!proto_wr_u8(wr, digits[--n])) {
            return false;
        }
    }
    return true;
}

/* ---- lines ------------------------------------------------------------------ */

static int proto_text_magic(struct proto_rd *rd, const char *magic, uint32_t version)
{
    struct proto_rd line, word, rest;
    uint32_t got;

    if (!proto_rd_line(rd, &line) || !proto_rd_word(&line, &word) ||
        !proto_rd_equals(&word, magic)) {
        return SPK_ERR_MALFORMED;
    }
    rest = line;
    if (proto_rd_len(&rest) == 0) {
        return SPK_ERR_MALFORMED;
    }
    if (proto_dec_decode(&rest, 0, UINT32_MAX, &got)) {
        return got == version ? 0 : SPK_ERR_VERSION;
    }
    /* A version too large for 32 bits is still a version we do not speak. */
    {
        struct proto_rd digits = rest;
        uint8_t c;
        bool first = true;

        while (proto_rd_len(&digits) > 0) {
            if (!proto_rd_u8(&digits, &c) || c < '0' || c > '9' || (first && c == '0')) {
                return SPK_ERR_MALFORMED;
            }
            first = false;
        }
        return SPK_ERR_VERSION;
    }
}

int proto_text_open(struct proto_rd *rd, const uint8_t *in, size_t in_len, size_t max_len,
                    const char *magic, uint32_t version)
{
    if (in_len > max_len) {
        proto_rd_init(rd, NULL, 0);
        return SPK_ERR_MALFORMED;
    }
    proto_rd_init(rd, in, in_len);
    return proto_text_magic(rd, magic, version);
}

bool proto_text_field(struct proto_rd *rd, const char *key, struct proto_rd *value)
{
    struct proto_rd copy = *rd;
    struct proto_rd line, word;

    if (!proto_rd_line(&copy, &line) || !proto_rd_word(&line, &word) ||
        !proto_rd_equals(&word, key) || proto_rd_len(&line) == 0) {
        return false;
    }
    *value = line;
    *rd = copy;
    return true;
}

bool proto_text_field_dec(struct proto_rd *rd, const char *key, uint32_t min, uint32_t max,
                          unsigned *out)
{
    struct proto_rd v;
    uint32_t n;

    if (!proto_text_field(rd, key, &v) || !proto_dec_decode(&v, min, max, &n)) {
        return false;
    }
    *out = n;
    return true;
}

bool proto_wr_field_key(struct proto_wr *wr, const char *key)
{
    return proto_wr_str(wr, key) && proto_wr_u8(wr, ' ');
}

/* ---- the field ----------------------------------------------------------------- */

size_t proto_field_y_len(unsigned field_bits)
{
    switch (field_bits) {
    case 1279:
    case 2203:
    case 2281:
    case 3217:
    case 4253:
        return ((size_t)field_bits + 7) / 8;
    default:
        return 0;
    }
}

bool proto_rd_mode_or_field(struct proto_rd *rd, uint8_t *mode, unsigned *field_bits)
{
    struct proto_rd probe = *rd;
    struct proto_rd v;
    uint32_t bits;

    if (proto_text_field(&probe, "mode", &v)) {
        if (!proto_rd_equals(&v, "threshold")) {
            return false;
        }
        *rd = probe;
        *mode = PROTO_MODE_THRESHOLD;
        *field_bits = 0;
        return true;
    }
    if (!proto_text_field(rd, "field", &v) || !proto_dec_decode(&v, 1, UINT32_MAX, &bits)) {
        return false;
    }
    *mode = PROTO_MODE_REBUILD;
    *field_bits = bits;
    return true;
}

bool proto_wr_mode_or_field(struct proto_wr *wr, uint8_t mode, unsigned field_bits)
{
    switch (mode) {
    case PROTO_MODE_REBUILD:
        return proto_wr_field_key(wr, "field") && proto_wr_dec(wr, field_bits) &&
               proto_wr_u8(wr, '\n');
    case PROTO_MODE_THRESHOLD:
        return proto_wr_field_key(wr, "mode") && proto_wr_str(wr, "threshold") &&
               proto_wr_u8(wr, '\n');
    default:
        return false;
    }
}
