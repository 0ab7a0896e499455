/*
 * edge_combproc.c: the combiner process beside the edge. It binds a ROUTER
 * socket (ipc:// by default) and serves OP_REQUEST from the edge's TLS
 * process with the combiner library (combiner/combiner.h): its own share of
 * every key is opened with the combiner key file into locked memory, the
 * others come from the configured share-holders over ZeroMQ/CURVE (through
 * the share-holder client, struct sh_client) or, for tests and drills, from
 * share files opened in process with another holder's key file. Every answer
 * is OP_RESPONSE or ERROR; PING gets PONG.
 *
 * This is the only code of the edge that ever handles a share. It runs in
 * its own process image (the edge forks and execs it), hardened and with
 * memory locked before any share is read.
 */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>
#include <zmq.h>

#include "combiner/combiner.h"
#include "edge/internal.h"
#include "share-holder/share-holder.h"
#include "split/split.h"

#define COMBPROC_ID_MAX 256 /* ROUTER identities are at most 255 bytes */
#define COMBPROC_POLL_MAX 300

/* ---- holders as share sources ---------------------------------------------- */

/* One sh_client carries every holder; each holder is one comb source. */
struct combproc_holders {
    struct sh_client *client;
    size_t refs;
};

struct combproc_holder_src {
    struct combproc_holders *shared;
    size_t holder; /* index in the sh_client */
    bool first;    /* the source that polls the shared client */
    int timeout_ms;
};

static void combproc_sh_result(void *ctx, const struct sh_result *res)
{
    struct comb_fetch *fetch = res->user;
    struct comb_share_info info;
    bool *ponged = ctx;

    if (fetch == NULL) {
        if (res->status == 0 && res->type == PROTO_MSG_PONG && res->holder < EDGE_HOLDER_MAX) {
            ponged[res->holder] = true;
        }
        return;
    }
    if (res->status != 0) {
        comb_fetch_done(fetch, res->status, NULL, res->text);
        return;
    }
    memcpy(info.key_id, res->key_id, sizeof(info.key_id));
    memcpy(info.split_id, res->split_id, sizeof(info.split_id));
    info.index = res->index;
    info.field_bits = res->field_bits;
    comb_fetch_done(fetch, 0, &info, NULL);
}

static int combproc_src_start(void *vctx, struct comb_fetch *fetch)
{
    struct combproc_holder_src *s = vctx;
    uint64_t id = 0;
    int r;

    r = sh_client_request(s->shared->client, &id, s->holder, fetch->key_id, fetch->op,
                          fetch->input_digest, fetch->out_y, fetch->out_len, s->timeout_ms, fetch);
    if (r != 0) {
        return r;
    }
    fetch->source_tag = id;
    return 0;
}

static void combproc_src_cancel(void *vctx, struct comb_fetch *fetch)
{
    struct combproc_holder_src *s = vctx;

    sh_client_cancel(s->shared->client, fetch->source_tag);
}

static size_t combproc_src_poll_items(void *vctx, zmq_pollitem_t *items, size_t cap)
{
    struct combproc_holder_src *s = vctx;

    return s->first ? sh_client_poll_items(s->shared->client, items, cap) : 0;
}

static long combproc_src_timeout_ms(void *vctx)
{
    struct combproc_holder_src *s = vctx;

    return s->first ? sh_client_timeout_ms(s->shared->client) : -1;
}

static int combproc_src_process(void *vctx)
{
    struct combproc_holder_src *s = vctx;

    return s->first ? sh_client_process(s->shared->client) : 0;
}

static void combproc_src_free(void *vctx)
{
    struct combproc_holder_src *s = vctx;

    if (s == NULL) {
        return;
    }
    if (--s->shared->refs == 0) {
        sh_client_free(s->shared->client);
        free(s->shared);
    }
    free(s);
}

static const struct comb_source_ops combproc_holder_ops = {
    .start = combproc_src_start,
    .cancel = combproc_src_cancel,
    .has_key = NULL,
    .poll_items = combproc_src_poll_items,
    .timeout_ms = combproc_src_timeout_ms,
    .process = combproc_src_process,
    .free = combproc_src_free,
};

/* ---- the server --------------------------------------------------------------- */

struct combproc {
    const struct edge_config *cfg;
    void *zctx;
    void *router;
    struct comb_ctx *comb;
    struct proto_holder_secret *key; /* the combiner's key file (secret memory) */
    int sigfd;
    uint64_t num_ok, num_failed;
    struct sh_client *holders; /* owned by the holder sources */
    bool ponged[EDGE_HOLDER_MAX];
};

/* One request waiting for the combiner: who asked, under which id. */
struct combproc_req {
    struct combproc *cp;
    uint8_t id[COMBPROC_ID_MAX];
    size_t id_len;
    uint64_t req_id;
};

static void combproc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void combproc_log(const char *fmt, ...)
{
    va_list ap;

    fputs("combiner: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void combproc_send(struct combproc *cp, const uint8_t *id, size_t id_len,
                          const struct proto_msg *m)
{
    static uint8_t buf[PROTO_MSG_MAX];
    size_t len = 0;

    if (proto_msg_encode(buf, sizeof(buf), &len, m) != 0) {
        return;
    }
    /* ROUTER drops what it cannot route (the edge went away): fine. */
    if (zmq_send(cp->router, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)id_len) {
        (void)zmq_send(cp->router, buf, len, ZMQ_DONTWAIT);
    }
    OPENSSL_cleanse(buf, len);
}

static void combproc_send_error(struct combproc *cp, const uint8_t *id, size_t id_len,
                                uint64_t req_id, int err, const char *text)
{
    struct proto_msg m;
    size_t i;

    memset(&m, 0, sizeof(m));
    m.type = PROTO_MSG_ERROR;
    m.req_id = req_id;
    m.u.error.code = proto_err_to_wire(err);
    for (i = 0; text != NULL && text[i] != '\0' && i < PROTO_ERR_TEXT_MAX; i++) {
        char ch = text[i];
        m.u.error.text[i] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    }
    combproc_send(cp, id, id_len, &m);
}

static void combproc_done(void *arg, const struct comb_result *res)
{
    struct combproc_req *req = arg;
    struct combproc *cp = req->cp;
    static struct proto_msg m;

    if (res->status != 0 || res->out_len == 0 || res->out_len > PROTO_BN_MAX) {
        cp->num_failed++;
        combproc_send_error(cp, req->id, req->id_len, req->req_id,
                            res->status != 0 ? res->status : SPK_ERR_INTERNAL, res->detail);
        if (res->detail != NULL && res->detail[0] != '\0') {
            combproc_log("operation failed: %s", res->detail);
        }
    } else {
        cp->num_ok++;
        memset(&m, 0, sizeof(m));
        m.type = PROTO_MSG_OP_RESPONSE;
        m.req_id = req->req_id;
        memcpy(m.u.op_resp.result, res->out, res->out_len);
        m.u.op_resp.result_len = res->out_len;
        combproc_send(cp, req->id, req->id_len, &m);
        OPENSSL_cleanse(&m, sizeof(m));
    }
    free(req);
}

static void combproc_handle(struct combproc *cp, const uint8_t *id, size_t id_len,
                            const uint8_t *frame, size_t len)
{
    static struct proto_msg m;
    struct combproc_req *req = NULL;
    uint8_t type = 0;
    uint64_t req_id = 0;
    int r;

    if ((r = proto_msg_decode(&m, frame, len)) != 0) {
        if (proto_msg_peek(frame, len, &type, &req_id) == 0) {
            combproc_send_error(cp, id, id_len, req_id, r, "bad message");
        }
        return;
    }
    if (m.type == PROTO_MSG_PING) {
        struct proto_msg pong;
        memset(&pong, 0, sizeof(pong));
        pong.type = PROTO_MSG_PONG;
        pong.req_id = m.req_id;
        combproc_send(cp, id, id_len, &pong);
        return;
    }
    if (m.type != PROTO_MSG_OP_REQUEST) {
        combproc_send_error(cp, id, id_len, m.req_id, SPK_ERR_UNSUPPORTED, "not a request");
        return;
    }
    req = calloc(1, sizeof(*req));
    if (req == NULL) {
        combproc_send_error(cp, id, id_len, m.req_id, SPK_ERR_NOMEM, "no memory");
        return;
    }
    req->cp = cp;
    memcpy(req->id, id, id_len);
    req->id_len = id_len;
    req->req_id = m.req_id;
    if (comb_alg_is_sign((enum comb_alg)m.u.op_req.op)) {
        r = comb_sign(cp->comb, NULL, m.u.op_req.key_id, (enum comb_alg)m.u.op_req.op,
                      m.u.op_req.input, m.u.op_req.input_len, combproc_done, req);
    } else {
        struct comb_decrypt_params params;
        memset(&params, 0, sizeof(params));
        params.tls_version = m.u.op_req.client_version;
        r = comb_decrypt(cp->comb, NULL, m.u.op_req.key_id, (enum comb_alg)m.u.op_req.op,
                         m.u.op_req.input, m.u.op_req.input_len, &params, combproc_done, req);
    }
    OPENSSL_cleanse(&m, sizeof(m));
    if (r != 0) {
        cp->num_failed++;
        combproc_send_error(cp, id, id_len, req->req_id, r, comb_last_error(cp->comb));
        free(req);
    }
}

static void combproc_read_router(struct combproc *cp)
{
    static uint8_t frame[PROTO_MSG_MAX];
    uint8_t id[COMBPROC_ID_MAX];

    for (;;) {
        int more = 0;
        size_t more_len = sizeof(more);
        int id_len = zmq_recv(cp->router, id, sizeof(id), ZMQ_DONTWAIT);
        int n;

        if (id_len < 0) {
            return;
        }
        if (zmq_getsockopt(cp->router, ZMQ_RCVMORE, &more, &more_len) != 0 || !more) {
            continue;
        }
        n = zmq_recv(cp->router, frame, sizeof(frame), ZMQ_DONTWAIT);
        /* Skip any further frames of a malformed multipart message. */
        for (;;) {
            uint8_t junk[16];
            more = 0;
            if (zmq_getsockopt(cp->router, ZMQ_RCVMORE, &more, &more_len) != 0 || !more) {
                break;
            }
            more = 0;
            if (zmq_recv(cp->router, junk, sizeof(junk), ZMQ_DONTWAIT) < 0) {
                break;
            }
            n = -1;
        }
        if (n < 0 || (size_t)n > sizeof(frame) || (size_t)id_len > sizeof(id)) {
            continue;
        }
        combproc_handle(cp, id, (size_t)id_len, frame, (size_t)n);
        OPENSSL_cleanse(frame, (size_t)n);
    }
}

/* ---- start-up ------------------------------------------------------------------ */

static int combproc_read_record(struct proto_record *rec, const char *path, char *why,
                                size_t why_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    if ((r = spk_file_read(path, PROTO_FILE_MAX, &buf, &len)) != 0) {
        snprintf(why, why_len, "%s: %s", path, spk_strerror(r));
        return r;
    }
    r = proto_record_decode(rec, buf, len);
    spk_file_free(buf, len);
    if (r != 0) {
        snprintf(why, why_len, "%s: not a key record (%s)", path, spk_strerror(r));
    }
    return r;
}

static int combproc_read_share(struct proto_share_file *sf, const char *path, char *why,
                               size_t why_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    if ((r = spk_file_read(path, PROTO_FILE_MAX, &buf, &len)) != 0) {
        snprintf(why, why_len, "%s: %s", path, spk_strerror(r));
        return r;
    }
    r = proto_share_file_decode(sf, buf, len);
    spk_file_free(buf, len);
    if (r != 0) {
        snprintf(why, why_len, "%s: not a share file (%s)", path, spk_strerror(r));
    }
    return r;
}

/*
 * combproc_setup loads keys, local shares, file sources and holders into
 * cp->comb. Every key of the configuration's certificates is added; the
 * combiner's own share of a key is the share file whose holder is the
 * combiner key's name.
 */
static int combproc_setup(struct combproc *cp, char *why, size_t why_len)
{
    const struct edge_config *cfg = cp->cfg;
    static struct proto_record rec;
    static struct proto_share_file sf;
    static struct proto_share_file local;
    struct proto_holder_secret *other = NULL;
    struct combproc_holders *shared = NULL;
    size_t i, j;
    int r;

    if ((r = split_holder_secret_load(&cp->key, cfg->combiner_key)) != 0) {
        snprintf(why, why_len, "combiner-key %s: %s", cfg->combiner_key, spk_strerror(r));
        return r;
    }
    for (i = 0; i < cfg->num_certs; i++) {
        bool have_local = false;
        if ((r = combproc_read_record(&rec, cfg->certs[i].record_path, why, why_len)) != 0) {
            return r;
        }
        if (comb_has_key(cp->comb, rec.key_id)) {
            continue; /* two certificates for one key */
        }
        for (j = 0; j < cfg->num_shares && !have_local; j++) {
            if (cfg->shares[j].key_path[0] != '\0') {
                continue;
            }
            if ((r = combproc_read_share(&sf, cfg->shares[j].path, why, why_len)) != 0) {
                return r;
            }
            if (sodium_memcmp(sf.key_id, rec.key_id, PROTO_KEY_ID_LEN) == 0) {
                local = sf;
                have_local = true;
            }
        }
        r = comb_add_key(cp->comb, &rec, have_local ? &local : NULL, have_local ? cp->key : NULL);
        if (r != 0) {
            snprintf(why, why_len, "%s: %s", cfg->certs[i].record_path, comb_last_error(cp->comb));
            return r;
        }
    }
    /* Share files of other holders, opened here: tests and drills only. */
    for (j = 0; j < cfg->num_shares; j++) {
        struct comb_file_source *fs;
        size_t k;
        if (cfg->shares[j].key_path[0] == '\0') {
            continue;
        }
        for (k = 0; k < j; k++) {
            if (strcmp(cfg->shares[k].key_path, cfg->shares[j].key_path) == 0) {
                break;
            }
        }
        if (k < j) {
            continue; /* this key file's source was made with the first of its shares */
        }
        if ((r = split_holder_secret_load(&other, cfg->shares[j].key_path)) != 0) {
            snprintf(why, why_len, "share key %s: %s", cfg->shares[j].key_path, spk_strerror(r));
            return r;
        }
        fs = comb_file_source_new(other);
        spk_secret_free(other);
        other = NULL;
        if (fs == NULL) {
            snprintf(why, why_len, "file source: no memory");
            return SPK_ERR_NOMEM;
        }
        for (k = j; k < cfg->num_shares; k++) {
            if (strcmp(cfg->shares[k].key_path, cfg->shares[j].key_path) != 0) {
                continue;
            }
            if ((r = combproc_read_share(&sf, cfg->shares[k].path, why, why_len)) != 0 ||
                (r = comb_file_source_add_share(fs, &sf, true)) != 0) {
                if (why[0] == '\0') {
                    snprintf(why, why_len, "%s: %s", cfg->shares[k].path, spk_strerror(r));
                }
                comb_file_source_free(fs);
                return r;
            }
        }
        if ((r = comb_add_file_source(cp->comb, NULL, NULL, fs)) != 0) {
            snprintf(why, why_len, "file source %s: %s", cfg->shares[j].key_path,
                     comb_last_error(cp->comb));
            return r;
        }
    }
    if (cfg->num_holders == 0) {
        return 0;
    }
    shared = calloc(1, sizeof(*shared));
    if (shared == NULL) {
        return SPK_ERR_NOMEM;
    }
    shared->client = sh_client_new(cp->zctx, cp->key, combproc_sh_result, cp->ponged);
    cp->holders = shared->client;
    if (shared->client == NULL) {
        free(shared);
        snprintf(why, why_len, "cannot make the share-holder client");
        return SPK_ERR_INTERNAL;
    }
    for (i = 0; i < cfg->num_holders; i++) {
        struct combproc_holder_src *s = calloc(1, sizeof(*s));
        size_t idx = 0;
        if (s == NULL) {
            r = SPK_ERR_NOMEM;
        } else {
            r = sh_client_add_holder(shared->client, &idx, cfg->holders[i].name,
                                     cfg->holders[i].endpoint, cfg->holders[i].curve_pk);
        }
        if (r != 0) {
            free(s);
            if (shared->refs == 0) {
                sh_client_free(shared->client);
                free(shared);
            }
            snprintf(why, why_len, "holder %s at %s: %s", cfg->holders[i].name,
                     cfg->holders[i].endpoint, spk_strerror(r));
            return r;
        }
        s->shared = shared;
        s->holder = idx;
        s->first = (i == 0);
        s->timeout_ms = (int)cfg->share_timeout_ms;
        shared->refs++;
        if ((r = comb_add_source(cp->comb, NULL, cfg->holders[i].name, &combproc_holder_ops, s)) !=
            0) {
            snprintf(why, why_len, "holder %s: %s", cfg->holders[i].name, spk_strerror(r));
            return r;
        }
    }
    return 0;
}

/*
 * combproc_warm_up waits (up to |ms|) until every holder answered a PING, so
 * that the first handshakes after a (re)start do not find the CURVE sessions
 * still being set up. Holders that stay silent are reported, not fatal: a
 * dead holder costs nothing while k shares are reachable.
 */
static void combproc_warm_up(struct combproc *cp, unsigned ms)
{
    uint64_t deadline = edge_now_ms() + ms;
    size_t i, num = cp->cfg->num_holders;
    bool all = false;

    while (cp->holders != NULL && !all && edge_now_ms() < deadline) {
        all = true;
        for (i = 0; i < num; i++) {
            uint64_t id;
            if (!cp->ponged[i]) {
                all = false;
                if (sh_client_ping(cp->holders, &id, i, 200, NULL) != 0) {
                    continue; /* not connected yet: ZMQ_IMMEDIATE refused it */
                }
            }
        }
        if (!all) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            if (sh_client_wait(cp->holders, 100) != 0 || sh_client_pending(cp->holders) == 0) {
                nanosleep(&ts, NULL);
            }
        }
    }
    for (i = 0; cp->holders != NULL && i < num; i++) {
        if (!cp->ponged[i]) {
            combproc_log("holder %s at %s does not answer yet", cp->cfg->holders[i].name,
                         cp->cfg->holders[i].endpoint);
        }
    }
}

int edge_combproc_run(const struct edge_config *cfg, bool allow_unlocked)
{
    struct combproc cp;
    struct comb_config ccfg;
    char why[4096] = "";
    sigset_t set;
    int64_t maxmsg = PROTO_MSG_MAX;
    int zero = 0;
    int status = 1;
    int r;

    memset(&cp, 0, sizeof(cp));
    cp.cfg = cfg;
    cp.sigfd = -1;
    if (spk_mem_init() != 0) {
        /* OpenSSL allocated before us: its frees are not wiped. Say so, go on. */
        combproc_log("%s", "warning: OpenSSL allocation hooks not installed");
    }
    if ((r = spk_process_harden(allow_unlocked || cfg->allow_unlocked, why, sizeof(why))) != 0) {
        combproc_log("%s", why);
        return 1;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (cp.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        combproc_log("signalfd: %s", strerror(errno));
        return 1;
    }
    comb_config_init(&ccfg);
    ccfg.timeout_ms = cfg->op_timeout_ms;
    cp.zctx = zmq_ctx_new();
    cp.comb = comb_new(&ccfg);
    if (cp.zctx == NULL || cp.comb == NULL) {
        combproc_log("%s", "cannot allocate the combiner (locked memory?)");
        goto out;
    }
    if ((r = combproc_setup(&cp, why, sizeof(why))) != 0) {
        combproc_log("%s", why);
        goto out;
    }
    combproc_warm_up(&cp, 1500);
    cp.router = zmq_socket(cp.zctx, ZMQ_ROUTER);
    if (cp.router == NULL || zmq_setsockopt(cp.router, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(cp.router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0 ||
        zmq_bind(cp.router, cfg->combiner_endpoint) != 0) {
        combproc_log("cannot bind %s", cfg->combiner_endpoint);
        goto out;
    }
    fprintf(stderr, "combiner: serving %s (%zu key(s), %zu holder(s), memory %s)\n",
            cfg->combiner_endpoint, cfg->num_certs, cfg->num_holders,
            spk_memory_locked() ? "locked" : "NOT locked");
    for (;;) {
        zmq_pollitem_t items[COMBPROC_POLL_MAX];
        size_t n = 0;
        long wait = comb_timeout_ms(cp.comb);
        struct signalfd_siginfo si;

        items[n++] = (zmq_pollitem_t){cp.router, 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){NULL, cp.sigfd, ZMQ_POLLIN, 0};
        n += comb_poll_items(cp.comb, items + n, COMBPROC_POLL_MAX - n);
        if (wait < 0 || wait > 1000) {
            wait = 1000;
        }
        if (zmq_poll(items, (int)n, wait) < 0 && errno != EINTR) {
            combproc_log("poll: %s", zmq_strerror(errno));
            goto out;
        }
        if (read(cp.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            break;
        }
        if (getppid() == 1) {
            break; /* the edge is gone */
        }
        combproc_read_router(&cp);
        if ((r = comb_process(cp.comb)) != 0) {
            combproc_log("process: %s", spk_strerror(r));
        }
    }
    fprintf(stderr, "combiner: stopping (%llu ok, %llu failed)\n", (unsigned long long)cp.num_ok,
            (unsigned long long)cp.num_failed);
    status = 0;
out:
    if (cp.router != NULL) {
        zmq_close(cp.router);
    }
    comb_free(cp.comb);
    spk_secret_free(cp.key);
    if (cp.zctx != NULL) {
        zmq_ctx_term(cp.zctx);
    }
    if (cp.sigfd >= 0) {
        close(cp.sigfd);
    }
    return status;
}
