/*
 * edge_check.c: `edge check CONFIG`, like `nginx -t`. It goes through what
 * `edge run` would do, without serving, and says in plain words what would
 * not work:
 *   - every certificate: readable, PEM, an RSA key, within its validity, its
 *     key record readable, signed, and for the certificate's key; upstream
 *     resolvable; a line for each whose key is in threshold mode (served
 *     without TLS 1.2 RSA key exchange);
 *   - the TLS directives (cipher lists, groups) and OCSP response files;
 *   - the ticket key file;
 *   - the combiner's own file, by `combiner check --config FILE` (shares,
 *     holders, a test operation per key), unless combiner-external;
 *   - the combiner as the edge reaches it: one started for the check (on a
 *     socket in a private 0700 directory, so a running edge is not disturbed
 *     and nobody else can reach it), or the external one at
 *     combiner-endpoint; one test signature per certificate through it,
 *     verified here with the certificate's public key.
 * Exit 0 only when nothing was found.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <zmq.h>

#include "edge/internal.h"
#include "split/split.h"

struct edge_chk {
    const struct edge_config *cfg;
    unsigned problems;
    /* per certificate */
    bool cert_ok[EDGE_CERT_MAX];
    uint8_t key_id[EDGE_CERT_MAX][PROTO_KEY_ID_LEN];
    unsigned threshold[EDGE_CERT_MAX];
    size_t num_threshold_mode; /* certificates whose key is in threshold mode */
    EVP_PKEY *pub[EDGE_CERT_MAX];
    struct proto_record rec;   /* the record being checked */
    uint8_t sig[PROTO_BN_MAX]; /* a test signature (public) */
};

/* edge_chk_new: a zeroed check of |cfg| on the heap (it holds a struct
 * proto_record, about 60 KB), or NULL. */
static struct edge_chk *edge_chk_new(const struct edge_config *cfg)
{
    struct edge_chk *k = calloc(1, sizeof(*k));

    if (k != NULL) {
        k->cfg = cfg;
    }
    return k;
}

static void edge_chk_free(struct edge_chk *k)
{
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < EDGE_CERT_MAX; i++) {
        EVP_PKEY_free(k->pub[i]);
    }
    free(k);
}

static void edge_chk_bad(struct edge_chk *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void edge_chk_bad(struct edge_chk *k, const char *fmt, ...)
{
    va_list ap;

    k->problems++;
    va_start(ap, fmt);
    spk_log_v("edge check", fmt, ap);
    va_end(ap);
}

static void edge_chk_cert(struct edge_chk *k, size_t i)
{
    const struct edge_cert_conf *cc = &k->cfg->certs[i];
    struct proto_record *rec = &k->rec;
    const char *chain = cc->chain_path;
    X509 *leaf = NULL;
    EVP_PKEY *pub;
    char why[PROTO_PATH_WHY_MAX];
    FILE *fp;

    fp = fopen(chain, "r");
    if (fp == NULL) {
        edge_chk_bad(k, "certificate %s: cannot read it: %s", chain, strerror(errno));
        return;
    }
    leaf = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    ERR_clear_error();
    if (leaf == NULL) {
        edge_chk_bad(k, "certificate %s: no PEM certificate in it", chain);
        return;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        edge_chk_bad(k, "certificate %s: it has expired", chain);
    } else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
        edge_chk_bad(k, "certificate %s: it is not valid yet", chain);
    }
    pub = X509_get0_pubkey(leaf);
    if (pub == NULL || EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA) {
        edge_chk_bad(k, "certificate %s: its key is not RSA (splitkey splits RSA keys)", chain);
        goto out;
    }
    if (proto_key_id(k->key_id[i], pub) != 0) {
        edge_chk_bad(k, "certificate %s: cannot encode its public key", chain);
        goto out;
    }
    if (proto_record_load(rec, cc->record_path, why, sizeof(why)) != 0) {
        edge_chk_bad(k, "certificate %s: %s", chain, why);
        goto out;
    }
    if (split_record_verify(rec) != 0) {
        edge_chk_bad(k, "certificate %s: the signature of key record %s does not verify", chain,
                     cc->record_path);
        goto out;
    }
    if (sodium_memcmp(rec->key_id, k->key_id[i], PROTO_KEY_ID_LEN) != 0) {
        edge_chk_bad(k,
                     "certificate %s: key record %s is for another key than the certificate's "
                     "(a record from another split?)",
                     chain, cc->record_path);
        goto out;
    }
    k->threshold[i] = rec->threshold;
    if (rec->mode == PROTO_MODE_THRESHOLD) {
        k->num_threshold_mode++;
        printf("edge check: certificate %s: its key is in threshold mode (%u of %u signature "
               "shares): served with TLS 1.3 and TLS 1.2 ECDHE/DHE only; TLS 1.2 RSA key exchange "
               "is never offered for it%s\n",
               chain, rec->threshold, rec->num_shares,
               k->cfg->tls12_rsa_key_exchange
                   ? " (tls12-rsa-key-exchange yes applies to rebuild-mode certificates only)"
                   : "");
    }
    k->pub[i] = EVP_PKEY_dup(pub);
    k->cert_ok[i] = k->pub[i] != NULL;
out:
    X509_free(leaf);
    ERR_clear_error();
}

/*
 * edge_chk_tls: the TLS directives (cipher lists, groups: OpenSSL may refuse
 * them) and each certificate's OCSP response file, loaded as `edge run` does.
 */
static void edge_chk_tls(struct edge_chk *k)
{
    SSL_CTX *ctx = NULL;
    char why[512];
    size_t i;

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL ||
        edge_tls_ctx_setup(ctx, k->cfg, k->cfg->tls12_rsa_key_exchange, why, sizeof(why)) != 0) {
        edge_chk_bad(k, "%s", ctx == NULL ? "OpenSSL cannot make a TLS context" : why);
    }
    SSL_CTX_free(ctx);
    /* A threshold-mode certificate gets the list without RSA key exchange,
     * which may leave nothing of a list that named only such suites. */
    if (k->num_threshold_mode > 0 && k->cfg->tls12_rsa_key_exchange) {
        ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == NULL || edge_tls_ctx_setup(ctx, k->cfg, false, why, sizeof(why)) != 0) {
            edge_chk_bad(k, "threshold-mode certificates: %s",
                         ctx == NULL ? "OpenSSL cannot make a TLS context" : why);
        }
        SSL_CTX_free(ctx);
    }
    for (i = 0; i < k->cfg->num_certs; i++) {
        const struct edge_cert_conf *cc = &k->cfg->certs[i];
        struct edge_ocsp ocsp = {NULL, 0};
        X509 *leaf = NULL, *extra;
        FILE *fp;

        if (cc->ocsp_path[0] == '\0' || (fp = fopen(cc->chain_path, "r")) == NULL) {
            continue; /* an unreadable chain is reported by edge_chk_cert */
        }
        ctx = SSL_CTX_new(TLS_server_method());
        leaf = PEM_read_X509(fp, NULL, NULL, NULL);
        while (ctx != NULL && (extra = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
            if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
                X509_free(extra);
            }
        }
        fclose(fp);
        ERR_clear_error();
        if (ctx != NULL && leaf != NULL &&
            edge_ocsp_load(&ocsp, cc->ocsp_path, leaf, ctx, why, sizeof(why)) != 0) {
            edge_chk_bad(k, "certificate %s: %s", cc->chain_path, why);
        }
        edge_ocsp_cleanup(&ocsp);
        X509_free(leaf);
        SSL_CTX_free(ctx);
    }
}

static void edge_chk_upstreams(struct edge_chk *k)
{
    const struct edge_config *cfg = k->cfg;
    size_t i;

    for (i = 0; i <= cfg->num_certs; i++) {
        const char *up = i < cfg->num_certs ? cfg->certs[i].upstream : cfg->upstream;
        char host[EDGE_HOSTPORT_MAX];
        const char *colon = strrchr(up, ':');
        struct addrinfo hints, *res = NULL;
        size_t hlen;

        if (up[0] == '\0' || colon == NULL || (hlen = (size_t)(colon - up)) >= sizeof(host)) {
            continue;
        }
        memcpy(host, up, hlen);
        host[hlen] = '\0';
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
            memmove(host, host + 1, hlen - 2);
            host[hlen - 2] = '\0';
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
            edge_chk_bad(k, "upstream %s: the name does not resolve", up);
        }
        if (res != NULL) {
            freeaddrinfo(res);
        }
    }
}

/* edge_chk_sign: one test signature per key through the combiner, verified
 * with the certificate's public key. */
static void edge_chk_sign(struct edge_chk *k, struct edge_client *c)
{
    const struct edge_config *cfg = k->cfg;
    static const char msg[] = "splitkey edge check";
    uint8_t dgst[32];
    size_t i, j;

    if (!EVP_Digest(msg, sizeof(msg) - 1, dgst, NULL, EVP_sha256(), NULL)) {
        edge_chk_bad(k, "SHA-256 is not available");
        return;
    }
    for (i = 0; i < cfg->num_certs; i++) {
        EVP_PKEY_CTX *vctx = NULL;
        size_t sig_len = 0;
        int r;

        if (!k->cert_ok[i]) {
            continue;
        }
        for (j = 0; j < i; j++) {
            if (k->cert_ok[j] && sodium_memcmp(k->key_id[j], k->key_id[i], PROTO_KEY_ID_LEN) == 0) {
                break;
            }
        }
        if (j < i) {
            continue; /* the same key as an earlier certificate */
        }
        r = edge_client_keyop(c, k->key_id[i], PROTO_OP_SIGN_PKCS1_SHA256, dgst, sizeof(dgst), 0,
                              k->sig, sizeof(k->sig), &sig_len);
        if (r != 0) {
            edge_chk_bad(k,
                         "certificate %s: the combiner could not sign with its key: %s (see the "
                         "combiner's messages above)",
                         cfg->certs[i].chain_path, spk_strerror(r));
            continue;
        }
        vctx = EVP_PKEY_CTX_new(k->pub[i], NULL);
        if (vctx == NULL || EVP_PKEY_verify_init(vctx) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(vctx, RSA_PKCS1_PADDING) != 1 ||
            EVP_PKEY_CTX_set_signature_md(vctx, EVP_sha256()) != 1 ||
            EVP_PKEY_verify(vctx, k->sig, sig_len, dgst, sizeof(dgst)) != 1) {
            edge_chk_bad(k,
                         "certificate %s: the test signature does not verify with the "
                         "certificate's key (shares of another key?)",
                         cfg->certs[i].chain_path);
        } else {
            printf("edge check: certificate %s: test signature verified\n",
                   cfg->certs[i].chain_path);
        }
        EVP_PKEY_CTX_free(vctx);
        ERR_clear_error();
    }
}

/*
 * edge_chk_spawn runs the combiner command with |args| (NULL-terminated,
 * after the binary) in a child that dies with this process. The child's
 * pid, or -1.
 */
static pid_t edge_chk_spawn(const struct edge_config *cfg, const char *const *args)
{
    char *argv[12];
    size_t n = 0;
    pid_t pid;

    pid = fork();
    if (pid != 0) {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* In the child only: execv wants writable strings. */
    argv[n++] = strdup(cfg->combiner_binary);
    while (*args != NULL && n < 11) {
        argv[n++] = strdup(*args++);
    }
    argv[n] = NULL;
    execv(cfg->combiner_binary, argv);
    fprintf(stderr, "edge check: cannot run the combiner '%s': %s\n", cfg->combiner_binary,
            strerror(errno));
    _exit(127);
}

int edge_check(const struct edge_config *cfg, const char *config_path)
{
    struct edge_chk *k = edge_chk_new(cfg);
    struct edge_tickets *tickets = NULL;
    struct edge_client *client = NULL;
    char dir[] = "/tmp/spk-edge-check.XXXXXX";
    bool have_dir = false;
    char endpoint[EDGE_PATH_MAX];
    char why[4096] = "";
    void *zctx = NULL;
    pid_t comb = 0;
    unsigned problems;
    size_t i;
    int r, status;

    if (k == NULL) {
        fprintf(stderr, "edge check: out of memory\n");
        return 1;
    }
    if (sodium_init() < 0) {
        edge_chk_bad(k, "libsodium does not initialise");
        goto out;
    }
    for (i = 0; i < cfg->num_certs; i++) {
        edge_chk_cert(k, i);
    }
    edge_chk_tls(k);
    edge_chk_upstreams(k);
    if ((r = edge_tickets_load(&tickets, cfg->ticket_key_file, why, sizeof(why))) != 0) {
        edge_chk_bad(k, "%s", why);
    }
    edge_tickets_free(tickets);
    if (!cfg->combiner_external) {
        const char *check_args[] = {"check", "--config", cfg->combiner_config, NULL};

        fflush(stdout);
        comb = edge_chk_spawn(cfg, check_args);
        if (comb < 0 || waitpid(comb, &status, 0) != comb || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            edge_chk_bad(k, "combiner check --config %s failed (its reasons are above)",
                         cfg->combiner_config);
        }
        comb = 0;
        /* A private directory: nobody but this user can reach the socket in it. */
        if (mkdtemp(dir) == NULL) {
            edge_chk_bad(k, "cannot make a private directory: %s", strerror(errno));
            goto out;
        }
        have_dir = true;
        snprintf(endpoint, sizeof(endpoint), "unix://%s/combiner.sock", dir);
        {
            const char *run_args[] = {"run",      "--config", cfg->combiner_config,
                                      "--listen", endpoint,   "--no-metrics",
                                      NULL};
            comb = edge_chk_spawn(cfg, run_args);
        }
        if (comb < 0) {
            edge_chk_bad(k, "cannot start a combiner: %s", strerror(errno));
            comb = 0;
            goto out;
        }
    } else {
        snprintf(endpoint, sizeof(endpoint), "%s", cfg->combiner_endpoint);
    }
    zctx = zmq_ctx_new();
    if (zctx == NULL) {
        edge_chk_bad(k, "cannot make a ZeroMQ context");
        goto out;
    }
    if (edge_client_open(&client, zctx, cfg, endpoint, why, sizeof(why)) != 0) {
        edge_chk_bad(k, "%s", why);
        goto out;
    }
    /* The combiner warms up its holder sessions (up to 1.5 s) before it binds. */
    r = SPK_ERR_TIMEOUT;
    for (i = 0; i < 40 && r != 0; i++) {
        if (comb > 0 && waitpid(comb, &status, WNOHANG) == comb) {
            comb = 0;
            break;
        }
        r = edge_client_ping(client, 250);
    }
    if (r != 0) {
        if (comb == 0 && !cfg->combiner_external) {
            edge_chk_bad(k, "the combiner did not start (its reason is above)");
        } else {
            edge_chk_bad(k,
                         "the combiner at %s does not answer (is this edge's uid or key among "
                         "its client lines?)",
                         endpoint);
        }
        goto out;
    }
    edge_chk_sign(k, client);
out:
    edge_client_free(client);
    if (comb > 0) {
        kill(comb, SIGTERM);
        waitpid(comb, &status, 0);
    }
    if (have_dir) {
        char sock[sizeof(dir) + 32];
        snprintf(sock, sizeof(sock), "%s/combiner.sock", dir);
        (void)unlink(sock);
        (void)rmdir(dir);
    }
    if (zctx != NULL) {
        zmq_ctx_term(zctx);
    }
    problems = k->problems;
    edge_chk_free(k);
    if (problems != 0) {
        printf("edge check: %s: %u problem(s); `edge run` would not work as configured\n",
               config_path, problems);
        return 1;
    }
    printf("edge check: %s: ok (%zu certificate(s), %zu listener(s), combiner %s)\n", config_path,
           cfg->num_certs, cfg->num_listen,
           cfg->combiner_external ? cfg->combiner_endpoint : cfg->combiner_config);
    return 0;
}
