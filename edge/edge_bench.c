/*
 * edge_bench.c: the benchmark-only baseline of the edge. With
 * `edge run CONFIG --benchmark-local-keys KEY.pem...` the TLS process loads
 * whole RSA private keys and answers the provider's key operations with them
 * in-process (OpenSSL's default provider), instead of asking the combiner:
 * no combiner process, no shares, no holders. Everything else (the epoll
 * loop, SSL_MODE_ASYNC, the edge provider and its keys that hold only n and
 * e) stays as in a real run, so tools/bench-edge can tell what the split key
 * itself costs.
 *
 * WARNING: this defeats the whole point of splitkey (the TLS-facing process
 * holds the key). It exists for measurements only; the keys are named on the
 * command line only, never in a configuration file, so a deployed
 * configuration cannot turn it on.
 */

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "edge/internal.h"

#define EDGE_BENCH_KEYS_MAX EDGE_CERT_MAX

struct edge_bench_key {
    EVP_PKEY *pkey;
    uint8_t key_id[PROTO_KEY_ID_LEN];
};

static struct edge_bench_key g_bench[EDGE_BENCH_KEYS_MAX];
static size_t g_num_bench;

/* The properties every fetch here uses: the default provider, never ours. */
#define EDGE_BENCH_PROPQ "provider=default"

int edge_bench_keys_load(const char *const *paths, size_t num_paths, char *why, size_t why_len)
{
    size_t i;
    int r = SPK_ERR_INTERNAL;

    if (num_paths == 0 || num_paths > EDGE_BENCH_KEYS_MAX - g_num_bench) {
        snprintf(why, why_len, "--benchmark-local-keys takes 1 to %d key files",
                 EDGE_BENCH_KEYS_MAX);
        return SPK_ERR_INVALID_ARG;
    }
    for (i = 0; i < num_paths; i++) {
        struct edge_bench_key *k = &g_bench[g_num_bench];
        BIO *bio = BIO_new_file(paths[i], "r");
        if (bio == NULL) {
            snprintf(why, why_len, "%s: cannot open", paths[i]);
            r = SPK_ERR_IO;
            goto out;
        }
        k->pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, NULL, NULL, NULL, EDGE_BENCH_PROPQ);
        BIO_free(bio);
        if (k->pkey == NULL || !EVP_PKEY_is_a(k->pkey, "RSA")) {
            snprintf(why, why_len, "%s: not an unencrypted PEM RSA private key", paths[i]);
            EVP_PKEY_free(k->pkey);
            k->pkey = NULL;
            r = SPK_ERR_KEY_UNSUPPORTED;
            goto out;
        }
        if ((r = proto_key_id(k->key_id, k->pkey)) != 0) {
            snprintf(why, why_len, "%s: cannot compute its key id", paths[i]);
            EVP_PKEY_free(k->pkey);
            k->pkey = NULL;
            goto out;
        }
        g_num_bench++;
    }
    r = 0;
out:
    return r;
}

void edge_bench_keys_free(void)
{
    size_t i;

    for (i = 0; i < g_num_bench; i++) {
        EVP_PKEY_free(g_bench[i].pkey);
        g_bench[i].pkey = NULL;
    }
    g_num_bench = 0;
}

bool edge_bench_active(void)
{
    return g_num_bench > 0;
}

static EVP_PKEY *edge_bench_find(const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    size_t i;

    for (i = 0; i < g_num_bench; i++) {
        if (CRYPTO_memcmp(g_bench[i].key_id, key_id, PROTO_KEY_ID_LEN) == 0) {
            return g_bench[i].pkey;
        }
    }
    return NULL;
}

/* edge_bench_sign_params: padding and digest of a signing |op|. */
static int edge_bench_sign_params(uint8_t op, int *out_pad, const char **out_md)
{
    const struct proto_op_info *info = proto_op_info(op);

    if (!proto_op_is_sign(info)) {
        return SPK_ERR_UNSUPPORTED;
    }
    *out_pad = info->kind == PROTO_OP_KIND_SIGN_PSS ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
    *out_md = info->md;
    return 0;
}

int edge_bench_keyop(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                     const uint8_t *in, size_t in_len, uint16_t client_version, uint8_t *out,
                     size_t out_cap, size_t *out_len)
{
    EVP_PKEY *pkey = edge_bench_find(key_id);
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD *md = NULL;
    const char *md_name = NULL;
    size_t len = out_cap;
    int pad = 0;
    int r = SPK_ERR_INTERNAL;

    (void)arg;
    *out_len = 0;
    if (pkey == NULL) {
        return SPK_ERR_UNKNOWN_KEY;
    }
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, EDGE_BENCH_PROPQ);
    if (pctx == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    if (op == PROTO_OP_DECRYPT_TLS_PREMASTER) {
        /* The default provider's TLS padding: a random premaster on any
         * error, chosen in constant time (what the combiner does too). */
        unsigned int ver = client_version;
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, &ver);
        params[1] = OSSL_PARAM_construct_end();
        r = SPK_ERR_CRYPTO;
        if (EVP_PKEY_decrypt_init(pctx) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_WITH_TLS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_params(pctx, params) != 1 ||
            EVP_PKEY_decrypt(pctx, out, &len, in, in_len) != 1) {
            goto out;
        }
    } else {
        if ((r = edge_bench_sign_params(op, &pad, &md_name)) != 0) {
            goto out;
        }
        r = SPK_ERR_CRYPTO;
        md = EVP_MD_fetch(NULL, md_name, EDGE_BENCH_PROPQ);
        if (md == NULL || EVP_PKEY_sign_init(pctx) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(pctx, pad) != 1 ||
            EVP_PKEY_CTX_set_signature_md(pctx, md) != 1) {
            goto out;
        }
        if (pad == RSA_PKCS1_PSS_PADDING &&
            (EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
            goto out;
        }
        if (EVP_PKEY_sign(pctx, out, &len, in, in_len) != 1) {
            goto out;
        }
    }
    *out_len = len;
    r = 0;
out:
    EVP_MD_free(md);
    EVP_PKEY_CTX_free(pctx);
    return r;
}
