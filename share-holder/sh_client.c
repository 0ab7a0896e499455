#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zmq.h>

#include "share-holder/internal.h"
#include "base/base.h"

/*
 * The client side of the share protocol: one DEALER per holder, requests
 * matched to replies by request id in a fixed table, and shares decrypted
 * from the frame straight into the caller's locked buffer.
 */

/*
 * A holder that comes back must be used again within a second (the issue's
 * promise), so ZeroMQ's reconnect back-off stops at 250 ms instead of
 * doubling to seconds; a refused TCP connect on a LAN costs next to nothing.
 */
#define RECONNECT_IVL_MS 100
#define RECONNECT_IVL_MAX_MS 250
#define KX_SK_AT 0
#define RX_AT crypto_kx_SECRETKEYBYTES
#define HOLDER_SECRET_LEN (crypto_kx_SECRETKEYBYTES + crypto_kx_SESSIONKEYBYTES)

_Static_assert(SH_CLIENT_PENDING_MAX <= UINT16_MAX + 1, "live slots are uint16_t");

struct sh_pending {
    bool used;
    uint64_t req_id;
    size_t holder;
    uint8_t type; /* what was sent: PROTO_MSG_SHARE_REQUEST, SIGSHARE_REQUEST or PING */
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t *out_y;
    size_t out_cap;
    uint64_t sent_us;
    uint64_t deadline_us;
    void *user;
    size_t live_at; /* position in sh_client.live while used */
};

struct sh_holder {
    void *sock;
    uint8_t server_pk[PROTO_X25519_LEN];
    uint8_t kx_pk[crypto_kx_PUBLICKEYBYTES];
    uint8_t session_pk[PROTO_X25519_LEN]; /* the holder's side of |rx| */
    bool have_session;
    /* zmq_poll found nothing to read (sh_client_poll_result): the next
     * sh_client_process does not ask the socket again */
    bool idle;
    uint8_t *secret; /* kx secret key, then rx session key: spk_secret_new */
    struct sh_holder_health health;
};

struct sh_client {
    void *ctx;
    uint8_t curve_pk[PROTO_X25519_LEN];
    uint8_t *curve_sk; /* spk_secret_new */
    sh_result_cb cb;
    void *cb_ctx;
    struct sh_holder *holders;
    size_t num_holders;
    struct sh_pending *pending; /* SH_CLIENT_PENDING_MAX, slot = req_id % max */
    size_t num_pending;
    /* the slots in use, in no order: the deadline scans walk these, not the
     * whole table (4096 slots, 300 KB, twice per reply before) */
    uint16_t *live;
    zmq_pollitem_t *items; /* SH_CLIENT_HOLDERS_MAX, for sh_client_wait */
    uint64_t next_req_id;
    uint8_t frame[PROTO_MSG_MAX];
    struct proto_msg msg;
};

struct sh_client *sh_client_new(void *zmq_ctx, const struct proto_holder_secret *me,
                                sh_result_cb cb, void *cb_ctx)
{
    struct sh_client *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->ctx = zmq_ctx;
    c->cb = cb;
    c->cb_ctx = cb_ctx;
    memcpy(c->curve_pk, me->pub.curve_pk, PROTO_X25519_LEN);
    c->curve_sk = spk_secret_new(PROTO_X25519_LEN);
    c->holders = calloc(SH_CLIENT_HOLDERS_MAX, sizeof(*c->holders));
    c->pending = calloc(SH_CLIENT_PENDING_MAX, sizeof(*c->pending));
    c->live = calloc(SH_CLIENT_PENDING_MAX, sizeof(*c->live));
    c->items = calloc(SH_CLIENT_HOLDERS_MAX, sizeof(*c->items));
    if (c->curve_sk == NULL || c->holders == NULL || c->pending == NULL || c->live == NULL ||
        c->items == NULL) {
        sh_client_free(c);
        return NULL;
    }
    memcpy(c->curve_sk, me->curve_sk, PROTO_X25519_LEN);
    /* request ids start at a random point so two runs never mix replies */
    randombytes_buf(&c->next_req_id, sizeof(c->next_req_id));
    c->next_req_id >>= 2;
    return c;
}

void sh_client_free(struct sh_client *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->num_holders; i++) {
        if (c->holders[i].sock != NULL) {
            zmq_close(c->holders[i].sock);
        }
        spk_secret_free(c->holders[i].secret);
    }
    spk_secret_free(c->curve_sk);
    free(c->holders);
    free(c->pending);
    free(c->live);
    free(c->items);
    sodium_memzero(c, sizeof(*c));
    free(c);
}

int sh_client_add_holder(struct sh_client *c, size_t *out_index, const char *name,
                         const char *endpoint, const uint8_t server_pk[PROTO_X25519_LEN])
{
    struct sh_holder *h;
    int zero = 0;
    int one = 1;
    int ivl = RECONNECT_IVL_MS;
    int ivl_max = RECONNECT_IVL_MAX_MS;
    int64_t max = PROTO_ZMQ_MAXMSGSIZE;

    if (c->num_holders >= SH_CLIENT_HOLDERS_MAX || name == NULL || strlen(name) > PROTO_NAME_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    h = &c->holders[c->num_holders];
    memset(h, 0, sizeof(*h));
    (void)snprintf(h->health.name, sizeof(h->health.name), "%s", name);
    memcpy(h->server_pk, server_pk, PROTO_X25519_LEN);
    h->secret = spk_secret_new(HOLDER_SECRET_LEN);
    if (h->secret == NULL) {
        return SPK_ERR_NOMEM;
    }
    crypto_kx_keypair(h->kx_pk, &h->secret[KX_SK_AT]);
    h->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (h->sock == NULL ||
        zmq_setsockopt(h->sock, ZMQ_CURVE_SERVERKEY, server_pk, PROTO_X25519_LEN) != 0 ||
        zmq_setsockopt(h->sock, ZMQ_CURVE_PUBLICKEY, c->curve_pk, PROTO_X25519_LEN) != 0 ||
        zmq_setsockopt(h->sock, ZMQ_CURVE_SECRETKEY, c->curve_sk, PROTO_X25519_LEN) != 0 ||
        zmq_setsockopt(h->sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0 ||
        zmq_setsockopt(h->sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(h->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl)) != 0 ||
        zmq_setsockopt(h->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max)) != 0 ||
        /* queue nothing for a holder that is not connected: fail fast instead */
        zmq_setsockopt(h->sock, ZMQ_IMMEDIATE, &one, sizeof(one)) != 0 ||
        zmq_connect(h->sock, endpoint) != 0) {
        if (h->sock != NULL) {
            zmq_close(h->sock);
        }
        spk_secret_free(h->secret);
        memset(h, 0, sizeof(*h));
        return SPK_ERR_INVALID_ARG;
    }
    *out_index = c->num_holders++;
    return 0;
}

size_t sh_client_num_holders(const struct sh_client *c)
{
    return c->num_holders;
}

size_t sh_client_pending(const struct sh_client *c)
{
    return c->num_pending;
}

/* pending_new takes a request id whose slot is free. */
static struct sh_pending *pending_new(struct sh_client *c)
{
    if (c->num_pending >= SH_CLIENT_PENDING_MAX) {
        return NULL;
    }
    for (;;) {
        uint64_t id = ++c->next_req_id;
        struct sh_pending *p = &c->pending[id % SH_CLIENT_PENDING_MAX];

        if (id != 0 && !p->used) {
            memset(p, 0, sizeof(*p));
            p->req_id = id;
            return p;
        }
    }
}

/* pending_use marks |p| used and lists it in c->live. */
static void pending_use(struct sh_client *c, struct sh_pending *p)
{
    p->used = true;
    p->live_at = c->num_pending;
    c->live[c->num_pending++] = (uint16_t)(p - c->pending);
}

/* pending_release frees |p|'s slot; the last live slot takes its place. */
static void pending_release(struct sh_client *c, struct sh_pending *p)
{
    uint16_t last = c->live[--c->num_pending];

    c->live[p->live_at] = last;
    c->pending[last].live_at = p->live_at;
    p->used = false;
}

static struct sh_pending *pending_find(struct sh_client *c, uint64_t req_id)
{
    struct sh_pending *p = &c->pending[req_id % SH_CLIENT_PENDING_MAX];

    return p->used && p->req_id == req_id ? p : NULL;
}

/* send_msg encodes c->msg and sends it to |holder| without blocking. */
static int send_msg(struct sh_client *c, struct sh_holder *h)
{
    size_t len = 0;
    int r;

    if ((r = proto_msg_encode(c->frame, sizeof(c->frame), &len, &c->msg)) != 0) {
        return r;
    }
    if (zmq_send(h->sock, c->frame, len, ZMQ_DONTWAIT) < 0) {
        h->health.num_unavailable++;
        h->health.last_error = SPK_ERR_UNAVAILABLE;
        return SPK_ERR_UNAVAILABLE;
    }
    return 0;
}

/* What a request carries besides its type; NULL fields for a PING. */
struct sh_request_args {
    const uint8_t *key_id;
    uint8_t op;
    unsigned op_count;     /* SHARE_REQUEST */
    const uint8_t *digest; /* SHARE_REQUEST: the inputs' SHA-256; SIGSHARE: the digest */
    size_t digest_len;     /* SIGSHARE_REQUEST */
    const uint8_t *salt;   /* SIGSHARE_REQUEST (PSS) */
    size_t salt_len;
};

static int request_start(struct sh_client *c, uint64_t *out_req_id, size_t holder, uint8_t type,
                         const struct sh_request_args *a, uint8_t *out_y, size_t out_cap,
                         int timeout_ms, void *user)
{
    struct sh_holder *h;
    struct sh_pending *p;
    int r;

    if (holder >= c->num_holders || timeout_ms < 0) {
        return SPK_ERR_INVALID_ARG;
    }
    h = &c->holders[holder];
    p = pending_new(c);
    if (p == NULL) {
        return SPK_ERR_NOMEM;
    }
    memset(&c->msg, 0, sizeof(c->msg));
    c->msg.type = type;
    c->msg.req_id = p->req_id;
    if (type == PROTO_MSG_SHARE_REQUEST) {
        memcpy(c->msg.u.share_req.key_id, a->key_id, PROTO_KEY_ID_LEN);
        c->msg.u.share_req.op = a->op;
        c->msg.u.share_req.op_count = (uint16_t)a->op_count;
        memcpy(c->msg.u.share_req.input_digest, a->digest, PROTO_SHA256_LEN);
        memcpy(c->msg.u.share_req.requester_pk, h->kx_pk, PROTO_X25519_LEN);
        memcpy(p->key_id, a->key_id, PROTO_KEY_ID_LEN);
    } else if (type == PROTO_MSG_SIGSHARE_REQUEST) {
        memcpy(c->msg.u.sigshare_req.key_id, a->key_id, PROTO_KEY_ID_LEN);
        c->msg.u.sigshare_req.op = a->op;
        memcpy(c->msg.u.sigshare_req.digest, a->digest, a->digest_len);
        c->msg.u.sigshare_req.digest_len = a->digest_len;
        if (a->salt_len > 0) {
            memcpy(c->msg.u.sigshare_req.salt, a->salt, a->salt_len);
        }
        c->msg.u.sigshare_req.salt_len = a->salt_len;
        memcpy(p->key_id, a->key_id, PROTO_KEY_ID_LEN);
    }
    if ((r = send_msg(c, h)) != 0) {
        return r; /* the slot was never marked used */
    }
    p->holder = holder;
    p->type = type;
    p->out_y = out_y;
    p->out_cap = out_cap;
    p->sent_us = spk_now_us();
    p->deadline_us = p->sent_us + (uint64_t)timeout_ms * 1000u;
    p->user = user;
    pending_use(c, p);
    *out_req_id = p->req_id;
    return 0;
}

int sh_client_request(struct sh_client *c, uint64_t *out_req_id, size_t holder,
                      const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op, unsigned op_count,
                      const uint8_t digest[PROTO_SHA256_LEN], uint8_t *out_y, size_t out_cap,
                      int timeout_ms, void *user)
{
    const struct sh_request_args a = {key_id, op, op_count, digest, PROTO_SHA256_LEN, NULL, 0};

    if (!proto_op_valid(op) || op_count < 1 || op_count > PROTO_OP_COUNT_MAX || out_y == NULL) {
        return SPK_ERR_INVALID_ARG;
    }
    return request_start(c, out_req_id, holder, PROTO_MSG_SHARE_REQUEST, &a, out_y, out_cap,
                         timeout_ms, user);
}

int sh_client_sigshare(struct sh_client *c, uint64_t *out_req_id, size_t holder,
                       const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op, const uint8_t *digest,
                       size_t digest_len, const uint8_t *salt, size_t salt_len, uint8_t *out,
                       size_t out_len, int timeout_ms, void *user)
{
    const struct sh_request_args a = {key_id, op, 1, digest, digest_len, salt, salt_len};

    if (!proto_op_valid(op) || digest == NULL || digest_len < 1 || digest_len > PROTO_DIGEST_MAX ||
        (salt == NULL && salt_len > 0) || salt_len > PROTO_DIGEST_MAX || out == NULL ||
        out_len < 1 || out_len > PROTO_BN_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    return request_start(c, out_req_id, holder, PROTO_MSG_SIGSHARE_REQUEST, &a, out, out_len,
                         timeout_ms, user);
}

int sh_client_request_all(struct sh_client *c, uint64_t *out_req_ids, size_t *out_num_sent,
                          const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op, unsigned op_count,
                          const uint8_t digest[PROTO_SHA256_LEN], uint8_t *const *out_ys,
                          size_t out_cap, int timeout_ms, void *user)
{
    size_t sent = 0;

    for (size_t i = 0; i < c->num_holders; i++) {
        out_req_ids[i] = 0;
        if (sh_client_request(c, &out_req_ids[i], i, key_id, op, op_count, digest, out_ys[i],
                              out_cap, timeout_ms, user) == 0) {
            sent++;
        } else {
            out_req_ids[i] = 0;
        }
    }
    *out_num_sent = sent;
    return sent > 0 ? 0 : SPK_ERR_UNAVAILABLE;
}

int sh_client_ping(struct sh_client *c, uint64_t *out_req_id, size_t holder, int timeout_ms,
                   void *user)
{
    const struct sh_request_args a = {NULL, 0, 0, NULL, 0, NULL, 0};

    return request_start(c, out_req_id, holder, PROTO_MSG_PING, &a, NULL, 0, timeout_ms, user);
}

void sh_client_cancel(struct sh_client *c, uint64_t req_id)
{
    struct sh_pending *p = pending_find(c, req_id);

    if (p != NULL) {
        pending_release(c, p);
    }
}

size_t sh_client_poll_items(const struct sh_client *c, zmq_pollitem_t *items, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < c->num_holders && n < cap; i++, n++) {
        memset(&items[n], 0, sizeof(items[n]));
        items[n].socket = c->holders[i].sock;
        items[n].events = ZMQ_POLLIN;
    }
    return n;
}

void sh_client_poll_result(struct sh_client *c, const zmq_pollitem_t *items, size_t num)
{
    for (size_t i = 0; i < c->num_holders && i < num; i++) {
        c->holders[i].idle = items[i].socket == c->holders[i].sock &&
                             !(items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR));
    }
}

long sh_client_timeout_ms(const struct sh_client *c)
{
    uint64_t now = spk_now_us();
    uint64_t first = UINT64_MAX;

    if (c->num_pending == 0) {
        return -1;
    }
    for (size_t i = 0; i < c->num_pending; i++) {
        const struct sh_pending *p = &c->pending[c->live[i]];

        if (p->deadline_us < first) {
            first = p->deadline_us;
        }
    }
    if (first <= now) {
        return 0;
    }
    return (long)((first - now + 999) / 1000);
}

/* finish ends |p| with |res| (status and share fields already set). */
static void finish(struct sh_client *c, struct sh_pending *p, struct sh_result *res)
{
    struct sh_holder_health *hh = &c->holders[p->holder].health;
    uint64_t lat = spk_now_us() - p->sent_us;

    res->holder = p->holder;
    res->req_id = p->req_id;
    res->user = p->user;
    res->latency_us = lat;
    if (res->status == 0) {
        hh->num_ok++;
    } else if (res->status == SPK_ERR_TIMEOUT) {
        hh->num_timeouts++;
        hh->last_error = res->status;
    } else {
        hh->num_errors++;
        hh->last_error = res->status;
    }
    if (res->status != SPK_ERR_TIMEOUT) {
        hh->last_latency_us = lat;
        hh->ewma_latency_us = hh->ewma_latency_us == 0
                                  ? lat
                                  : hh->ewma_latency_us - hh->ewma_latency_us / 8 + lat / 8;
    }
    pending_release(c, p);
    c->cb(c->cb_ctx, res);
}

/* open_share decrypts the sealed share of c->msg (the frame |frame|) into
 * p->out_y. */
static int open_share(struct sh_client *c, struct sh_holder *h, struct sh_pending *p,
                      const uint8_t *frame, size_t frame_len, struct sh_result *res)
{
    const struct proto_share_resp *resp = &c->msg.u.share_resp;
    uint8_t ad[PROTO_SHARE_AD_LEN];
    uint8_t tx[crypto_kx_SESSIONKEYBYTES];
    size_t y_len = resp->sealed_len - PROTO_AEAD_TAG_LEN;
    unsigned long long m_len = 0;
    int r = SPK_ERR_INTERNAL;

    if (sodium_memcmp(resp->key_id, p->key_id, PROTO_KEY_ID_LEN) != 0) {
        return SPK_ERR_MALFORMED; /* an answer about another key */
    }
    if (y_len > p->out_cap) {
        return SPK_ERR_INVALID_ARG;
    }
    if (!proto_share_ad(ad, frame, frame_len, resp)) {
        return SPK_ERR_MALFORMED;
    }
    if (!h->have_session || sodium_memcmp(h->session_pk, resp->session_pk, PROTO_X25519_LEN) != 0) {
        if (crypto_kx_client_session_keys(&h->secret[RX_AT], tx, h->kx_pk, &h->secret[KX_SK_AT],
                                          resp->session_pk) != 0) {
            r = SPK_ERR_UNSEAL;
            h->have_session = false;
            goto out;
        }
        memcpy(h->session_pk, resp->session_pk, PROTO_X25519_LEN);
        h->have_session = true;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(p->out_y, &m_len, NULL, resp->sealed,
                                                   resp->sealed_len, ad, sizeof(ad), resp->nonce,
                                                   &h->secret[RX_AT]) != 0 ||
        m_len != y_len) {
        sodium_memzero(p->out_y, p->out_cap);
        r = SPK_ERR_UNSEAL;
        goto out;
    }
    memcpy(res->key_id, resp->key_id, PROTO_KEY_ID_LEN);
    memcpy(res->split_id, resp->split_id, PROTO_SPLIT_ID_LEN);
    res->index = resp->index;
    res->field_bits = resp->field_bits;
    res->y = p->out_y;
    res->y_len = y_len;
    r = 0;
out:
    sodium_memzero(tx, sizeof(tx));
    return r;
}

/* take_sigshare copies the signature share of c->msg into p->out_y (and its
 * proof, if any, into |res|): it must be about the key asked for and exactly
 * as long as asked (the modulus). */
static int take_sigshare(struct sh_client *c, struct sh_pending *p, struct sh_result *res)
{
    const struct proto_sigshare_resp *resp = &c->msg.u.sigshare_resp;

    if (sodium_memcmp(resp->key_id, p->key_id, PROTO_KEY_ID_LEN) != 0 ||
        resp->share_len != p->out_cap) {
        return SPK_ERR_MALFORMED;
    }
    memcpy(p->out_y, resp->share, resp->share_len);
    memcpy(res->key_id, resp->key_id, PROTO_KEY_ID_LEN);
    res->index = resp->index;
    res->y = p->out_y;
    res->y_len = resp->share_len;
    res->has_proof = resp->has_proof;
    if (resp->has_proof) {
        memcpy(res->proof_c, resp->proof_c, PROTO_TSS_C_LEN);
        memcpy(res->proof_z, resp->proof_z, resp->share_len + PROTO_TSS_Z_EXTRA);
    }
    return 0;
}

/* reply_handle: one frame from holder |hi|. */
static void reply_handle(struct sh_client *c, size_t hi, const uint8_t *frame, size_t len)
{
    struct sh_holder *h = &c->holders[hi];
    struct sh_pending *p;
    struct sh_result res;

    if (proto_msg_decode(&c->msg, frame, len) != 0) {
        h->health.num_bad++;
        return;
    }
    p = pending_find(c, c->msg.req_id);
    if (p == NULL || p->holder != hi) {
        return; /* late, cancelled, or not ours */
    }
    memset(&res, 0, sizeof(res));
    res.type = c->msg.type;
    switch ((enum proto_msg_type)c->msg.type) {
    case PROTO_MSG_ERROR:
        res.status = proto_err_from_wire(c->msg.u.error.code);
        memcpy(res.text, c->msg.u.error.text, sizeof(res.text));
        break;
    case PROTO_MSG_PONG:
        res.status = p->type == PROTO_MSG_PING ? 0 : SPK_ERR_MALFORMED;
        break;
    case PROTO_MSG_SHARE_RESPONSE:
        res.status = p->type == PROTO_MSG_SHARE_REQUEST ? open_share(c, h, p, frame, len, &res)
                                                        : SPK_ERR_MALFORMED;
        break;
    case PROTO_MSG_SIGSHARE_RESPONSE:
        res.status =
            p->type == PROTO_MSG_SIGSHARE_REQUEST ? take_sigshare(c, p, &res) : SPK_ERR_MALFORMED;
        break;
    case PROTO_MSG_PING:
    case PROTO_MSG_SHARE_REQUEST:
    case PROTO_MSG_OP_REQUEST:
    case PROTO_MSG_OP_RESPONSE:
    case PROTO_MSG_SIGSHARE_REQUEST:
    default:
        res.status = SPK_ERR_MALFORMED;
        break;
    }
    if (res.status == SPK_ERR_MALFORMED || res.status == SPK_ERR_UNSEAL) {
        h->health.num_bad++;
    }
    finish(c, p, &res);
}

int sh_client_process(struct sh_client *c)
{
    uint64_t now;

    for (size_t i = 0; i < c->num_holders; i++) {
        /* A receive on an empty socket is not free: libzmq looks at its
         * command pipe (getpid and poll) before it says EAGAIN. */
        if (c->holders[i].idle) {
            c->holders[i].idle = false;
            continue;
        }
        for (;;) {
            int n = zmq_recv(c->holders[i].sock, c->frame, sizeof(c->frame), ZMQ_DONTWAIT);
            int more = 0;
            size_t more_len = sizeof(more);

            if (n < 0) {
                break;
            }
            if (zmq_getsockopt(c->holders[i].sock, ZMQ_RCVMORE, &more, &more_len) == 0 && more) {
                /* multipart: not our protocol; drop every part */
                while (more &&
                       zmq_recv(c->holders[i].sock, c->frame, sizeof(c->frame), ZMQ_DONTWAIT) >=
                           0 &&
                       zmq_getsockopt(c->holders[i].sock, ZMQ_RCVMORE, &more, &more_len) == 0) {
                }
                c->holders[i].health.num_bad++;
                continue;
            }
            if ((size_t)n > sizeof(c->frame)) {
                c->holders[i].health.num_bad++; /* truncated by zmq_recv */
                continue;
            }
            reply_handle(c, i, c->frame, (size_t)n);
        }
    }
    now = spk_now_us();
    /* Downwards, because finish() moves the last live slot into the one it
     * frees, and the callback may add requests (at the end, not yet due) or
     * cancel any: an index past the shrunk end is skipped, and a slot moved
     * down is at worst looked at twice. */
    for (size_t i = c->num_pending; i-- > 0;) {
        struct sh_pending *p;

        if (i >= c->num_pending) {
            continue;
        }
        p = &c->pending[c->live[i]];
        if (p->deadline_us <= now) {
            struct sh_result res;

            memset(&res, 0, sizeof(res));
            res.status = SPK_ERR_TIMEOUT;
            finish(c, p, &res);
        }
    }
    return 0;
}

int sh_client_wait(struct sh_client *c, int timeout_ms)
{
    uint64_t end = spk_now_us() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000u;
    zmq_pollitem_t *items = c->items;
    int r = 0;

    while (c->num_pending > 0) {
        uint64_t now = spk_now_us();
        long wait = sh_client_timeout_ms(c);
        long left = now >= end ? 0 : (long)((end - now + 999) / 1000);
        size_t n = sh_client_poll_items(c, items, c->num_holders);

        if (left == 0) {
            r = SPK_ERR_TIMEOUT;
            break;
        }
        if (wait < 0 || wait > left) {
            wait = left;
        }
        if (zmq_poll(items, (int)n, wait) >= 0) {
            sh_client_poll_result(c, items, n);
        } else if (zmq_errno() != EINTR) {
            r = SPK_ERR_INTERNAL;
            break;
        }
        if ((r = sh_client_process(c)) != 0) {
            break;
        }
    }
    return r;
}

int sh_client_health(const struct sh_client *c, size_t holder, struct sh_holder_health *out)
{
    if (holder >= c->num_holders) {
        return SPK_ERR_INVALID_ARG;
    }
    *out = c->holders[holder].health;
    return 0;
}
