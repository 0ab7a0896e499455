#include <string.h>

#include "base/base.h"
#include "proto/proto.h"

/*
 * Key reference (PROTOCOL.md, "Key reference"): the body of a PEM block
 * labelled "SPLITKEY KEY REFERENCE".
 *
 *   splitkey-key-reference 1
 *   key-id HEX                   SHA-256 of the DER SubjectPublicKeyInfo
 *   public-key BASE64            that SubjectPublicKeyInfo
 *   combiner ENDPOINT            unix://PATH, ipc://PATH or tcp://HOST:PORT
 *   combiner-public Z85          tcp:// only: the combiner's CURVE key
 *   client-key PATH              tcp:// only: our CURVE key file
 *                                (a splitkey-holder-key file)
 */

#define KEYREF_MAGIC "splitkey-key-reference"
#define KEYREF_VERSION 1

bool proto_endpoint_valid(const char *s)
{
    size_t len = strnlen(s, PROTO_ENDPOINT_MAX + 1);
    size_t scheme_len;
    size_t i;

    if (strncmp(s, "ipc://", 6) == 0 || strncmp(s, "tcp://", 6) == 0) {
        scheme_len = 6;
    } else if (spk_endpoint_is_unix(s)) {
        scheme_len = SPK_UNIX_SCHEME_LEN;
    } else {
        return false;
    }
    if (len > PROTO_ENDPOINT_MAX || len <= scheme_len) {
        return false;
    }
    for (i = scheme_len; i < len; i++) {
        if (s[i] <= ' ' || s[i] > '~') {
            return false;
        }
    }
    return true;
}

/* rd_text copies a field's value (|lo|..'~' characters) into |out| with a NUL. */
static bool rd_text(struct proto_rd *rd, const char *key, char lo, char *out, size_t cap)
{
    struct proto_rd v;
    size_t n;
    size_t i;

    if (!proto_text_field(rd, key, &v)) {
        return false;
    }
    n = proto_rd_len(&v);
    if (n == 0 || n >= cap || !proto_rd_copy(&v, (uint8_t *)out, n)) {
        return false;
    }
    out[n] = '\0';
    for (i = 0; i < n; i++) {
        if (out[i] < lo || out[i] > '~') {
            return false;
        }
    }
    return true;
}

int proto_keyref_decode(struct proto_keyref *out, const uint8_t *in, size_t in_len)
{
    struct proto_rd rd, v;
    int r = SPK_ERR_MALFORMED;

    memset(out, 0, sizeof(*out));
    if ((r = proto_text_open(&rd, in, in_len, PROTO_KEYREF_MAX, KEYREF_MAGIC, KEYREF_VERSION)) !=
        0) {
        goto out;
    }
    r = SPK_ERR_MALFORMED;
    if (!proto_text_field(&rd, "key-id", &v) ||
        !proto_hex_decode(&v, out->key_id, sizeof(out->key_id))) {
        goto out;
    }
    if (!proto_text_field(&rd, "public-key", &v) ||
        !proto_base64_decode(&v, out->spki, sizeof(out->spki), &out->spki_len) ||
        out->spki_len == 0) {
        goto out;
    }
    if (!rd_text(&rd, "combiner", '!', out->endpoint, sizeof(out->endpoint)) ||
        !proto_endpoint_valid(out->endpoint)) {
        goto out;
    }
    /* tcp:// needs CURVE (the combiner's door refuses anything else); unix://
     * and ipc:// are checked by the peer's uid and take none. */
    if (strncmp(out->endpoint, "tcp://", 6) == 0) {
        if (!proto_text_field(&rd, "combiner-public", &v) ||
            !proto_z85_decode_key(&v, out->combiner_pk) ||
            !rd_text(&rd, "client-key", '!', out->client_key, sizeof(out->client_key))) {
            goto out;
        }
        out->has_curve = true;
    }
    if (proto_rd_len(&rd) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        memset(out, 0, sizeof(*out));
    }
    return r;
}

int proto_keyref_encode(uint8_t *out, size_t cap, size_t *out_len, const struct proto_keyref *ref)
{
    struct proto_wr wr;
    size_t path_len = strnlen(ref->client_key, sizeof(ref->client_key));
    size_t i;

    *out_len = 0;
    if (!proto_endpoint_valid(ref->endpoint) || ref->spki_len == 0 ||
        ref->spki_len > sizeof(ref->spki)) {
        return SPK_ERR_INVALID_ARG;
    }
    if (ref->has_curve != (strncmp(ref->endpoint, "tcp://", 6) == 0)) {
        return SPK_ERR_INVALID_ARG;
    }
    if (ref->has_curve) {
        if (path_len == 0 || path_len >= sizeof(ref->client_key)) {
            return SPK_ERR_INVALID_ARG;
        }
        for (i = 0; i < path_len; i++) {
            if (ref->client_key[i] <= ' ' || ref->client_key[i] > '~') {
                return SPK_ERR_INVALID_ARG;
            }
        }
    }
    proto_wr_init(&wr, out, cap);
    if (!proto_wr_str(&wr, KEYREF_MAGIC) || !proto_wr_u8(&wr, ' ') ||
        !proto_wr_dec(&wr, KEYREF_VERSION) || !proto_wr_u8(&wr, '\n') ||
        !proto_wr_field_key(&wr, "key-id") ||
        !proto_wr_hex(&wr, ref->key_id, sizeof(ref->key_id)) || !proto_wr_u8(&wr, '\n') ||
        !proto_wr_field_key(&wr, "public-key") || !proto_wr_base64(&wr, ref->spki, ref->spki_len) ||
        !proto_wr_u8(&wr, '\n') || !proto_wr_field_key(&wr, "combiner") ||
        !proto_wr_str(&wr, ref->endpoint) || !proto_wr_u8(&wr, '\n')) {
        return SPK_ERR_NOMEM;
    }
    if (ref->has_curve &&
        (!proto_wr_field_key(&wr, "combiner-public") || !proto_wr_z85_key(&wr, ref->combiner_pk) ||
         !proto_wr_u8(&wr, '\n') || !proto_wr_field_key(&wr, "client-key") ||
         !proto_wr_str(&wr, ref->client_key) || !proto_wr_u8(&wr, '\n'))) {
        return SPK_ERR_NOMEM;
    }
    if (wr.len > PROTO_KEYREF_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    *out_len = wr.len;
    return 0;
}
