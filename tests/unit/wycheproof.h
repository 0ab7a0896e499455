#ifndef SPK_TEST_WYCHEPROOF_H
#define SPK_TEST_WYCHEPROOF_H

/*
 * wycheproof.h: test-only, header-only reader for the Wycheproof RSA vector
 * files in SPK_VECTORS. A small JSON parser (a tree of struct wp_json), hex
 * fields, RSA private keys of a test group as (n, e, p, q, dp, dq, qinv) —
 * factoring n from (n, e, d) when a group lists only those, as the
 * signature-generation files do — and a pass/acceptable/fail tally.
 *
 * Every function is static inline so a test includes what it uses without
 * unused-function warnings. Failures return false/NULL; the caller asserts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>

#include "testutil.h"

#define WP_DEPTH_MAX 32

enum wp_type {
    WP_NULL,
    WP_BOOL,
    WP_NUM,
    WP_STR,
    WP_ARR,
    WP_OBJ,
};

struct wp_json {
    enum wp_type type;
    char *key;             /* the member name, when this value sits in an object */
    char *str;             /* WP_STR, NUL-terminated (escapes decoded) */
    double num;            /* WP_NUM */
    bool b;                /* WP_BOOL */
    struct wp_json *items; /* WP_ARR, WP_OBJ */
    size_t num_items;
};

struct wp_cursor {
    const char *p;
    const char *end;
};

static inline void wp_json_clear(struct wp_json *v)
{
    for (size_t i = 0; i < v->num_items; i++) {
        wp_json_clear(&v->items[i]);
    }
    free(v->items);
    free(v->key);
    free(v->str);
    memset(v, 0, sizeof(*v));
}

/* wp_json_free frees a tree from wp_json_parse; NULL is fine. */
static inline void wp_json_free(struct wp_json *v)
{
    if (v != NULL) {
        wp_json_clear(v);
        free(v);
    }
}

static inline void wp_skip_ws(struct wp_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) {
        c->p++;
    }
}

static inline bool wp_take(struct wp_cursor *c, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(c->end - c->p) < n || strncmp(c->p, lit, n) != 0) {
        return false;
    }
    c->p += n;
    return true;
}

static inline int wp_hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* wp_parse_string reads a JSON string (after its opening quote) into a new
 * NUL-terminated buffer; \u escapes become UTF-8 (no surrogate pairing). */
static inline char *wp_parse_string(struct wp_cursor *c)
{
    size_t cap = 16;
    size_t len = 0;
    char *out = malloc(cap);

    if (out == NULL) {
        return NULL;
    }
    for (;;) {
        unsigned code;
        char ch;

        if (c->p >= c->end) {
            goto fail;
        }
        if (cap - len < 5) {
            char *bigger = realloc(out, cap * 2);

            if (bigger == NULL) {
                goto fail;
            }
            out = bigger;
            cap *= 2;
        }
        ch = *c->p++;
        if (ch == '"') {
            break;
        }
        if ((unsigned char)ch < 0x20) {
            goto fail;
        }
        if (ch != '\\') {
            out[len++] = ch;
            continue;
        }
        if (c->p >= c->end) {
            goto fail;
        }
        ch = *c->p++;
        switch (ch) {
        case '"':
        case '\\':
        case '/':
            out[len++] = ch;
            break;
        case 'b':
            out[len++] = '\b';
            break;
        case 'f':
            out[len++] = '\f';
            break;
        case 'n':
            out[len++] = '\n';
            break;
        case 'r':
            out[len++] = '\r';
            break;
        case 't':
            out[len++] = '\t';
            break;
        case 'u':
            if (c->end - c->p < 4) {
                goto fail;
            }
            code = 0;
            for (int i = 0; i < 4; i++) {
                int d = wp_hexval(*c->p++);

                if (d < 0) {
                    goto fail;
                }
                code = code << 4 | (unsigned)d;
            }
            if (code < 0x80) {
                out[len++] = (char)code;
            } else if (code < 0x800) {
                out[len++] = (char)(0xc0 | code >> 6);
                out[len++] = (char)(0x80 | (code & 0x3f));
            } else {
                out[len++] = (char)(0xe0 | code >> 12);
                out[len++] = (char)(0x80 | ((code >> 6) & 0x3f));
                out[len++] = (char)(0x80 | (code & 0x3f));
            }
            break;
        default:
            goto fail;
        }
    }
    out[len] = '\0';
    return out;
fail:
    free(out);
    return NULL;
}

static inline bool wp_parse_value(struct wp_cursor *c, struct wp_json *v, int depth);

static inline bool wp_parse_container(struct wp_cursor *c, struct wp_json *v, int depth, char close)
{
    size_t cap = 0;

    wp_skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return true;
    }
    for (;;) {
        struct wp_json *item;
        char *key = NULL;

        wp_skip_ws(c);
        if (close == '}') {
            if (!wp_take(c, "\"") || (key = wp_parse_string(c)) == NULL) {
                return false;
            }
            wp_skip_ws(c);
            if (!wp_take(c, ":")) {
                free(key);
                return false;
            }
        }
        if (v->num_items == cap) {
            size_t new_cap = cap == 0 ? 8 : cap * 2;
            struct wp_json *bigger = realloc(v->items, new_cap * sizeof(*bigger));

            if (bigger == NULL) {
                free(key);
                return false;
            }
            v->items = bigger;
            cap = new_cap;
        }
        item = &v->items[v->num_items++];
        memset(item, 0, sizeof(*item));
        item->key = key;
        if (!wp_parse_value(c, item, depth + 1)) {
            return false;
        }
        wp_skip_ws(c);
        if (wp_take(c, ",")) {
            continue;
        }
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return true;
        }
        return false;
    }
}

static inline bool wp_parse_value(struct wp_cursor *c, struct wp_json *v, int depth)
{
    if (depth > WP_DEPTH_MAX) {
        return false;
    }
    wp_skip_ws(c);
    if (c->p >= c->end) {
        return false;
    }
    switch (*c->p) {
    case '{':
        c->p++;
        v->type = WP_OBJ;
        return wp_parse_container(c, v, depth, '}');
    case '[':
        c->p++;
        v->type = WP_ARR;
        return wp_parse_container(c, v, depth, ']');
    case '"':
        c->p++;
        v->type = WP_STR;
        return (v->str = wp_parse_string(c)) != NULL;
    case 't':
        v->type = WP_BOOL;
        v->b = true;
        return wp_take(c, "true");
    case 'f':
        v->type = WP_BOOL;
        return wp_take(c, "false");
    case 'n':
        v->type = WP_NULL;
        return wp_take(c, "null");
    default: {
        char buf[64];
        size_t n = 0;
        char *endp = NULL;

        while (c->p + n < c->end && n < sizeof(buf) - 1 &&
               strchr("+-0123456789.eE", c->p[n]) != NULL) {
            n++;
        }
        if (n == 0 || n == sizeof(buf) - 1) {
            return false;
        }
        memcpy(buf, c->p, n);
        buf[n] = '\0';
        v->type = WP_NUM;
        v->num = strtod(buf, &endp);
        c->p += n;
        return endp == buf + n;
    }
    }
}

/* wp_json_parse parses |len| bytes of JSON text into a new tree (free with
 * wp_json_free), or returns NULL. Trailing bytes other than whitespace fail. */
static inline struct wp_json *wp_json_parse(const char *text, size_t len)
{
    struct wp_cursor c = {text, text + len};
    struct wp_json *v = calloc(1, sizeof(*v));

    if (v == NULL) {
        return NULL;
    }
    if (!wp_parse_value(&c, v, 0)) {
        wp_json_free(v);
        return NULL;
    }
    wp_skip_ws(&c);
    if (c.p != c.end) {
        wp_json_free(v);
        return NULL;
    }
    return v;
}

/* wp_get: the member |key| of object |obj|, or NULL. */
static inline const struct wp_json *wp_get(const struct wp_json *obj, const char *key)
{
    if (obj == NULL || obj->type != WP_OBJ) {
        return NULL;
    }
    for (size_t i = 0; i < obj->num_items; i++) {
        if (strcmp(obj->items[i].key, key) == 0) {
            return &obj->items[i];
        }
    }
    return NULL;
}

/* wp_str: the string member |key| of |obj|, or NULL. */
static inline const char *wp_str(const struct wp_json *obj, const char *key)
{
    const struct wp_json *v = wp_get(obj, key);

    return v != NULL && v->type == WP_STR ? v->str : NULL;
}

/* wp_hex decodes the hex string member |key| of |obj| into a new buffer
 * (*out, free()d by the caller; never NULL on success, even when empty). */
static inline bool wp_hex(const struct wp_json *obj, const char *key, uint8_t **out,
                          size_t *out_len)
{
    const char *s = wp_str(obj, key);
    size_t n;

    *out = NULL;
    *out_len = 0;
    if (s == NULL || (n = strlen(s)) % 2 != 0 || (*out = malloc(n / 2 + 1)) == NULL) {
        return false;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = wp_hexval(s[2 * i]);
        int lo = wp_hexval(s[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            free(*out);
            *out = NULL;
            return false;
        }
        (*out)[i] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = n / 2;
    return true;
}

/*
 * wp_manifest_matches: whether |text| is what SPK_VECTORS/SHA256SUMS lists for
 * |name|, so a vector file that was truncated, edited or swapped fails the
 * test instead of silently testing less. Prints why it does not match.
 */
static inline bool wp_manifest_matches(const char *name, const uint8_t *text, size_t len)
{
    char path[1024], line[1024], want[2 * EVP_MAX_MD_SIZE + 1] = "", got[2 * EVP_MAX_MD_SIZE + 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    FILE *f;

    if ((size_t)snprintf(path, sizeof(path), "%s/SHA256SUMS", SPK_VECTORS) >= sizeof(path) ||
        (f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "wycheproof: cannot read the manifest %s\n", path);
        return false;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *sep = strstr(line, "  ");

        line[strcspn(line, "\n")] = '\0';
        if (sep != NULL && strcmp(sep + 2, name) == 0 && (size_t)(sep - line) < sizeof(want)) {
            memcpy(want, line, (size_t)(sep - line));
            want[sep - line] = '\0';
            break;
        }
    }
    fclose(f);
    if (want[0] == '\0') {
        fprintf(stderr, "wycheproof: %s is not in %s\n", name, path);
        return false;
    }
    if (text == NULL || EVP_Digest(text, len, md, &md_len, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "wycheproof: cannot read or hash %s\n", name);
        return false;
    }
    for (unsigned int i = 0; i < md_len; i++) {
        snprintf(got + 2 * i, 3, "%02x", md[i]);
    }
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "wycheproof: %s has SHA-256 %s, the manifest says %s\n", name, got, want);
        return false;
    }
    return true;
}

/*
 * wp_load: the vector file |name| from SPK_VECTORS, checked against the
 * manifest and parsed, or NULL.
 */
static inline struct wp_json *wp_load(const char *name)
{
    char path[1024];
    size_t len = 0;
    uint8_t *text;
    struct wp_json *root = NULL;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", SPK_VECTORS, name) >= sizeof(path)) {
        return NULL;
    }
    text = testutil_read_file(path, &len);
    if (wp_manifest_matches(name, text, len)) {
        root = wp_json_parse((const char *)text, len);
    }
    free(text);
    return root;
}

/* ---- RSA keys of a test group --------------------------------------------- */

/* The values are big-endian, minimal (no leading zero bytes), malloc'd. */
struct wp_rsa_key {
    uint8_t *n, *e, *d, *p, *q, *dp, *dq, *qinv;
    size_t n_len, e_len, d_len, p_len, q_len, dp_len, dq_len, qinv_len;
    bool factored; /* p, q, dp, dq, qinv were derived from (n, e, d) here */
};

static inline void wp_rsa_key_free(struct wp_rsa_key *k)
{
    free(k->n);
    free(k->e);
    free(k->d);
    free(k->p);
    free(k->q);
    free(k->dp);
    free(k->dq);
    free(k->qinv);
    memset(k, 0, sizeof(*k));
}

static inline bool wp_bn_out(const BIGNUM *bn, uint8_t **out, size_t *out_len)
{
    int len = BN_num_bytes(bn);

    if ((*out = malloc((size_t)len + 1)) == NULL) {
        return false;
    }
    *out_len = (size_t)BN_bn2bin(bn, *out);
    return true;
}

static inline bool wp_bn_hex(const struct wp_json *obj, const char *key, BIGNUM **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;

    *out = NULL;
    if (!wp_hex(obj, key, &buf, &len)) {
        return false;
    }
    *out = BN_bin2bn(buf, (int)len, NULL);
    free(buf);
    return *out != NULL;
}

/*
 * wp_factor finds p from (n, e, d) (RFC 8017 / SP 800-56B C.2 style): with
 * d*e - 1 = 2^s * t, a random-enough base g gives a nontrivial square root of
 * 1 on the way from g^t to g^(2^s t), and gcd(root - 1, n) is a prime.
 * Public test keys only: nothing here is constant time.
 */
static inline bool wp_factor(const BIGNUM *n, const BIGNUM *e, const BIGNUM *d, BIGNUM *p,
                             BN_CTX *ctx)
{
    BIGNUM *t = BN_CTX_get(ctx);
    BIGNUM *g = BN_CTX_get(ctx);
    BIGNUM *y = BN_CTX_get(ctx);
    BIGNUM *x = BN_CTX_get(ctx);
    BIGNUM *n1 = BN_CTX_get(ctx);
    int s = 0;

    if (n1 == NULL || !BN_mul(t, d, e, ctx) || !BN_sub_word(t, 1) || BN_copy(n1, n) == NULL ||
        !BN_sub_word(n1, 1)) {
        return false;
    }
    while (!BN_is_zero(t) && !BN_is_odd(t)) {
        if (!BN_rshift1(t, t)) {
            return false;
        }
        s++;
    }
    for (unsigned long base = 2; base < 1000; base++) {
        if (!BN_set_word(g, base) || !BN_mod_exp(y, g, t, n, ctx)) {
            return false;
        }
        if (BN_is_one(y) || BN_cmp(y, n1) == 0) {
            continue;
        }
        for (int i = 0; i < s; i++) {
            if (!BN_mod_sqr(x, y, n, ctx)) {
                return false;
            }
            if (BN_is_one(x)) {
                return BN_sub_word(y, 1) && BN_gcd(p, y, n, ctx);
            }
            if (BN_cmp(x, n1) == 0) {
                break;
            }
            if (BN_copy(y, x) == NULL) {
                return false;
            }
        }
    }
    return false;
}

/*
 * wp_rsa_key_from_group reads the group's "privateKey" object: modulus,
 * publicExponent, privateExponent, and prime1, prime2, exponent1, exponent2,
 * coefficient when present; otherwise it factors n. Fills |k| (free with
 * wp_rsa_key_free). p = prime1, q = prime2, qinv = q^-1 mod p.
 */
static inline bool wp_rsa_key_from_group(const struct wp_json *group, struct wp_rsa_key *k)
{
    const struct wp_json *pk = wp_get(group, "privateKey");
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *n = NULL, *e = NULL, *d = NULL, *p = NULL, *q = NULL;
    BIGNUM *dp = NULL, *dq = NULL, *qinv = NULL, *rem = NULL, *pm1 = NULL;
    bool ok = false;

    memset(k, 0, sizeof(*k));
    if (ctx == NULL || pk == NULL || !wp_bn_hex(pk, "modulus", &n) ||
        !wp_bn_hex(pk, "publicExponent", &e) || !wp_bn_hex(pk, "privateExponent", &d)) {
        goto out;
    }
    if (wp_get(pk, "prime1") != NULL) {
        if (!wp_bn_hex(pk, "prime1", &p) || !wp_bn_hex(pk, "prime2", &q) ||
            !wp_bn_hex(pk, "exponent1", &dp) || !wp_bn_hex(pk, "exponent2", &dq) ||
            !wp_bn_hex(pk, "coefficient", &qinv)) {
            goto out;
        }
    } else {
        BN_CTX_start(ctx);
        p = BN_new();
        q = BN_new();
        dp = BN_new();
        dq = BN_new();
        qinv = BN_new();
        rem = BN_new();
        pm1 = BN_new();
        if (pm1 == NULL || !wp_factor(n, e, d, p, ctx) || !BN_div(q, rem, n, p, ctx) ||
            !BN_is_zero(rem) || BN_copy(pm1, p) == NULL || !BN_sub_word(pm1, 1) ||
            !BN_mod(dp, d, pm1, ctx) || BN_copy(pm1, q) == NULL || !BN_sub_word(pm1, 1) ||
            !BN_mod(dq, d, pm1, ctx) || BN_mod_inverse(qinv, q, p, ctx) == NULL) {
            BN_CTX_end(ctx);
            goto out;
        }
        BN_CTX_end(ctx);
        k->factored = true;
    }
    ok = wp_bn_out(n, &k->n, &k->n_len) && wp_bn_out(e, &k->e, &k->e_len) &&
         wp_bn_out(d, &k->d, &k->d_len) && wp_bn_out(p, &k->p, &k->p_len) &&
         wp_bn_out(q, &k->q, &k->q_len) && wp_bn_out(dp, &k->dp, &k->dp_len) &&
         wp_bn_out(dq, &k->dq, &k->dq_len) && wp_bn_out(qinv, &k->qinv, &k->qinv_len);
out:
    if (!ok) {
        wp_rsa_key_free(k);
    }
    BN_free(n);
    BN_free(e);
    BN_free(d);
    BN_free(p);
    BN_free(q);
    BN_free(dp);
    BN_free(dq);
    BN_free(qinv);
    BN_free(rem);
    BN_free(pm1);
    BN_CTX_free(ctx);
    return ok;
}

/* ---- verdicts and tallies --------------------------------------------------- */

enum wp_result {
    WP_INVALID_RESULT = 0,
    WP_VALID,
    WP_INVALID,
    WP_ACCEPTABLE,
};

static inline enum wp_result wp_result_of(const struct wp_json *test)
{
    const char *r = wp_str(test, "result");

    if (r == NULL) {
        return WP_INVALID_RESULT;
    }
    if (strcmp(r, "valid") == 0) {
        return WP_VALID;
    }
    if (strcmp(r, "invalid") == 0) {
        return WP_INVALID;
    }
    if (strcmp(r, "acceptable") == 0) {
        return WP_ACCEPTABLE;
    }
    return WP_INVALID_RESULT;
}

struct wp_tally {
    size_t passed;
    size_t acceptable;
    size_t acceptable_ok; /* acceptable vectors where the expected answer came */
    size_t failed;
    size_t skipped;
};

/*
 * wp_tally_add records one vector: |ok| is whether the implementation gave
 * the expected answer (exact output for valid, an error for invalid); for
 * acceptable vectors either answer counts as acceptable.
 */
static inline void wp_tally_add(struct wp_tally *t, enum wp_result expected, bool ok,
                                const char *file, double tc_id)
{
    if (expected == WP_ACCEPTABLE) {
        t->acceptable++;
        t->acceptable_ok += ok;
    } else if (ok && expected != WP_INVALID_RESULT) {
        t->passed++;
    } else {
        t->failed++;
        fprintf(stderr, "%s: tcId %.0f FAILED\n", file, tc_id);
    }
}

static inline void wp_tally_print(const char *file, const struct wp_tally *t)
{
    printf("%s: %zu passed, %zu acceptable, %zu failed", file, t->passed, t->acceptable, t->failed);
    if (t->acceptable > 0) {
        printf(" (%zu of the acceptable as expected for valid)", t->acceptable_ok);
    }
    if (t->skipped > 0) {
        printf(", %zu skipped", t->skipped);
    }
    printf("\n");
}

/* wp_hash_name_is: whether the Wycheproof hash name |name| equals |want|
 * ("SHA-1", "SHA-256", "SHA-512/224", ...). */
static inline bool wp_hash_name_is(const char *name, const char *want)
{
    return name != NULL && strcmp(name, want) == 0;
}

#endif
