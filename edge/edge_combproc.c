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

struct combproc_gen;
static void combproc_gen_holder_result(struct combproc_gen *g, const struct sh_result *res);

static void combproc_sh_result(void *ctx, const struct sh_result *res)
{
    struct comb_fetch *fetch = res->user;
    struct comb_share_info info;

    combproc_gen_holder_result(ctx, res);
    if (fetch == NULL) {
        return; /* a PING */
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
                          fetch->op_count, fetch->input_digest, fetch->out_y, fetch->out_len,
                          s->timeout_ms, fetch);
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

/*
 * struct combproc_gen: everything one configuration made: the combiner
 * library context with its keys and local shares, the combiner's key, the
 * holder client. SIGHUP builds a new generation beside the serving one; it
 * takes over once its holders answered (or after a short wait), and the old
 * one finishes the operations it has before it is freed.
 */
struct combproc_gen {
    const struct edge_config *cfg;
    struct edge_config *owned_cfg; /* cfg when it came from a reload */
    struct comb_ctx *comb;
    struct proto_holder_secret *key; /* the combiner's key file (secret memory) */
    struct sh_client *holders;       /* owned by the holder sources */
    bool ponged[EDGE_HOLDER_MAX];
    uint64_t pinged_ms[EDGE_HOLDER_MAX];
    struct edge_hist holder_latency[EDGE_HOLDER_MAX];
    uint64_t warm_deadline_ms;
};

#define COMBPROC_MSLOTS 8

/* A metrics scrape over the ZMQ_STREAM socket: its peer id and request. */
struct combproc_mslot {
    uint8_t id[COMBPROC_ID_MAX];
    size_t id_len;
    char req[1024];
    size_t req_len;
    bool used;
};

struct combproc {
    void *zctx;
    void *router;
    void *mstream; /* combiner-metrics, or NULL */
    struct combproc_gen *cur;
    struct combproc_gen *next; /* warming up after SIGHUP */
    struct combproc_gen *old;  /* draining after a switch */
    int sigfd;
    uint64_t num_ok, num_failed;
    uint64_t reloads_ok, reloads_failed;
    struct combproc_mslot mslots[COMBPROC_MSLOTS];
    struct edge_text mtext, mout;
};

/* One request waiting for the combiner: who asked, under which id. */
struct combproc_req {
    struct combproc *cp;
    uint8_t id[COMBPROC_ID_MAX];
    size_t id_len;
    uint64_t req_id;
};

static void combproc_gen_holder_result(struct combproc_gen *g, const struct sh_result *res)
{
    if (res->holder >= EDGE_HOLDER_MAX) {
        return;
    }
    if (res->user == NULL) {
        if (res->status == 0 && res->type == PROTO_MSG_PONG) {
            g->ponged[res->holder] = true;
        }
        return;
    }
    if (res->status == 0) {
        edge_hist_observe(&g->holder_latency[res->holder], (double)res->latency_us / 1e6);
    }
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
            spk_log("combiner", "operation failed: %s", res->detail);
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
    struct comb_ctx *comb = cp->cur->comb;
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
    if (m.type == PROTO_MSG_ERROR) {
        return; /* never answered: two peers that answered errors would trade them forever */
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
        r = comb_sign(comb, NULL, m.u.op_req.key_id, (enum comb_alg)m.u.op_req.op, m.u.op_req.input,
                      m.u.op_req.input_len, combproc_done, req);
    } else {
        struct comb_decrypt_params params;
        memset(&params, 0, sizeof(params));
        params.tls_version = m.u.op_req.client_version;
        r = comb_decrypt(comb, NULL, m.u.op_req.key_id, (enum comb_alg)m.u.op_req.op,
                         m.u.op_req.input, m.u.op_req.input_len, &params, combproc_done, req);
    }
    OPENSSL_cleanse(&m, sizeof(m));
    if (r != 0) {
        cp->num_failed++;
        combproc_send_error(cp, id, id_len, req->req_id, r, comb_last_error(comb));
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

/* ---- metrics (combiner-metrics) ------------------------------------------------ */

static void combproc_text_summary(struct edge_text *t, const char *name, const char *help,
                                  const struct comb_timing *tm)
{
    edge_text_printf(t,
                     "# HELP %s %s The sum is estimated from the window's mean.\n# TYPE %s "
                     "summary\n%s{quantile=\"0.5\"} %.6f\n"
                     "%s{quantile=\"0.99\"} %.6f\n%s_sum %.6f\n%s_count %llu\n"
                     "# HELP %s_max The largest sample in the window.\n# TYPE %s_max gauge\n"
                     "%s_max %.6f\n",
                     name, help, name, name, tm->p50_us / 1e6, name, tm->p99_us / 1e6, name,
                     tm->mean_us * (double)tm->count / 1e6, name, (unsigned long long)tm->count,
                     name, name, name, tm->max_us / 1e6);
}

/* combproc_lifetime_histogram: every key lifetime since start or reload,
 * in the library's fixed buckets, as a Prometheus histogram. */
static void combproc_lifetime_histogram(struct edge_text *t, const struct comb_stats *st)
{
    static const unsigned bounds_us[COMB_LIFETIME_NUM_BOUNDS] = COMB_LIFETIME_BOUNDS_US;
    uint64_t cumulative = 0;
    size_t i;

    edge_text_printf(t, "# HELP spk_combiner_key_lifetime_seconds How long a whole key existed "
                        "in memory per reconstruction (reconstruction start to wipe end).\n"
                        "# TYPE spk_combiner_key_lifetime_seconds histogram\n");
    for (i = 0; i < COMB_LIFETIME_NUM_BOUNDS; i++) {
        cumulative += st->lifetime_buckets[i];
        edge_text_printf(t, "spk_combiner_key_lifetime_seconds_bucket{le=\"%g\"} %llu\n",
                         bounds_us[i] / 1e6, (unsigned long long)cumulative);
    }
    cumulative += st->lifetime_buckets[COMB_LIFETIME_NUM_BOUNDS];
    edge_text_printf(t,
                     "spk_combiner_key_lifetime_seconds_bucket{le=\"+Inf\"} %llu\n"
                     "spk_combiner_key_lifetime_seconds_sum %.6f\n"
                     "spk_combiner_key_lifetime_seconds_count %llu\n",
                     (unsigned long long)cumulative, (double)st->lifetime_ns_sum / 1e9,
                     (unsigned long long)cumulative);
}

/*
 * combproc_metrics_render: the combiner's counters. The library's counters
 * and timings belong to the serving generation and start again at zero after
 * a reload (Prometheus treats that as a counter reset).
 */
static void combproc_metrics_render(struct combproc *cp, struct edge_text *t)
{
    const struct combproc_gen *g = cp->cur;
    struct comb_stats st;
    size_t i, n;

    comb_stats_get(g->comb, &st);
    edge_text_reset(t);
    edge_text_printf(t,
                     "# HELP spk_combiner_operations_total Private-key operations answered, "
                     "by result.\n# TYPE spk_combiner_operations_total counter\n"
                     "spk_combiner_operations_total{result=\"ok\"} %llu\n"
                     "spk_combiner_operations_total{result=\"failed\"} %llu\n"
                     "# HELP spk_combiner_operations_in_flight Operations queued or waiting "
                     "for shares.\n# TYPE spk_combiner_operations_in_flight gauge\n"
                     "spk_combiner_operations_in_flight %zu\n"
                     "# HELP spk_combiner_reconstructions_total Keys rebuilt from shares "
                     "(one per batch of operations).\n"
                     "# TYPE spk_combiner_reconstructions_total counter\n"
                     "spk_combiner_reconstructions_total %llu\n"
                     "# HELP spk_combiner_shares_total Shares received, by fate: accepted, "
                     "rejected by the record's checks (commitment, split, index), or an error "
                     "or timeout instead of a share.\n"
                     "# TYPE spk_combiner_shares_total counter\n"
                     "spk_combiner_shares_total{result=\"accepted\"} %llu\n"
                     "spk_combiner_shares_total{result=\"rejected\"} %llu\n"
                     "spk_combiner_shares_total{result=\"error\"} %llu\n"
                     "# HELP spk_combiner_reloads_total Configuration reloads (SIGHUP).\n"
                     "# TYPE spk_combiner_reloads_total counter\n"
                     "spk_combiner_reloads_total{result=\"ok\"} %llu\n"
                     "spk_combiner_reloads_total{result=\"failed\"} %llu\n",
                     (unsigned long long)cp->num_ok, (unsigned long long)cp->num_failed,
                     comb_pending(g->comb), (unsigned long long)st.batches,
                     (unsigned long long)st.shares_good, (unsigned long long)st.shares_bad,
                     (unsigned long long)st.shares_error, (unsigned long long)cp->reloads_ok,
                     (unsigned long long)cp->reloads_failed);
    combproc_lifetime_histogram(t, &st);
    combproc_text_summary(t, "spk_combiner_key_lifetime_window_seconds",
                          "How long a whole key existed in memory per reconstruction "
                          "(reconstruction start to wipe end; recent window).",
                          &st.lifetime);
    combproc_text_summary(t, "spk_combiner_operation_seconds",
                          "Request to answer inside the combiner (recent window).", &st.total);
    combproc_text_summary(t, "spk_combiner_gather_seconds",
                          "First share request to k-th good share (recent window).", &st.gather);
    n = comb_num_sources(g->comb);
    edge_text_printf(t, "# HELP spk_combiner_source_requests_total Share requests per source "
                        "(holders, the local share, share files).\n"
                        "# TYPE spk_combiner_source_requests_total counter\n");
    for (i = 0; i < n; i++) {
        struct comb_source_stats ss;
        if (comb_source_stats(g->comb, i, &ss) == 0) {
            edge_text_printf(t, "spk_combiner_source_requests_total{source=\"%s\"} %llu\n", ss.name,
                             (unsigned long long)ss.requests);
        }
    }
    edge_text_printf(t, "# HELP spk_combiner_source_shares_rejected_total Shares from a source "
                        "that failed the record's checks (commitment, split id, index).\n"
                        "# TYPE spk_combiner_source_shares_rejected_total counter\n");
    for (i = 0; i < n; i++) {
        struct comb_source_stats ss;
        if (comb_source_stats(g->comb, i, &ss) == 0) {
            edge_text_printf(t, "spk_combiner_source_shares_rejected_total{source=\"%s\"} %llu\n",
                             ss.name, (unsigned long long)ss.bad);
        }
    }
    edge_text_printf(t, "# HELP spk_combiner_source_errors_total Errors and timeouts from a "
                        "source instead of a share.\n"
                        "# TYPE spk_combiner_source_errors_total counter\n");
    for (i = 0; i < n; i++) {
        struct comb_source_stats ss;
        if (comb_source_stats(g->comb, i, &ss) == 0) {
            edge_text_printf(t, "spk_combiner_source_errors_total{source=\"%s\"} %llu\n", ss.name,
                             (unsigned long long)ss.errors);
        }
    }
    edge_text_printf(t, "# HELP spk_combiner_holder_share_seconds Share request to share "
                        "answer, per share-holder.\n"
                        "# TYPE spk_combiner_holder_share_seconds histogram\n");
    for (i = 0; i < g->cfg->num_holders && i < EDGE_HOLDER_MAX; i++) {
        char labels[PROTO_NAME_MAX + 16];
        snprintf(labels, sizeof(labels), "holder=\"%s\"", g->cfg->holders[i].name);
        edge_text_hist(t, "spk_combiner_holder_share_seconds", labels, &g->holder_latency[i]);
    }
}

static void combproc_metrics_send(struct combproc *cp, const uint8_t *id, size_t id_len,
                                  const void *data, size_t len)
{
    if (zmq_send(cp->mstream, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)id_len) {
        (void)zmq_send(cp->mstream, data, len, ZMQ_DONTWAIT);
    }
}

/* combproc_read_metrics: ZMQ_STREAM gives [peer id][bytes]; empty bytes mean
 * a peer came or went. A complete request head is answered and the peer
 * disconnected (an empty frame to its id). */
static void combproc_read_metrics(struct combproc *cp)
{
    uint8_t id[COMBPROC_ID_MAX];
    char data[1024];

    for (;;) {
        struct combproc_mslot *slot = NULL;
        int id_len = zmq_recv(cp->mstream, id, sizeof(id), ZMQ_DONTWAIT);
        int n;
        size_t i;

        if (id_len < 0) {
            return;
        }
        n = zmq_recv(cp->mstream, data, sizeof(data), ZMQ_DONTWAIT);
        if (n < 0 || (size_t)id_len > sizeof(id)) {
            continue;
        }
        for (i = 0; i < COMBPROC_MSLOTS; i++) {
            if (cp->mslots[i].used && cp->mslots[i].id_len == (size_t)id_len &&
                sodium_memcmp(cp->mslots[i].id, id, (size_t)id_len) == 0) {
                slot = &cp->mslots[i];
                break;
            }
        }
        if (n == 0) {
            if (slot != NULL) {
                slot->used = false; /* the peer went away */
            }
            continue;
        }
        if (slot == NULL) {
            for (i = 0; i < COMBPROC_MSLOTS && cp->mslots[i].used; i++) {
            }
            if (i == COMBPROC_MSLOTS) {
                combproc_metrics_send(cp, id, (size_t)id_len, "", 0); /* busy: close */
                continue;
            }
            slot = &cp->mslots[i];
            memset(slot, 0, sizeof(*slot));
            slot->used = true;
            memcpy(slot->id, id, (size_t)id_len);
            slot->id_len = (size_t)id_len;
        }
        if ((size_t)n > sizeof(data)) {
            n = (int)sizeof(data);
        }
        if ((size_t)n > sizeof(slot->req) - slot->req_len) {
            slot->used = false;
            combproc_metrics_send(cp, id, (size_t)id_len, "", 0);
            continue;
        }
        memcpy(slot->req + slot->req_len, data, (size_t)n);
        slot->req_len += (size_t)n;
        combproc_metrics_render(cp, &cp->mtext);
        if (edge_http_answer(slot->req, slot->req_len, &cp->mtext, &cp->mout) == 1) {
            if (!cp->mout.failed) {
                combproc_metrics_send(cp, id, (size_t)id_len, cp->mout.buf, cp->mout.len);
            }
            combproc_metrics_send(cp, id, (size_t)id_len, "", 0);
            slot->used = false;
        }
    }
}

static int combproc_metrics_open(struct combproc *cp, const char *hostport)
{
    char ep[EDGE_HOSTPORT_MAX + 16];
    int zero = 0;

    /* ZeroMQ binds addresses, not host names. */
    if (strncmp(hostport, "localhost:", 10) == 0) {
        snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%s", hostport + 10);
    } else {
        snprintf(ep, sizeof(ep), "tcp://%s", hostport);
    }
    cp->mstream = zmq_socket(cp->zctx, ZMQ_STREAM);
    if (cp->mstream == NULL || zmq_setsockopt(cp->mstream, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_bind(cp->mstream, ep) != 0) {
        spk_log("combiner", "combiner-metrics %s: %s", hostport, zmq_strerror(zmq_errno()));
        return SPK_ERR_IO;
    }
    return 0;
}

/* ---- start-up ------------------------------------------------------------------ */

/*
 * combproc_read_file decodes the file |path| into *rec (a key record) or,
 * with rec NULL, into *sf (a share file); on failure |why| says which file
 * and what is wrong with it.
 */
static int combproc_read_file(const char *path, struct proto_record *rec,
                              struct proto_share_file *sf, char *why, size_t why_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    if ((r = spk_file_read(path, PROTO_FILE_MAX, &buf, &len)) != 0) {
        snprintf(why, why_len, "%s: %s", path, spk_strerror(r));
        return r;
    }
    r = rec != NULL ? proto_record_decode(rec, buf, len) : proto_share_file_decode(sf, buf, len);
    spk_file_free(buf, len);
    if (r != 0) {
        snprintf(why, why_len, "%s: not a %s (%s)", path, rec != NULL ? "key record" : "share file",
                 spk_strerror(r));
    }
    return r;
}

/*
 * combproc_setup loads keys, local shares, file sources and holders into
 * g->comb. Every key of the configuration's certificates is added; the
 * combiner's own share of a key is the share file whose holder is the
 * combiner key's name.
 */
static int combproc_setup(struct combproc *cp, struct combproc_gen *g, char *why, size_t why_len)
{
    const struct edge_config *cfg = g->cfg;
    static struct proto_record rec;
    static struct proto_share_file sf;
    static struct proto_share_file local;
    struct proto_holder_secret *other = NULL;
    struct combproc_holders *shared = NULL;
    size_t i, j;
    int r;

    if ((r = split_holder_secret_load(&g->key, cfg->combiner_key)) != 0) {
        snprintf(why, why_len, "combiner-key %s: %s", cfg->combiner_key, spk_strerror(r));
        return r;
    }
    for (i = 0; i < cfg->num_certs; i++) {
        bool have_local = false;
        if ((r = combproc_read_file(cfg->certs[i].record_path, &rec, NULL, why, why_len)) != 0) {
            return r;
        }
        if (comb_has_key(g->comb, rec.key_id)) {
            continue; /* two certificates for one key */
        }
        for (j = 0; j < cfg->num_shares && !have_local; j++) {
            if (cfg->shares[j].key_path[0] != '\0') {
                continue;
            }
            if ((r = combproc_read_file(cfg->shares[j].path, NULL, &sf, why, why_len)) != 0) {
                return r;
            }
            if (sodium_memcmp(sf.key_id, rec.key_id, PROTO_KEY_ID_LEN) == 0) {
                local = sf;
                have_local = true;
            }
        }
        r = comb_add_key(g->comb, &rec, have_local ? &local : NULL, have_local ? g->key : NULL);
        if (r != 0) {
            snprintf(why, why_len, "%s: %s", cfg->certs[i].record_path, comb_last_error(g->comb));
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
            if ((r = combproc_read_file(cfg->shares[k].path, NULL, &sf, why, why_len)) != 0 ||
                (r = comb_file_source_add_share(fs, &sf, true)) != 0) {
                if (why[0] == '\0') {
                    snprintf(why, why_len, "%s: %s", cfg->shares[k].path, spk_strerror(r));
                }
                comb_file_source_free(fs);
                return r;
            }
        }
        if ((r = comb_add_file_source(g->comb, NULL, NULL, fs)) != 0) {
            snprintf(why, why_len, "file source %s: %s", cfg->shares[j].key_path,
                     comb_last_error(g->comb));
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
    shared->client = sh_client_new(cp->zctx, g->key, combproc_sh_result, g);
    g->holders = shared->client;
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
                g->holders = NULL;
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
        if ((r = comb_add_source(g->comb, NULL, cfg->holders[i].name, &combproc_holder_ops, s)) !=
            0) {
            snprintf(why, why_len, "holder %s: %s", cfg->holders[i].name, spk_strerror(r));
            return r;
        }
    }
    return 0;
}

static void combproc_gen_free(struct combproc_gen *g)
{
    if (g == NULL) {
        return;
    }
    comb_free(g->comb); /* frees the holder sources, and with them the client */
    spk_secret_free(g->key);
    free(g->owned_cfg);
    free(g);
}

/* combproc_gen_new: a generation for |cfg|; |owned| (cfg or NULL) is freed with it. */
static struct combproc_gen *combproc_gen_new(struct combproc *cp, const struct edge_config *cfg,
                                             struct edge_config *owned, char *why, size_t why_len)
{
    struct combproc_gen *g = calloc(1, sizeof(*g));
    struct comb_config ccfg;

    if (g == NULL) {
        free(owned);
        snprintf(why, why_len, "no memory");
        return NULL;
    }
    g->cfg = cfg;
    g->owned_cfg = owned;
    comb_config_init(&ccfg);
    ccfg.timeout_ms = cfg->op_timeout_ms;
    g->comb = comb_new(&ccfg);
    if (g->comb == NULL) {
        snprintf(why, why_len, "cannot allocate the combiner (locked memory?)");
        combproc_gen_free(g);
        return NULL;
    }
    if (combproc_setup(cp, g, why, why_len) != 0) {
        combproc_gen_free(g);
        return NULL;
    }
    return g;
}

/*
 * combproc_gen_warm pings the holders that have not answered yet (again every
 * 200 ms: ZMQ_IMMEDIATE refuses a PING before the connection is up). True
 * once every holder answered, so that the first operations after a (re)start
 * do not find the CURVE sessions still being set up.
 */
static bool combproc_gen_warm(struct combproc_gen *g)
{
    uint64_t now = spk_now_ms();
    bool all = true;
    size_t i;

    for (i = 0; g->holders != NULL && i < g->cfg->num_holders; i++) {
        uint64_t id;
        if (g->ponged[i]) {
            continue;
        }
        all = false;
        if (now - g->pinged_ms[i] >= 200 &&
            sh_client_ping(g->holders, &id, i, (int)g->cfg->share_timeout_ms, NULL) == 0) {
            g->pinged_ms[i] = now;
        }
    }
    return all;
}

static void combproc_gen_report_silent(const struct combproc_gen *g)
{
    size_t i;

    for (i = 0; g->holders != NULL && i < g->cfg->num_holders; i++) {
        if (!g->ponged[i]) {
            spk_log("combiner", "holder %s at %s does not answer yet", g->cfg->holders[i].name,
                    g->cfg->holders[i].endpoint);
        }
    }
}

/*
 * combproc_warm_up waits (up to |ms|) until every holder of |g| answered a
 * PING. Holders that stay silent are reported, not fatal: a dead holder
 * costs nothing while k shares are reachable.
 */
static void combproc_warm_up(struct combproc_gen *g, unsigned ms)
{
    uint64_t deadline = spk_now_ms() + ms;

    while (g->holders != NULL && !combproc_gen_warm(g) && spk_now_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        if (sh_client_wait(g->holders, 50) != 0 || sh_client_pending(g->holders) == 0) {
            nanosleep(&ts, NULL);
        }
    }
    combproc_gen_report_silent(g);
}

/* combproc_reload: SIGHUP. The file is read again; a new generation warms up
 * beside the serving one, which goes on serving if anything is wrong. */
static void combproc_reload(struct combproc *cp)
{
    struct edge_config *cfg;
    char why[4096] = "";

    if (cp->next != NULL || cp->old != NULL) {
        spk_log("combiner", "reload: the previous one is still in progress; try again");
        return;
    }
    cfg = malloc(sizeof(*cfg));
    if (cfg == NULL) {
        cp->reloads_failed++;
        spk_log("combiner", "reload failed: no memory; serving the previous configuration");
        return;
    }
    edge_config_init(cfg);
    if (edge_config_load(cfg, cp->cur->cfg->path, why, sizeof(why)) != 0) {
        free(cfg);
        cp->reloads_failed++;
        spk_log("combiner", "reload failed: %s; serving the previous configuration", why);
        return;
    }
    if (strcmp(cfg->combiner_endpoint, cp->cur->cfg->combiner_endpoint) != 0) {
        spk_log("combiner", "reload: combiner-endpoint changes only with a restart");
    }
    cp->next = combproc_gen_new(cp, cfg, cfg, why, sizeof(why));
    if (cp->next == NULL) {
        cp->reloads_failed++;
        spk_log("combiner", "reload failed: %s; serving the previous configuration", why);
        return;
    }
    /* The old set serves meanwhile, so the new one may take its time: holders
     * behind slow links need a few round trips for their CURVE sessions. */
    cp->next->warm_deadline_ms =
        spk_now_ms() + (cfg->share_timeout_ms * 3 > 3000 ? cfg->share_timeout_ms * 3 : 3000);
    (void)combproc_gen_warm(cp->next);
}

static bool combproc_gen_any_ponged(const struct combproc_gen *g)
{
    size_t i;

    for (i = 0; i < g->cfg->num_holders && i < EDGE_HOLDER_MAX; i++) {
        if (g->ponged[i]) {
            return true;
        }
    }
    return g->cfg->num_holders == 0;
}

/*
 * combproc_reload_step: the warming generation takes over once every holder
 * answered; after the warm-up deadline once any did (a dead holder in the
 * new file must not block the reload); and at the latest 30 s after the
 * SIGHUP, whatever then. The old one is freed once its operations are
 * answered.
 */
static void combproc_reload_step(struct combproc *cp)
{
    uint64_t now = spk_now_ms();

    if (cp->next != NULL &&
        (combproc_gen_warm(cp->next) ||
         (now >= cp->next->warm_deadline_ms && combproc_gen_any_ponged(cp->next)) ||
         now >= cp->next->warm_deadline_ms + 30000)) {
        combproc_gen_report_silent(cp->next);
        cp->old = cp->cur;
        cp->cur = cp->next;
        cp->next = NULL;
        cp->reloads_ok++;
        spk_log("combiner", "reloaded: %zu certificate(s), %zu holder(s)", cp->cur->cfg->num_certs,
                cp->cur->cfg->num_holders);
    }
    if (cp->old != NULL && comb_pending(cp->old->comb) == 0) {
        combproc_gen_free(cp->old);
        cp->old = NULL;
    }
}

static size_t combproc_poll_gen(struct combproc_gen *g, zmq_pollitem_t *items, size_t cap,
                                long *wait)
{
    long w;

    if (g == NULL) {
        return 0;
    }
    w = comb_timeout_ms(g->comb);
    if (w >= 0 && (*wait < 0 || w < *wait)) {
        *wait = w;
    }
    return comb_poll_items(g->comb, items, cap);
}

static void combproc_process_gen(struct combproc_gen *g)
{
    int r;

    if (g != NULL && (r = comb_process(g->comb)) != 0) {
        spk_log("combiner", "process: %s", spk_strerror(r));
    }
}

int edge_combproc_run(const struct edge_config *cfg, bool allow_unlocked)
{
    struct combproc cp;
    char why[4096] = "";
    sigset_t set;
    int64_t maxmsg = PROTO_ZMQ_MAXMSGSIZE;
    int zero = 0;
    int status = 1;
    uint64_t drain_deadline = 0;
    /* Started by the edge: stop when it is gone. Started alone (`combiner
     * run` under an init system, parent pid 1): the parent never changes. */
    pid_t parent = getppid();
    int r;

    memset(&cp, 0, sizeof(cp));
    cp.sigfd = -1;
    if (spk_mem_init() != 0) {
        /* OpenSSL allocated before us: its frees are not wiped. Say so, go on. */
        spk_log("combiner", "%s", "warning: OpenSSL allocation hooks not installed");
    }
    if ((r = spk_process_harden(allow_unlocked || cfg->allow_unlocked, why, sizeof(why))) != 0) {
        spk_log("combiner", "%s", why);
        return 1;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (cp.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        spk_log("combiner", "signalfd: %s", strerror(errno));
        return 1;
    }
    cp.zctx = zmq_ctx_new();
    if (cp.zctx == NULL) {
        spk_log("combiner", "%s", "cannot make a ZeroMQ context");
        goto out;
    }
    /* The first generation uses the caller's configuration (not owned). */
    cp.cur = combproc_gen_new(&cp, cfg, NULL, why, sizeof(why));
    if (cp.cur == NULL) {
        spk_log("combiner", "%s", why);
        goto out;
    }
    combproc_warm_up(cp.cur, 1500);
    cp.router = zmq_socket(cp.zctx, ZMQ_ROUTER);
    if (cp.router == NULL || zmq_setsockopt(cp.router, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(cp.router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0 ||
        zmq_bind(cp.router, cfg->combiner_endpoint) != 0) {
        spk_log("combiner", "cannot bind %s", cfg->combiner_endpoint);
        goto out;
    }
    if (cfg->combiner_metrics[0] != '\0' &&
        combproc_metrics_open(&cp, cfg->combiner_metrics) != 0) {
        goto out;
    }
    fprintf(stderr, "combiner: serving %s (%zu key(s), %zu holder(s), memory %s)\n",
            cfg->combiner_endpoint, cfg->num_certs, cfg->num_holders,
            spk_memory_locked() ? "locked" : "NOT locked");
    for (;;) {
        zmq_pollitem_t items[COMBPROC_POLL_MAX];
        size_t n = 0;
        long wait = -1;
        struct signalfd_siginfo si;

        items[n++] = (zmq_pollitem_t){cp.router, 0, drain_deadline == 0 ? ZMQ_POLLIN : 0, 0};
        items[n++] = (zmq_pollitem_t){NULL, cp.sigfd, ZMQ_POLLIN, 0};
        if (cp.mstream != NULL) {
            items[n++] = (zmq_pollitem_t){cp.mstream, 0, ZMQ_POLLIN, 0};
        }
        n += combproc_poll_gen(cp.cur, items + n, COMBPROC_POLL_MAX - n, &wait);
        n += combproc_poll_gen(cp.next, items + n, COMBPROC_POLL_MAX - n, &wait);
        n += combproc_poll_gen(cp.old, items + n, COMBPROC_POLL_MAX - n, &wait);
        if (wait < 0 || wait > 1000) {
            wait = 1000;
        }
        if ((cp.next != NULL || drain_deadline != 0) && wait > 50) {
            wait = 50;
        }
        if (zmq_poll(items, (int)n, wait) < 0 && errno != EINTR) {
            spk_log("combiner", "poll: %s", zmq_strerror(errno));
            goto out;
        }
        while (read(cp.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo == SIGHUP) {
                combproc_reload(&cp);
            } else if (drain_deadline == 0) {
                /* Stop taking requests; answer the ones in flight. */
                drain_deadline = spk_now_ms() + cp.cur->cfg->op_timeout_ms + 500;
                spk_log("combiner", "draining %zu operation(s)", comb_pending(cp.cur->comb));
            }
        }
        if (getppid() != parent) {
            break; /* the edge is gone */
        }
        if (drain_deadline == 0) {
            combproc_read_router(&cp);
        }
        if (cp.mstream != NULL) {
            combproc_read_metrics(&cp);
        }
        combproc_process_gen(cp.cur);
        combproc_process_gen(cp.next);
        combproc_process_gen(cp.old);
        combproc_reload_step(&cp);
        if (drain_deadline != 0 && ((comb_pending(cp.cur->comb) == 0 && cp.old == NULL) ||
                                    spk_now_ms() >= drain_deadline)) {
            break;
        }
    }
    fprintf(stderr, "combiner: stopping (%llu ok, %llu failed)\n", (unsigned long long)cp.num_ok,
            (unsigned long long)cp.num_failed);
    status = 0;
out:
    /* The libraries' contexts go first: their sources close sockets of zctx. */
    combproc_gen_free(cp.next);
    combproc_gen_free(cp.old);
    combproc_gen_free(cp.cur);
    if (cp.router != NULL) {
        /* The answers of a drain were only queued: give them up to a second to
         * reach the edge instead of the linger 0 that start-up chose. */
        int flush_ms = status == 0 ? 1000 : 0;

        (void)zmq_setsockopt(cp.router, ZMQ_LINGER, &flush_ms, sizeof(flush_ms));
        zmq_close(cp.router);
    }
    if (cp.mstream != NULL) {
        zmq_close(cp.mstream);
    }
    edge_text_free(&cp.mtext);
    edge_text_free(&cp.mout);
    if (cp.zctx != NULL) {
        zmq_ctx_term(cp.zctx);
    }
    if (cp.sigfd >= 0) {
        close(cp.sigfd);
    }
    return status;
}
