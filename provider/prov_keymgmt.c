/*
 * prov_keymgmt.c: the key management of splitkey's RSA keys. A key holds
 * the public key (n, e), the key id and, when it came from a key reference,
 * its SubjectPublicKeyInfo; the private half is the combiner's. Imports of
 * private components are ignored and there is no export: OpenSSL would copy
 * n and e into another provider and try to sign there.
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>

#include "provider/internal.h"

struct prov_key *prov_key_alloc(struct prov_ctx *prov)
{
    struct prov_key *key = OPENSSL_zalloc(sizeof(*key));

    if (key != NULL) {
        key->prov = prov;
        atomic_init(&key->refs, 1);
    }
    return key;
}

struct prov_key *prov_key_up_ref(struct prov_key *key)
{
    atomic_fetch_add(&key->refs, 1);
    return key;
}

void prov_key_free(struct prov_key *key)
{
    if (key == NULL || atomic_fetch_sub(&key->refs, 1) != 1) {
        return;
    }
    BN_free(key->n);
    BN_free(key->e);
    OPENSSL_free(key->spki);
    OPENSSL_free(key);
}

static void *prov_km_new(void *provctx)
{
    return prov_key_alloc(provctx);
}

static void prov_km_free(void *keydata)
{
    prov_key_free(keydata);
}

/*
 * prov_km_load takes the key the decoder made (prov_coder.c): the reference
 * is a struct prov_key pointer that stays the decoder's, so the key gets a
 * reference of its own.
 */
static void *prov_km_load(const void *reference, size_t reference_sz)
{
    struct prov_key *key = NULL;

    if (reference == NULL || reference_sz != sizeof(key)) {
        return NULL;
    }
    memcpy(&key, reference, sizeof(key));
    return key == NULL ? NULL : prov_key_up_ref(key);
}

static int prov_km_has(const void *keydata, int selection)
{
    const struct prov_key *key = keydata;

    if (key == NULL) {
        return 0;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 && (key->n == NULL || key->e == NULL)) {
        return 0;
    }
    /* The private half is the combiner's: a key with an id can use it. */
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && !key->has_id) {
        return 0;
    }
    return 1;
}

static int prov_km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    struct prov_key *key = keydata;
    const OSSL_PARAM *p;
    BIGNUM *n = NULL;
    BIGNUM *e = NULL;
    size_t id_len = 0;

    if (key == NULL || (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0) {
        return 0;
    }
    /* Private components (d, factors), if a caller offers them, are never read. */
    p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_N);
    if (p == NULL || !OSSL_PARAM_get_BN(p, &n)) {
        goto fail;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_E);
    if (p == NULL || !OSSL_PARAM_get_BN(p, &e)) {
        goto fail;
    }
    p = OSSL_PARAM_locate_const(params, PROV_PARAM_KEY_ID);
    if (p != NULL) {
        void *idp = key->key_id;
        if (!OSSL_PARAM_get_octet_string(p, &idp, sizeof(key->key_id), &id_len) ||
            id_len != sizeof(key->key_id)) {
            goto fail;
        }
        key->has_id = true;
    }
    BN_free(key->n);
    BN_free(key->e);
    key->n = n;
    key->e = e;
    return 1;
fail:
    BN_free(n);
    BN_free(e);
    return 0;
}

static const OSSL_PARAM prov_km_import_list[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_octet_string(PROV_PARAM_KEY_ID, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *prov_km_import_types(int selection)
{
    (void)selection;
    return prov_km_import_list;
}

static int prov_security_bits(int bits)
{
    /* NIST SP 800-57 part 1, as OpenSSL rounds it for RSA. */
    if (bits >= 15360) {
        return 256;
    }
    if (bits >= 7680) {
        return 192;
    }
    if (bits >= 3072) {
        return 128;
    }
    if (bits >= 2048) {
        return 112;
    }
    return 80;
}

static int prov_km_get_params(void *keydata, OSSL_PARAM params[])
{
    const struct prov_key *key = keydata;
    OSSL_PARAM *p;
    int bits;

    if (key == NULL || key->n == NULL) {
        return 0;
    }
    bits = BN_num_bits(key->n);
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS);
    if (p != NULL && !OSSL_PARAM_set_int(p, bits)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS);
    if (p != NULL && !OSSL_PARAM_set_int(p, prov_security_bits(bits))) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE);
    if (p != NULL && !OSSL_PARAM_set_int(p, BN_num_bytes(key->n))) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST);
    if (p != NULL && !OSSL_PARAM_set_utf8_string(p, "SHA256")) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_RSA_N);
    if (p != NULL && !OSSL_PARAM_set_BN(p, key->n)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_RSA_E);
    if (p != NULL && !OSSL_PARAM_set_BN(p, key->e)) {
        return 0;
    }
    return 1;
}

static const OSSL_PARAM prov_km_gettable_list[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *prov_km_gettable_params(void *provctx)
{
    (void)provctx;
    return prov_km_gettable_list;
}

static int prov_km_match(const void *a, const void *b, int selection)
{
    const struct prov_key *ka = a;
    const struct prov_key *kb = b;

    (void)selection;
    if (ka->n == NULL || kb->n == NULL || ka->e == NULL || kb->e == NULL) {
        return 0;
    }
    return BN_cmp(ka->n, kb->n) == 0 && BN_cmp(ka->e, kb->e) == 0;
}

static void *prov_km_dup(const void *keydata, int selection)
{
    const struct prov_key *src = keydata;
    struct prov_key *key = prov_km_new(src->prov);

    (void)selection;
    if (key == NULL) {
        return NULL;
    }
    if (src->n != NULL && (key->n = BN_dup(src->n)) == NULL) {
        goto fail;
    }
    if (src->e != NULL && (key->e = BN_dup(src->e)) == NULL) {
        goto fail;
    }
    if (src->spki != NULL) {
        if ((key->spki = OPENSSL_memdup(src->spki, src->spki_len)) == NULL) {
            goto fail;
        }
        key->spki_len = src->spki_len;
    }
    memcpy(key->key_id, src->key_id, sizeof(key->key_id));
    key->has_id = src->has_id;
    return key;
fail:
    prov_km_free(key);
    return NULL;
}

const OSSL_DISPATCH prov_keymgmt_fns[] = {
    {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))prov_km_load},
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))prov_km_new},
    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))prov_km_free},
    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))prov_km_has},
    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))prov_km_import},
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))prov_km_import_types},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))prov_km_get_params},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))prov_km_gettable_params},
    {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))prov_km_match},
    {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))prov_km_dup},
    {0, NULL},
};
