/*
 * prov_coder.c: the module's decoder and encoders.
 *
 * The decoder reads one PEM block, as OpenSSL's own PEM decoder does, and
 * takes it only when its label is PROV_KEYREF_PEM_LABEL; any other block is
 * left to the other decoders (a file may hold a certificate before the key:
 * HAProxy's "ssl crt"). The body is a key reference (proto_keyref_decode,
 * bounded), whose public key must have the key id the reference states. So
 * PEM_read_bio_PrivateKey, OSSL_DECODER and OSSL_STORE users (nginx,
 * HAProxy, Apache, curl, openssl) get a splitkey key from the file that
 * stands where the private key file stood.
 *
 * The encoders write the public key as a SubjectPublicKeyInfo (DER or PEM):
 * with no export, they are how `openssl pkey -pubout`, CSRs and
 * certificates get the public key of one of our keys.
 */

#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "provider/internal.h"

static char g_rsa_name[] = "RSA";
/* What prov_decoder_pem_decode calls the body it passes on. */
static char g_structure_name[] = PROV_KEYREF_STRUCTURE;

/* ---- decoder ----------------------------------------------------------------- */

static void *prov_decoder_newctx(void *provctx)
{
    return provctx; /* nothing per call: the provider context is enough */
}

static void prov_decoder_freectx(void *vctx)
{
    (void)vctx;
}

static int prov_decoder_does_selection(void *provctx, int selection)
{
    (void)provctx;
    return selection == 0 || (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0;
}

struct prov_key *prov_key_from_ref(struct prov_ctx *prov, const struct proto_keyref *ref)
{
    const uint8_t *p = ref->spki;
    EVP_PKEY *pub = NULL;
    struct prov_key *key = NULL;
    uint8_t id[PROTO_KEY_ID_LEN];

    pub = d2i_PUBKEY_ex(NULL, &p, (long)ref->spki_len, prov->libctx, prov->md_propq);
    if (pub == NULL || p != ref->spki + ref->spki_len || !EVP_PKEY_is_a(pub, "RSA")) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_UNSUPPORTED,
                       "splitkey: the key reference's public key is not an RSA key");
        goto fail;
    }
    proto_key_id_from_spki(id, ref->spki, ref->spki_len);
    if (CRYPTO_memcmp(id, ref->key_id, sizeof(id)) != 0) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                       "splitkey: the key reference's key id is not its public key's");
        goto fail;
    }
    if ((key = prov_key_alloc(prov)) == NULL ||
        !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &key->n) ||
        !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &key->e) ||
        (key->spki = OPENSSL_memdup(ref->spki, ref->spki_len)) == NULL) {
        goto fail;
    }
    key->spki_len = ref->spki_len;
    memcpy(key->key_id, ref->key_id, sizeof(key->key_id));
    key->has_id = true;
    EVP_PKEY_free(pub);
    return key;
fail:
    prov_key_free(key);
    EVP_PKEY_free(pub);
    return NULL;
}

/*
 * prov_decoder_body turns the body of a key reference into a key and hands it
 * to |data_cb|. The block is ours: anything wrong is an error (0), not
 * someone else's data.
 */
static int prov_decoder_body(struct prov_ctx *prov, const uint8_t *body, size_t body_len,
                             OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    struct proto_keyref *ref = NULL;
    struct prov_key *key = NULL;
    int object_type = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[4];
    int r;
    int ok = 0;

    if ((ref = OPENSSL_zalloc(sizeof(*ref))) == NULL) {
        goto out;
    }
    if ((r = proto_keyref_decode(ref, body, body_len)) != 0) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                       "splitkey: malformed key reference (%s)", spk_strerror(r));
        goto out;
    }
    if ((key = prov_key_from_ref(prov, ref)) == NULL) {
        goto out;
    }
    if (prov->route != NULL && (r = prov->route(prov->keyop_arg, ref)) != 0) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_INTERNAL_ERROR, "splitkey: %s", spk_strerror(r));
        goto out;
    }
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, g_rsa_name, 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &key, sizeof(key));
    params[3] = OSSL_PARAM_construct_end();
    ok = data_cb(params, data_cbarg);
out:
    prov_key_free(key);
    OPENSSL_free(ref);
    return ok;
}

/*
 * prov_decoder_pem_decode takes the PEM off a key reference block and passes
 * its body on as "DER" with our structure name, which only
 * prov_decoder_body_decode takes. Both PEM_read_bio_PrivateKey's decoder
 * chain and OSSL_STORE's file loader (openssl pkey -in, req -key, ...) come
 * this way; the file loader only adds decoders whose output is DER.
 */
static int prov_decoder_pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                                   OSSL_CALLBACK *data_cb, void *data_cbarg,
                                   OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    struct prov_ctx *prov = vctx;
    OSSL_PARAM params[3];
    BIO *bio = NULL;
    char *name = NULL;
    char *header = NULL;
    unsigned char *data = NULL;
    long len = 0;
    int ok = 1; /* "empty-handed" unless the block is ours */

    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    if ((bio = BIO_new_from_core_bio(prov->libctx, cin)) == NULL) {
        return 0;
    }
    ERR_set_mark();
    if (!PEM_read_bio(bio, &name, &header, &data, &len)) {
        ERR_pop_to_mark();
        goto out;
    }
    ERR_pop_to_mark();
    if (strcmp(name, PROV_KEYREF_PEM_LABEL) != 0) {
        goto out;
    }
    if (header[0] != '\0' || len <= 0 || (size_t)len > PROTO_KEYREF_MAX) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                       "splitkey: malformed key reference (PEM headers, or no or too long a "
                       "body)");
        ok = 0;
        goto out;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, data, (size_t)len);
    params[1] =
        OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, g_structure_name, 0);
    params[2] = OSSL_PARAM_construct_end();
    ok = data_cb(params, data_cbarg);
out:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(bio);
    return ok;
}

/* prov_decoder_body_decode: the body of a key reference block into a key. */
static int prov_decoder_body_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                                    OSSL_CALLBACK *data_cb, void *data_cbarg,
                                    OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    struct prov_ctx *prov = vctx;
    BIO *bio = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int ok = 1;

    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    if ((bio = BIO_new_from_core_bio(prov->libctx, cin)) == NULL ||
        (buf = OPENSSL_malloc(PROTO_KEYREF_MAX + 1)) == NULL) {
        ok = 0;
        goto out;
    }
    while (len < PROTO_KEYREF_MAX + 1) {
        int n = BIO_read(bio, buf + len, (int)(PROTO_KEYREF_MAX + 1 - len));
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    ok = prov_decoder_body(prov, buf, len, data_cb, data_cbarg);
out:
    OPENSSL_free(buf);
    BIO_free(bio);
    return ok;
}

const OSSL_DISPATCH prov_decoder_body_fns[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))prov_decoder_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))prov_decoder_freectx},
    {OSSL_FUNC_DECODER_DOES_SELECTION, (void (*)(void))prov_decoder_does_selection},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))prov_decoder_body_decode},
    {0, NULL},
};

const OSSL_DISPATCH prov_decoder_fns[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))prov_decoder_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))prov_decoder_freectx},
    {OSSL_FUNC_DECODER_DOES_SELECTION, (void (*)(void))prov_decoder_does_selection},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))prov_decoder_pem_decode},
    {0, NULL},
};

/* ---- encoders ---------------------------------------------------------------- */

static int prov_encoder_does_selection(void *provctx, int selection)
{
    (void)provctx;
    /* Only the public key: there is no private half here to write. */
    return (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 &&
           (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0;
}

/* prov_encoder_spki: the key's SubjectPublicKeyInfo into *out (OPENSSL_free). */
static int prov_encoder_spki(const struct prov_key *key, uint8_t **out, size_t *out_len)
{
    EVP_PKEY *pub;
    unsigned char *der = NULL;
    int der_len;

    if (key->spki != NULL) {
        *out = OPENSSL_memdup(key->spki, key->spki_len);
        *out_len = key->spki_len;
        return *out != NULL;
    }
    if ((pub = prov_pkey_public(key)) == NULL) {
        return 0;
    }
    der_len = i2d_PUBKEY(pub, &der);
    EVP_PKEY_free(pub);
    if (der_len <= 0) {
        return 0;
    }
    *out = der;
    *out_len = (size_t)der_len;
    return 1;
}

static int prov_encoder_encode(void *vctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                               const OSSL_PARAM obj_abstract[], int selection, bool pem)
{
    struct prov_ctx *prov = vctx;
    const struct prov_key *key = obj_raw;
    uint8_t *der = NULL;
    size_t der_len = 0;
    BIO *bio = NULL;
    int ok = 0;

    if (key == NULL || obj_abstract != NULL || !prov_encoder_does_selection(prov, selection)) {
        ERR_raise(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT);
        return 0;
    }
    if (!prov_encoder_spki(key, &der, &der_len) ||
        (bio = BIO_new_from_core_bio(prov->libctx, cout)) == NULL) {
        goto out;
    }
    if (pem) {
        ok = PEM_write_bio(bio, PEM_STRING_PUBLIC, "", der, (long)der_len) > 0;
    } else {
        ok = BIO_write(bio, der, (int)der_len) == (int)der_len;
    }
out:
    BIO_free(bio);
    OPENSSL_free(der);
    return ok;
}

static int prov_encoder_encode_der(void *vctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                                   const OSSL_PARAM obj_abstract[], int selection,
                                   OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    (void)cb;
    (void)cbarg;
    return prov_encoder_encode(vctx, cout, obj_raw, obj_abstract, selection, false);
}

static int prov_encoder_encode_pem(void *vctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                                   const OSSL_PARAM obj_abstract[], int selection,
                                   OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    (void)cb;
    (void)cbarg;
    return prov_encoder_encode(vctx, cout, obj_raw, obj_abstract, selection, true);
}

const OSSL_DISPATCH prov_encoder_der_fns[] = {
    {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))prov_decoder_newctx},
    {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))prov_decoder_freectx},
    {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))prov_encoder_does_selection},
    {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))prov_encoder_encode_der},
    {0, NULL},
};

const OSSL_DISPATCH prov_encoder_pem_fns[] = {
    {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))prov_decoder_newctx},
    {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))prov_decoder_freectx},
    {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))prov_encoder_does_selection},
    {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))prov_encoder_encode_pem},
    {0, NULL},
};
