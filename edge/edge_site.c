/*
 * edge_site.c: the sites of one configuration: each certificate with its
 * provider key, the names it serves, its upstream, ALPN and OCSP, and the
 * ClientHello, servername and ALPN callbacks that pick a site for a
 * connection by the name the client asks for.
 */

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "edge/internal.h"
#include "split/split.h"

int edge_resolve(struct sockaddr_storage *out, socklen_t *out_len, const char *hostport,
                 bool passive)
{
    char host[EDGE_HOSTPORT_MAX];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints, *res = NULL;
    size_t hlen;
    int rc;

    if (colon == NULL || (hlen = (size_t)(colon - hostport)) >= sizeof(host)) {
        return SPK_ERR_INVALID_ARG;
    }
    memcpy(host, hostport, hlen);
    host[hlen] = '\0';
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(*out)) {
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return SPK_ERR_INVALID_ARG;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void edge_site_add_name(struct edge_site *s, const char *name, size_t len)
{
    if (s->num_names == EDGE_NAMES_MAX || len == 0 || len >= sizeof(s->names[0])) {
        return;
    }
    memcpy(s->names[s->num_names], name, len);
    s->names[s->num_names][len] = '\0';
    s->num_names++;
}

static void edge_site_names(struct edge_site *s, X509 *leaf)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    int i;

    for (i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type == GEN_DNS) {
            edge_site_add_name(s, (const char *)ASN1_STRING_get0_data(gn->d.dNSName),
                               (size_t)ASN1_STRING_length(gn->d.dNSName));
        }
    }
    GENERAL_NAMES_free(sans);
    if (s->num_names == 0) {
        char cn[256];
        int len =
            X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn));
        if (len > 0) {
            edge_site_add_name(s, cn, (size_t)len);
        }
    }
}

/* edge_name_match: |pattern| is a DNS name or "*.rest" matching one label. */
static bool edge_name_match(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

static struct edge_site *edge_site_find(struct edge_sites *S, const char *name)
{
    size_t i, j;

    /* Exact names first, then wildcards. */
    for (i = 0; i < S->num; i++) {
        for (j = 0; j < S->v[i].num_names; j++) {
            if (S->v[i].names[j][0] != '*' && strcasecmp(S->v[i].names[j], name) == 0) {
                return &S->v[i];
            }
        }
    }
    for (i = 0; i < S->num; i++) {
        for (j = 0; j < S->v[i].num_names; j++) {
            if (edge_name_match(S->v[i].names[j], name)) {
                return &S->v[i];
            }
        }
    }
    return NULL;
}

/*
 * edge_client_hello_cb picks the certificate (and upstream) for the name the
 * client asks for, before OpenSSL looks for a session to resume, and binds
 * the connection's sessions to that name (edge_sni.c). Runs again for the
 * second ClientHello after a HelloRetryRequest.
 */
static int edge_client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    struct edge_conn *conn = SSL_get_app_data(ssl);
    const unsigned char *ext = NULL;
    size_t ext_len = 0;
    char name[EDGE_SNI_NAME_MAX + 1] = "";
    struct edge_site *site = NULL;

    (void)arg;
    if (conn == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &ext_len) == 1 &&
        edge_sni_parse(name, ext, ext_len) != 0) {
        *alert = SSL_AD_DECODE_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (name[0] != '\0') {
        site = edge_site_find(conn->sites, name);
    }
    conn->sni_matched = site != NULL;
    if (site == NULL) {
        site = &conn->sites->v[0]; /* the default certificate answers */
    }
    if (site != conn->site) {
        if (SSL_set_SSL_CTX(ssl, site->ctx) == NULL) {
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        /* Which TLS 1.2 suites may be chosen depends on the site: a
         * threshold-mode key only signs, so its context has no RSA key
         * exchange. OpenSSL 3.0 takes the list from the SSL's current context
         * unless the SSL has one of its own; should it have one, it gets the
         * site's, so that the choice never falls back to the default
         * certificate's list. */
        if (SSL_get_ciphers(ssl) != SSL_CTX_get_ciphers(site->ctx) &&
            SSL_set_cipher_list(ssl, site->tls12_ciphers) != 1) {
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        conn->site = site;
    }
    edge_sni_session_context(conn->sid_ctx, name);
    if (SSL_set_session_id_context(ssl, conn->sid_ctx, sizeof(conn->sid_ctx)) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    conn->sid_ctx_set = true;
    return SSL_CLIENT_HELLO_SUCCESS;
}

const uint8_t *edge_conn_session_context(const SSL *ssl)
{
    const struct edge_conn *conn = SSL_get_app_data(ssl);

    return conn != NULL && conn->sid_ctx_set ? conn->sid_ctx : NULL;
}

/* edge_servername_cb: the site was chosen from the ClientHello already;
 * this only acknowledges a name that matched a certificate. */
static int edge_servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct edge_conn *conn = SSL_get_app_data(ssl);

    (void)alert;
    (void)arg;
    return conn != NULL && conn->sni_matched ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
}

/*
 * edge_alpn_select_cb picks the first of our protocols the client offers:
 * the certificate's `alpn` if it has one, else its listen line's, else the
 * global one. A client whose list has none of them is refused with
 * no_application_protocol (RFC 7301), before any key operation.
 */
static int edge_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                               const unsigned char *in, unsigned int in_len, void *arg)
{
    const struct edge_conn *conn = SSL_get_app_data(ssl);
    const struct edge_config *cfg;
    const struct edge_alpn *a;
    unsigned char *sel = NULL;

    (void)arg;
    if (conn == NULL) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    cfg = conn->loop->cfg;
    a = &cfg->alpn;
    if (conn->site->alpn.set) {
        a = &conn->site->alpn;
    } else if (conn->listen_index < cfg->num_listen && cfg->listen_alpn[conn->listen_index].set) {
        a = &cfg->listen_alpn[conn->listen_index];
    }
    if (a->len == 0) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    if (SSL_select_next_proto(&sel, out_len, a->wire, (unsigned int)a->len, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* edge_check_record: the record at |path| is signed and for |key_id|; *mode
 * is its enum proto_mode. */
static int edge_check_record(uint8_t *mode, const char *path,
                             const uint8_t key_id[PROTO_KEY_ID_LEN], char *why, size_t why_len)
{
    struct proto_record *rec = calloc(1, sizeof(*rec)); /* ~60 KB: too big for a stack */
    int r;

    if (rec == NULL) {
        snprintf(why, why_len, "%s: out of memory", path);
        return SPK_ERR_NOMEM;
    }
    if ((r = proto_record_load(rec, path, why, why_len)) != 0) {
        goto out;
    }
    if ((r = split_record_verify(rec)) != 0) {
        snprintf(why, why_len, "%s: the record's signature does not verify", path);
        goto out;
    }
    if (sodium_memcmp(rec->key_id, key_id, PROTO_KEY_ID_LEN) != 0) {
        snprintf(why, why_len, "%s: the record is for another key than the certificate", path);
        r = SPK_ERR_KEY_MISMATCH;
        goto out;
    }
    *mode = rec->mode;
    r = 0;
out:
    free(rec);
    return r;
}

static int edge_site_init(struct edge_loop *L, const struct edge_config *cfg, struct edge_site *s,
                          const struct edge_cert_conf *cc, char *why, size_t why_len)
{
    uint8_t key_id[PROTO_KEY_ID_LEN];
    FILE *fp = NULL;
    X509 *leaf = NULL;
    X509 *extra = NULL;
    uint8_t mode = PROTO_MODE_REBUILD;
    int r = SPK_ERR_INTERNAL;

    fp = fopen(cc->chain_path, "r");
    if (fp == NULL) {
        snprintf(why, why_len, "%s: %s", cc->chain_path, strerror(errno));
        return SPK_ERR_IO;
    }
    leaf = PEM_read_X509(fp, NULL, NULL, NULL);
    if (leaf == NULL) {
        snprintf(why, why_len, "%s: no PEM certificate", cc->chain_path);
        r = SPK_ERR_MALFORMED;
        goto out;
    }
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (s->ctx == NULL || SSL_CTX_use_certificate(s->ctx, leaf) != 1) {
        snprintf(why, why_len, "%s: certificate refused by OpenSSL", cc->chain_path);
        r = SPK_ERR_CRYPTO;
        goto out;
    }
    while ((extra = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(s->ctx, extra) != 1) {
            X509_free(extra);
            snprintf(why, why_len, "%s: chain certificate refused", cc->chain_path);
            r = SPK_ERR_CRYPTO;
            goto out;
        }
    }
    ERR_clear_error();
    if ((r = prov_key_new(&s->key, key_id, X509_get0_pubkey(leaf))) != 0) {
        snprintf(why, why_len, "%s: the certificate's key is not RSA", cc->chain_path);
        goto out;
    }
    if ((r = edge_check_record(&mode, cc->record_path, key_id, why, why_len)) != 0) {
        goto out;
    }
    s->threshold = mode == PROTO_MODE_THRESHOLD;
    s->rsa_kx = cfg->tls12_rsa_key_exchange && !s->threshold;
    edge_tls12_cipher_list(s->tls12_ciphers, sizeof(s->tls12_ciphers), cfg, s->rsa_kx);
    if (s->threshold && cfg->tls12_rsa_key_exchange) {
        spk_log("edge", "certificate %s: its key is in threshold mode: no TLS 1.2 RSA key exchange",
                cc->chain_path);
    }
    r = SPK_ERR_CRYPTO;
    if (SSL_CTX_use_PrivateKey(s->ctx, s->key) != 1 || SSL_CTX_check_private_key(s->ctx) != 1) {
        snprintf(why, why_len, "%s: OpenSSL refused the split key", cc->chain_path);
        goto out;
    }
    if ((r = edge_tls_ctx_setup(s->ctx, cfg, s->rsa_kx, why, why_len)) != 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (cc->ocsp_path[0] != '\0') {
        if ((r = edge_ocsp_load(&s->ocsp, cc->ocsp_path, leaf, s->ctx, why, why_len)) != 0) {
            goto out;
        }
        r = SPK_ERR_CRYPTO;
        if (edge_ocsp_install(s->ctx, &s->ocsp) != 0) {
            snprintf(why, why_len, "OCSP stapling: OpenSSL refused the callback");
            goto out;
        }
    }
    s->alpn = cc->alpn;
    SSL_CTX_set_alpn_select_cb(s->ctx, edge_alpn_select_cb, NULL);
    SSL_CTX_set_session_id_context(s->ctx, (const unsigned char *)"spk-edge", 8);
    if (edge_tickets_install(s->ctx) != 0 || edge_sni_install(s->ctx) != 0) {
        snprintf(why, why_len, "session tickets: OpenSSL refused the key callback");
        goto out;
    }
    SSL_CTX_set_client_hello_cb(s->ctx, edge_client_hello_cb, NULL);
    SSL_CTX_set_tlsext_servername_callback(s->ctx, edge_servername_cb);
    SSL_CTX_set_tlsext_servername_arg(s->ctx, L);
    edge_site_names(s, leaf);
    snprintf(s->upstream, sizeof(s->upstream), "%s",
             cc->upstream[0] != '\0' ? cc->upstream : cfg->upstream);
    if (edge_resolve(&s->up_addr, &s->up_len, s->upstream, false) != 0) {
        snprintf(why, why_len, "upstream %s: cannot resolve", s->upstream);
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    r = 0;
out:
    X509_free(leaf);
    fclose(fp);
    return r;
}

void edge_sites_unref(struct edge_sites *S)
{
    size_t i;

    if (S == NULL || --S->refs > 0) {
        return;
    }
    for (i = 0; i < S->num; i++) {
        SSL_CTX_free(S->v[i].ctx);
        EVP_PKEY_free(S->v[i].key);
        edge_ocsp_cleanup(&S->v[i].ocsp);
    }
    free(S->v);
    free(S);
}

/* edge_sites_new: every certificate of |cfg|, or NULL with |why|. */
struct edge_sites *edge_sites_new(struct edge_loop *L, const struct edge_config *cfg, char *why,
                                  size_t why_len)
{
    struct edge_sites *S = calloc(1, sizeof(*S));
    size_t i;

    if (S == NULL || (S->v = calloc(cfg->num_certs, sizeof(*S->v))) == NULL) {
        free(S);
        snprintf(why, why_len, "no memory");
        return NULL;
    }
    S->refs = 1;
    for (i = 0; i < cfg->num_certs; i++) {
        S->num = i + 1;
        if (edge_site_init(L, cfg, &S->v[i], &cfg->certs[i], why, why_len) != 0) {
            edge_sites_unref(S);
            return NULL;
        }
    }
    return S;
}
