/*
 * edge_check.c: `edge check CONFIG`, like `nginx -t`. It goes through what
 * `edge run` would do, without serving, and says in plain words what would
 * not work:
 *   - every certificate: readable, PEM, an RSA key, within its validity, its
 *     key record readable, signed, and for the certificate's key; upstream
 *     resolvable;
 *   - the ticket key file;
 *   - every share line: a share file, of a key some certificate uses, for the
 *     holder whose key opens it;
 *   - every share-holder: answers a PING from the combiner's key (a holder
 *     that is reachable but silent refuses that key, or its curve key here
 *     is wrong);
 *   - the combiner: started (in a child process, on a private ipc endpoint,
 *     so a running edge is not disturbed) unless combiner-external, opens its
 *     shares, and makes one test signature per key, verified here with the
 *     certificate's public key.
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
#include <openssl/x509.h>
#include <sodium.h>
#include <zmq.h>

#include "edge/internal.h"
#include "share-holder/share-holder.h"
#include "split/split.h"

struct edge_chk {
    const struct edge_config *cfg;
    unsigned problems;
    /* per certificate */
    bool cert_ok[EDGE_CERT_MAX];
    uint8_t key_id[EDGE_CERT_MAX][PROTO_KEY_ID_LEN];
    unsigned threshold[EDGE_CERT_MAX];
    EVP_PKEY *pub[EDGE_CERT_MAX];
    bool ponged[EDGE_HOLDER_MAX];
};

static void edge_chk_bad(struct edge_chk *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void edge_chk_bad(struct edge_chk *k, const char *fmt, ...)
{
    va_list ap;

    k->problems++;
    fputs("edge check: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void edge_chk_hex8(const uint8_t *id, char out[17])
{
    sodium_bin2hex(out, 17, id, 8);
}

static void edge_chk_cert(struct edge_chk *k, size_t i)
{
    const struct edge_cert_conf *cc = &k->cfg->certs[i];
    static struct proto_record rec;
    const char *chain = cc->chain_path;
    X509 *leaf = NULL;
    EVP_PKEY *pub;
    unsigned char *der = NULL;
    unsigned int id_len = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    FILE *fp;
    int der_len, r;

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
    der_len = i2d_PUBKEY(pub, &der);
    if (der_len <= 0 ||
        !EVP_Digest(der, (size_t)der_len, k->key_id[i], &id_len, EVP_sha256(), NULL)) {
        edge_chk_bad(k, "certificate %s: cannot encode its public key", chain);
        goto out;
    }
    if ((r = spk_file_read(cc->record_path, PROTO_FILE_MAX, &buf, &len)) != 0) {
        edge_chk_bad(k, "certificate %s: its key record %s cannot be read: %s", chain,
                     cc->record_path, spk_strerror(r));
        goto out;
    }
    r = proto_record_decode(&rec, buf, len);
    spk_file_free(buf, len);
    if (r != 0) {
        edge_chk_bad(k, "certificate %s: %s is not a key record (%s)", chain, cc->record_path,
                     spk_strerror(r));
        goto out;
    }
    if (split_record_verify(&rec) != 0) {
        edge_chk_bad(k, "certificate %s: the signature of key record %s does not verify", chain,
                     cc->record_path);
        goto out;
    }
    if (sodium_memcmp(rec.key_id, k->key_id[i], PROTO_KEY_ID_LEN) != 0) {
        edge_chk_bad(k,
                     "certificate %s: key record %s is for another key than the certificate's "
                     "(a record from another split?)",
                     chain, cc->record_path);
        goto out;
    }
    k->threshold[i] = rec.threshold;
    k->pub[i] = EVP_PKEY_dup(pub);
    k->cert_ok[i] = k->pub[i] != NULL;
out:
    OPENSSL_free(der);
    X509_free(leaf);
    ERR_clear_error();
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

/* edge_chk_shares: each share line's file, key and holder. */
static void edge_chk_shares(struct edge_chk *k, const char *comb_name)
{
    const struct edge_config *cfg = k->cfg;
    static struct proto_share_file sf;
    size_t i, j;

    for (i = 0; i < cfg->num_shares; i++) {
        const char *path = cfg->shares[i].path;
        uint8_t *buf = NULL;
        size_t len = 0;
        bool used = false;
        char id[17];
        int r;

        if ((r = spk_file_read(path, PROTO_FILE_MAX, &buf, &len)) != 0) {
            edge_chk_bad(k, "share %s: cannot read it: %s", path, spk_strerror(r));
            continue;
        }
        r = proto_share_file_decode(&sf, buf, len);
        spk_file_free(buf, len);
        if (r != 0) {
            edge_chk_bad(k, "share %s: not a share file (%s)", path, spk_strerror(r));
            continue;
        }
        for (j = 0; j < cfg->num_certs; j++) {
            if (k->cert_ok[j] && sodium_memcmp(k->key_id[j], sf.key_id, PROTO_KEY_ID_LEN) == 0) {
                used = true;
            }
        }
        edge_chk_hex8(sf.key_id, id);
        if (!used) {
            edge_chk_bad(k,
                         "share %s: it is a share of key %s..., which no certificate here uses "
                         "(a share of the wrong key?)",
                         path, id);
        }
        if (cfg->shares[i].key_path[0] == '\0' && comb_name != NULL &&
            strcmp(sf.holder, comb_name) != 0) {
            edge_chk_bad(k,
                         "share %s: it belongs to holder '%s', but combiner-key is '%s': the "
                         "combiner cannot open it",
                         path, sf.holder, comb_name);
        }
    }
}

/* edge_chk_tcp: can a TCP connection to a tcp://HOST:PORT endpoint be made? */
static int edge_chk_tcp(const char *endpoint)
{
    char host[EDGE_PATH_MAX];
    const char *hp, *colon;
    struct addrinfo hints, *res = NULL;
    int fd, r = 0;

    if (strncmp(endpoint, "tcp://", 6) != 0) {
        return 0;
    }
    hp = endpoint + 6;
    colon = strrchr(hp, ':');
    if (colon == NULL || (size_t)(colon - hp) >= sizeof(host)) {
        return EINVAL;
    }
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL) {
        return EHOSTUNREACH;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        r = errno;
    }
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return r;
}

static void edge_chk_holder_result(void *ctx, const struct sh_result *res)
{
    struct edge_chk *k = ctx;

    if (res->status == 0 && res->type == PROTO_MSG_PONG && res->holder < EDGE_HOLDER_MAX) {
        k->ponged[res->holder] = true;
    }
}

/* edge_chk_holders: PING every holder with the combiner's key for up to 3 s. */
static void edge_chk_holders(struct edge_chk *k, void *zctx, const struct proto_holder_secret *me)
{
    const struct edge_config *cfg = k->cfg;
    struct sh_client *c;
    uint64_t deadline = spk_now_ms() + 3000;
    uint64_t last[EDGE_HOLDER_MAX];
    size_t i;
    bool all = false;

    if (cfg->num_holders == 0) {
        return;
    }
    c = sh_client_new(zctx, me, edge_chk_holder_result, k);
    if (c == NULL) {
        edge_chk_bad(k, "cannot make a share-holder client");
        return;
    }
    memset(last, 0, sizeof(last));
    for (i = 0; i < cfg->num_holders; i++) {
        size_t idx = 0;
        if (sh_client_add_holder(c, &idx, cfg->holders[i].name, cfg->holders[i].endpoint,
                                 cfg->holders[i].curve_pk) != 0 ||
            idx != i) {
            edge_chk_bad(k, "holder %s: bad endpoint %s", cfg->holders[i].name,
                         cfg->holders[i].endpoint);
            sh_client_free(c);
            return;
        }
    }
    while (!all && spk_now_ms() < deadline) {
        uint64_t now = spk_now_ms();
        all = true;
        for (i = 0; i < cfg->num_holders; i++) {
            uint64_t id;
            if (k->ponged[i]) {
                continue;
            }
            all = false;
            if (now - last[i] >= 250 && sh_client_ping(c, &id, i, 1000, NULL) == 0) {
                last[i] = now;
            }
        }
        if (!all && sh_client_wait(c, 50) != 0) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    for (i = 0; i < cfg->num_holders; i++) {
        int e;
        if (k->ponged[i]) {
            continue;
        }
        e = edge_chk_tcp(cfg->holders[i].endpoint);
        if (e != 0) {
            edge_chk_bad(k, "holder %s at %s: unreachable (%s)", cfg->holders[i].name,
                         cfg->holders[i].endpoint, strerror(e));
        } else {
            edge_chk_bad(k,
                         "holder %s at %s: reachable, but does not answer the combiner: it "
                         "refuses the combiner's key (is the combiner's curve-public key in its "
                         "allow-list?), or the holder's curve key on the holder line is wrong",
                         cfg->holders[i].name, cfg->holders[i].endpoint);
        }
    }
    sh_client_free(c);
}

/* edge_chk_sign: one test signature per key through the combiner, verified
 * with the certificate's public key. */
static void edge_chk_sign(struct edge_chk *k, struct edge_client *c)
{
    const struct edge_config *cfg = k->cfg;
    static const char msg[] = "splitkey edge check";
    uint8_t dgst[32];
    static uint8_t sig[PROTO_BN_MAX];
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
                              sig, sizeof(sig), &sig_len);
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
            EVP_PKEY_verify(vctx, sig, sig_len, dgst, sizeof(dgst)) != 1) {
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

/* edge_chk_combiner_start forks a combiner on |endpoint| for the check. */
static pid_t edge_chk_combiner_start(const struct edge_config *cfg, const char *endpoint)
{
    static struct edge_config copy;
    pid_t pid;

    pid = fork();
    if (pid != 0) {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    copy = *cfg;
    snprintf(copy.combiner_endpoint, sizeof(copy.combiner_endpoint), "%s", endpoint);
    copy.combiner_metrics[0] = '\0'; /* a running combiner has that port */
    _exit(edge_combproc_run(&copy, false));
}

int edge_check(const struct edge_config *cfg, const char *config_path, const char *self_path)
{
    static struct edge_chk k;
    struct proto_holder_secret *me = NULL;
    struct edge_tickets *tickets = NULL;
    struct edge_client *client = NULL;
    char endpoint[EDGE_PATH_MAX];
    char why[4096] = "";
    void *zctx = NULL;
    pid_t comb = 0;
    size_t i;
    int r, status;

    (void)self_path;
    memset(&k, 0, sizeof(k));
    k.cfg = cfg;
    /* The combiner first, before this process touches OpenSSL or a secret:
     * the child is then as clean as the one `edge run` starts. */
    if (!cfg->combiner_external) {
        snprintf(endpoint, sizeof(endpoint), "ipc:///tmp/spk-edge-check-%ld.sock", (long)getpid());
        comb = edge_chk_combiner_start(cfg, endpoint);
        if (comb < 0) {
            edge_chk_bad(&k, "cannot start a combiner: %s", strerror(errno));
            comb = 0;
        }
    } else {
        snprintf(endpoint, sizeof(endpoint), "%s", cfg->combiner_endpoint);
    }
    if (sodium_init() < 0) {
        edge_chk_bad(&k, "libsodium does not initialise");
        goto out;
    }
    for (i = 0; i < cfg->num_certs; i++) {
        edge_chk_cert(&k, i);
    }
    edge_chk_upstreams(&k);
    if ((r = edge_tickets_load(&tickets, cfg->ticket_key_file, why, sizeof(why))) != 0) {
        edge_chk_bad(&k, "%s", why);
    }
    edge_tickets_free(tickets);
    zctx = zmq_ctx_new();
    if (zctx == NULL) {
        edge_chk_bad(&k, "cannot make a ZeroMQ context");
        goto out;
    }
    if (cfg->combiner_key[0] != '\0') {
        if ((r = split_holder_secret_load(&me, cfg->combiner_key)) != 0) {
            edge_chk_bad(&k, "combiner-key %s: %s", cfg->combiner_key, spk_strerror(r));
        }
    }
    edge_chk_shares(&k, me != NULL ? me->pub.name : NULL);
    for (i = 0; i < cfg->num_certs; i++) {
        size_t j, local = 0;
        if (!k.cert_ok[i] || me == NULL) {
            continue;
        }
        for (j = 0; j < cfg->num_shares; j++) {
            static struct proto_share_file sf;
            uint8_t *buf = NULL;
            size_t len = 0;
            if (spk_file_read(cfg->shares[j].path, PROTO_FILE_MAX, &buf, &len) != 0) {
                continue;
            }
            if (proto_share_file_decode(&sf, buf, len) == 0 &&
                sodium_memcmp(sf.key_id, k.key_id[i], PROTO_KEY_ID_LEN) == 0) {
                local++;
            }
            spk_file_free(buf, len);
        }
        if (local + cfg->num_holders < k.threshold[i]) {
            edge_chk_bad(&k,
                         "certificate %s: its key needs %u shares, but only %zu share line(s) "
                         "and %zu holder(s) could give them",
                         cfg->certs[i].chain_path, k.threshold[i], local, cfg->num_holders);
        }
    }
    if (me != NULL) {
        edge_chk_holders(&k, zctx, me);
    }
    client = edge_client_new(zctx, endpoint, (int)cfg->op_timeout_ms);
    if (client == NULL) {
        edge_chk_bad(&k, "cannot connect to the combiner at %s", endpoint);
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
            edge_chk_bad(&k, "the combiner did not start (its reason is above)");
        } else {
            edge_chk_bad(&k, "the combiner at %s does not answer", endpoint);
        }
        goto out;
    }
    edge_chk_sign(&k, client);
out:
    edge_client_free(client);
    if (comb > 0) {
        kill(comb, SIGTERM);
        waitpid(comb, &status, 0);
    }
    if (zctx != NULL) {
        zmq_ctx_term(zctx);
    }
    spk_secret_free(me);
    for (i = 0; i < cfg->num_certs; i++) {
        EVP_PKEY_free(k.pub[i]);
    }
    if (k.problems != 0) {
        printf("edge check: %s: %u problem(s); `edge run` would not work as configured\n",
               config_path, k.problems);
        return 1;
    }
    printf("edge check: %s: ok (%zu certificate(s), %zu holder(s), %zu share file(s), %zu "
           "listener(s))\n",
           config_path, cfg->num_certs, cfg->num_holders, cfg->num_shares, cfg->num_listen);
    return 0;
}
