/*
 * prov_store.c: the module's OSSL_STORE loader for "splitkey:" URIs, so a
 * program or command that takes a URI where it takes a key (openssl pkey
 * -in, pkeyutl -inkey, storeutl, OSSL_STORE_open) names a key reference as
 * splitkey:/etc/splitkey/www.splitkey.pem (PROTOCOL.md section 9).
 *
 * The URI names a local file: splitkey:PATH or splitkey:///PATH (an empty
 * host), PATH taken literally. The loader reads the file (bounded), finds
 * its SPLITKEY KEY REFERENCE block among any others (a certificate may come
 * first, as HAProxy keeps them) and passes the block's body on by value,
 * with the structure name only prov_coder.c's body decoder takes: the key is
 * made, checked and routed exactly as for a file read by OpenSSL's own
 * loaders, and the loader's errors name the file.
 */

#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/store.h>

#include "provider/internal.h"

#define PROV_STORE_SCHEME "splitkey:"

struct prov_store {
    struct prov_ctx *prov;
    char path[PROV_STORE_PATH_MAX + 1];
    bool done;
};

static char g_rsa_name[] = "RSA";
static char g_structure_name[] = PROV_KEYREF_STRUCTURE;

int prov_store_uri_path(char *out, size_t out_cap, const char *uri, size_t uri_len)
{
    const size_t scheme_len = sizeof(PROV_STORE_SCHEME) - 1;
    const char *path;
    size_t path_len;

    if (out_cap == 0) {
        return SPK_ERR_INVALID_ARG;
    }
    out[0] = '\0';
    if (uri_len < scheme_len || OPENSSL_strncasecmp(uri, PROV_STORE_SCHEME, scheme_len) != 0) {
        return SPK_ERR_MALFORMED;
    }
    path = uri + scheme_len;
    path_len = uri_len - scheme_len;
    /* "//" starts an authority: only the empty one (splitkey:///PATH). */
    if (path_len >= 2 && path[0] == '/' && path[1] == '/') {
        if (path_len < 3 || path[2] != '/') {
            return SPK_ERR_MALFORMED;
        }
        path += 2;
        path_len -= 2;
    }
    if (path_len == 0 || path_len > PROV_STORE_PATH_MAX || path_len >= out_cap) {
        return SPK_ERR_MALFORMED;
    }
    for (size_t i = 0; i < path_len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f) {
            return SPK_ERR_MALFORMED;
        }
    }
    memcpy(out, path, path_len);
    out[path_len] = '\0';
    return 0;
}

static void *prov_store_open(void *provctx, const char *uri)
{
    struct prov_store *st;

    if ((st = OPENSSL_zalloc(sizeof(*st))) == NULL) {
        return NULL;
    }
    if (uri == NULL || prov_store_uri_path(st->path, sizeof(st->path), uri, strlen(uri)) != 0) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                       "splitkey: a key reference URI is splitkey:PATH or splitkey:///PATH "
                       "(a local file, no host, no control characters, at most %d bytes)",
                       PROV_STORE_PATH_MAX);
        OPENSSL_free(st);
        return NULL;
    }
    st->prov = provctx;
    return st;
}

/* prov_store_set_ctx_params: what the application expects (a key, a
 * certificate ...) changes nothing here: the file holds one key. */
static int prov_store_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    (void)vctx;
    (void)params;
    return 1;
}

static const OSSL_PARAM *prov_store_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM settable[] = {OSSL_PARAM_END};

    (void)provctx;
    return settable;
}

/* prov_store_block: the body of |bio|'s SPLITKEY KEY REFERENCE block into
 * *out (OPENSSL_free), skipping other blocks. 1, or 0 with an error raised. */
static int prov_store_block(struct prov_store *st, BIO *bio, uint8_t **out, long *out_len)
{
    char *name = NULL;
    char *header = NULL;
    unsigned char *data = NULL;
    long len = 0;

    for (;;) {
        ERR_set_mark();
        if (!PEM_read_bio(bio, &name, &header, &data, &len)) {
            ERR_pop_to_mark();
            ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                           "splitkey: %s holds no well-formed " PROV_KEYREF_PEM_LABEL " block",
                           st->path);
            return 0;
        }
        ERR_pop_to_mark();
        if (strcmp(name, PROV_KEYREF_PEM_LABEL) == 0) {
            break;
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
    }
    OPENSSL_free(name);
    if (header[0] != '\0' || len <= 0 || (size_t)len > PROTO_KEYREF_MAX) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                       "splitkey: malformed key reference in %s (PEM headers, or no or too long "
                       "a body)",
                       st->path);
        OPENSSL_free(header);
        OPENSSL_free(data);
        return 0;
    }
    OPENSSL_free(header);
    *out = data;
    *out_len = len;
    return 1;
}

static int prov_store_load(void *vctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
                           OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    struct prov_store *st = vctx;
    int object_type = OSSL_OBJECT_PKEY;
    struct proto_keyref *ref = NULL;
    struct prov_key *key = NULL;
    OSSL_PARAM params[5];
    uint8_t *text = NULL;
    size_t text_len = 0;
    uint8_t *body = NULL;
    long body_len = 0;
    BIO *bio = NULL;
    int ok = 0;
    int r;

    (void)pw_cb;
    (void)pw_cbarg;
    if (st->done) {
        return 0;
    }
    st->done = true;
    if ((r = spk_file_read(st->path, PROTO_FILE_MAX, &text, &text_len)) != 0) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_SYS_LIB, "splitkey: cannot read %s (%s)", st->path,
                       r == SPK_ERR_MALFORMED ? "larger than any key reference file"
                                              : "missing, or not readable by this user");
        goto out;
    }
    if ((bio = BIO_new_mem_buf(text, (int)text_len)) == NULL ||
        !prov_store_block(st, bio, &body, &body_len)) {
        goto out;
    }
    /* Checked here to name the file: the decoder's own refusal would be
     * lost among the other object types OSSL_STORE tries. */
    if ((ref = OPENSSL_zalloc(sizeof(*ref))) == NULL) {
        goto out;
    }
    if ((r = proto_keyref_decode(ref, body, (size_t)body_len)) != 0) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                       "splitkey: malformed key reference in %s (%s)", st->path, spk_strerror(r));
        goto out;
    }
    if ((key = prov_key_from_ref(st->prov, ref)) == NULL) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                       "splitkey: refused the key reference in %s", st->path);
        goto out;
    }
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, g_rsa_name, 0);
    params[2] =
        OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, g_structure_name, 0);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, body, (size_t)body_len);
    params[4] = OSSL_PARAM_construct_end();
    ok = object_cb(params, object_cbarg);
out:
    prov_key_free(key);
    OPENSSL_free(ref);
    OPENSSL_free(body);
    BIO_free(bio);
    spk_file_free(text, text_len);
    return ok;
}

static int prov_store_eof(void *vctx)
{
    const struct prov_store *st = vctx;

    return st->done;
}

static int prov_store_close(void *vctx)
{
    OPENSSL_free(vctx);
    return 1;
}

const OSSL_DISPATCH prov_store_fns[] = {
    {OSSL_FUNC_STORE_OPEN, (void (*)(void))prov_store_open},
    {OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (void (*)(void))prov_store_settable_ctx_params},
    {OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))prov_store_set_ctx_params},
    {OSSL_FUNC_STORE_LOAD, (void (*)(void))prov_store_load},
    {OSSL_FUNC_STORE_EOF, (void (*)(void))prov_store_eof},
    {OSSL_FUNC_STORE_CLOSE, (void (*)(void))prov_store_close},
    {0, NULL},
};
