/*
 * edge_tls.c: the TLS settings of a certificate's SSL_CTX: versions, cipher
 * lists, groups, session lifetime (defaults: Mozilla's "intermediate"
 * profile, edge_config_init), and OCSP stapling from a response file the
 * operator refreshes.
 */

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>

#include "edge/internal.h"

void edge_tls12_cipher_list(char *out, size_t out_cap, const struct edge_config *cfg, bool rsa_kx)
{
    /* "!kRSA" cuts the suites, "kRSA+AESGCM" after the list adds them behind
     * the (EC)DHE ones, which keep the server's preference. */
    snprintf(out, out_cap, "%s:%s", cfg->tls12_ciphers, rsa_kx ? "kRSA+AESGCM" : "!kRSA");
}

int edge_tls_ctx_setup(SSL_CTX *ctx, const struct edge_config *cfg, bool rsa_kx, char *why,
                       size_t why_len)
{
    int min = strcmp(cfg->tls_min, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
    int max = strcmp(cfg->tls_max, "1.2") == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
    char groups[sizeof(cfg->tls_groups)];
    char ciphers[EDGE_TLS12_LIST_MAX];

    if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, max) != 1) {
        snprintf(why, why_len, "tls-min/tls-max refused by OpenSSL");
        return SPK_ERR_CRYPTO;
    }
    /* Server order with ChaCha20 first for clients that put it first (no
     * AES instructions): the client's choice where it matters, ours else. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_PRIORITIZE_CHACHA | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    /* Read what the socket has, not a record header and then its body: a
     * client's Finished, its request and its close_notify each took two
     * reads. The loop waits on the socket only after OpenSSL asked for more
     * (SSL_ERROR_WANT_READ), so nothing it has buffered is left waiting. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* RSA key exchange has no forward secrecy and lets any client have the
     * combiner decrypt ciphertexts of its choosing (a decryption oracle): only
     * tls12-rsa-key-exchange turns it on, whatever tls12-ciphers lists, and
     * never for a threshold-mode key (|rsa_kx| false), which only signs. */
    if (SSL_CTX_set_cipher_list(ctx, cfg->tls12_ciphers) != 1) {
        snprintf(why, why_len, "tls12-ciphers '%.200s': OpenSSL knows none of these",
                 cfg->tls12_ciphers);
        return SPK_ERR_INVALID_ARG;
    }
    edge_tls12_cipher_list(ciphers, sizeof(ciphers), cfg, rsa_kx);
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(
            why, why_len, "tls12-ciphers '%.200s': only RSA key exchange, %s", cfg->tls12_ciphers,
            cfg->tls12_rsa_key_exchange ? "which a threshold-mode key never serves (it only signs)"
                                        : "and tls12-rsa-key-exchange is no");
        return SPK_ERR_INVALID_ARG;
    }
    if (SSL_CTX_set_ciphersuites(ctx, cfg->tls13_ciphersuites) != 1) {
        snprintf(why, why_len, "tls13-ciphersuites '%.200s' refused by OpenSSL",
                 cfg->tls13_ciphersuites);
        return SPK_ERR_INVALID_ARG;
    }
    /* The macro casts its argument to char *: give it a copy it may take. */
    memcpy(groups, cfg->tls_groups, sizeof(groups));
    if (SSL_CTX_set1_groups_list(ctx, groups) != 1) {
        snprintf(why, why_len, "tls-groups '%.200s' refused by OpenSSL", cfg->tls_groups);
        return SPK_ERR_INVALID_ARG;
    }
    /* DHE suites (if listed) take ffdhe groups sized to the key, as
     * Mozilla's profile asks. */
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_timeout(ctx, (long)cfg->ticket_lifetime_s);
    ERR_clear_error();
    return 0;
}

/* ---- OCSP stapling ------------------------------------------------------------ */

void edge_ocsp_cleanup(struct edge_ocsp *o)
{
    OPENSSL_free(o->der);
    o->der = NULL;
    o->len = 0;
}

int edge_ocsp_load(struct edge_ocsp *o, const char *path, X509 *leaf, SSL_CTX *ctx, char *why,
                   size_t why_len)
{
    STACK_OF(X509) *chain = NULL;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *basic = NULL;
    OCSP_CERTID *id = NULL;
    ASN1_GENERALIZEDTIME *this_upd = NULL, *next_upd = NULL;
    const unsigned char *p;
    uint8_t *buf = NULL;
    size_t len = 0;
    int status = -1, reason = -1;
    int r;

    memset(o, 0, sizeof(*o));
    if ((r = spk_file_read(path, PROTO_FILE_MAX, &buf, &len)) != 0) {
        snprintf(why, why_len, "ocsp-response %s: %s", path, spk_strerror(r));
        return r;
    }
    r = SPK_ERR_MALFORMED;
    p = buf;
    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (resp == NULL || p != buf + len) {
        snprintf(why, why_len, "ocsp-response %s: not a DER OCSP response", path);
        goto out;
    }
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
        (basic = OCSP_response_get1_basic(resp)) == NULL) {
        snprintf(why, why_len, "ocsp-response %s: the responder did not answer (status %d)", path,
                 OCSP_response_status(resp));
        goto out;
    }
    /* The issuer is the chain's first certificate after the leaf. */
    if (SSL_CTX_get0_chain_certs(ctx, &chain) != 1 || chain == NULL || sk_X509_num(chain) < 1) {
        snprintf(why, why_len,
                 "ocsp-response %s: the certificate's chain file has no issuer certificate "
                 "to match the response against",
                 path);
        goto out;
    }
    id = OCSP_cert_to_id(NULL, leaf, sk_X509_value(chain, 0));
    if (id == NULL ||
        OCSP_resp_find_status(basic, id, &status, &reason, NULL, &this_upd, &next_upd) != 1) {
        snprintf(why, why_len, "ocsp-response %s: not a response for this certificate", path);
        goto out;
    }
    r = 0;
    if (OCSP_check_validity(this_upd, next_upd, 300, -1) != 1) {
        /* Out of date: stapling it would make strict clients fail. The
         * operator refreshes the file; until then nothing is stapled. */
        spk_log("edge", "ocsp-response %s has expired (or is not valid yet): not stapled", path);
        goto out;
    }
    o->der = OPENSSL_memdup(buf, len);
    if (o->der == NULL) {
        snprintf(why, why_len, "ocsp-response %s: no memory", path);
        r = SPK_ERR_NOMEM;
        goto out;
    }
    o->len = len;
out:
    ERR_clear_error();
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    spk_file_free(buf, len);
    return r;
}

/* edge_ocsp_cb: OpenSSL asks, for a client that sent status_request, what
 * to staple; it frees the copy it is given. */
static int edge_ocsp_cb(SSL *ssl, void *arg)
{
    const struct edge_ocsp *o = arg;
    uint8_t *copy;

    if (o == NULL || o->len == 0) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    copy = OPENSSL_memdup(o->der, o->len);
    if (copy == NULL) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)o->len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

int edge_ocsp_install(SSL_CTX *ctx, const struct edge_ocsp *o)
{
    if (SSL_CTX_set_tlsext_status_cb(ctx, edge_ocsp_cb) != 1 ||
        SSL_CTX_set_tlsext_status_arg(ctx, (void *)(uintptr_t)o) != 1) {
        return SPK_ERR_CRYPTO;
    }
    return 0;
}
