/*
 * sh_request.c: one frame from a client of the share-holder: the client's
 * token bucket, decoding, the allow list, SHARE_REQUEST (the encrypted
 * answer is queued until its audit line reaches the disk) and SIGSHARE
 * requests, and the error answers.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "share-holder/internal.h"

static struct sh_bucket *bucket_get(struct sh_server *s, const uint8_t pk[PROTO_X25519_LEN],
                                    uint64_t now)
{
    size_t oldest = 0;

    for (size_t i = 0; i < s->num_buckets; i++) {
        if (sodium_memcmp(s->buckets[i].pk, pk, PROTO_X25519_LEN) == 0) {
            return &s->buckets[i];
        }
        if (s->buckets[i].last_ms < s->buckets[oldest].last_ms) {
            oldest = i;
        }
    }
    if (s->num_buckets < SH_BUCKETS_MAX) {
        oldest = s->num_buckets++;
    }
    memcpy(s->buckets[oldest].pk, pk, PROTO_X25519_LEN);
    s->buckets[oldest].tokens = (double)s->opt->burst;
    s->buckets[oldest].last_ms = now;
    return &s->buckets[oldest];
}

static void reply(struct sh_server *s, zmq_msg_t *id, const uint8_t *frame, size_t len)
{
    if (zmq_send(s->router, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(s->router, frame, len, ZMQ_DONTWAIT) < 0) {
        /* a peer gone or over its high-water mark: ZeroMQ drops, so do we */
        s->num_bad++;
    }
}

static void reply_error(struct sh_server *s, zmq_msg_t *id, uint64_t req_id, int err,
                        const char *text)
{
    struct proto_msg m;
    size_t len = 0;

    memset(&m, 0, sizeof(m));
    m.type = PROTO_MSG_ERROR;
    m.req_id = req_id;
    m.u.error.code = proto_err_to_wire(err);
    (void)snprintf(m.u.error.text, sizeof(m.u.error.text), "%s", text);
    if (proto_msg_encode(s->out, sizeof(s->out), &len, &m) == 0) {
        reply(s, id, s->out, len);
    }
}

static enum sh_audit_kind refusal_kind(int err)
{
    switch (err) {
    case SPK_ERR_UNKNOWN_KEY:
        return SH_AUDIT_UNKNOWN_KEY;
    case SPK_ERR_NOT_ALLOWED:
        return SH_AUDIT_NOT_ALLOWED;
    case SPK_ERR_RATE_LIMITED:
        return SH_AUDIT_RATE_LIMITED;
    default:
        return SH_AUDIT_ERROR;
    }
}

/* sh_queue_slot: the next queue entry to build an answer in (a full queue
 * is flushed first). */
static struct sh_queued *sh_queue_slot(struct sh_server *s)
{
    struct sh_queued *q;

    if (s->num_queued == SH_BATCH_MAX) {
        sh_queue_flush(s);
    }
    q = &s->queue[s->num_queued];
    q->len = 0;
    return q;
}

/* sh_queue_push queues the answer built in |q| for peer |id|, its audit line
 * written, to leave at the next flush; false if it cannot be queued. */
static bool sh_queue_push(struct sh_server *s, struct sh_queued *q, zmq_msg_t *id)
{
    zmq_msg_init(&q->id);
    if (zmq_msg_copy(&q->id, id) == 0) {
        q->req_id = s->msg.req_id;
        s->num_queued++;
        return true;
    }
    zmq_msg_close(&q->id);
    return false;
}

/* refuse: a refusal is counted, written as one summary per client and
 * interval, and answered with ERROR |err| |why|. */
static void refuse(struct sh_server *s, zmq_msg_t *id, const struct sh_allow_client *client,
                   const char *address, uint64_t now_ms, int err, const char *why)
{
    (void)sh_audit_count(&s->audit, client->name, address, refusal_kind(err), now_ms);
    if (err == SPK_ERR_RATE_LIMITED) {
        s->num_rate_limited++;
    } else {
        s->num_denied++;
    }
    reply_error(s, id, s->msg.req_id, err, why);
}

/*
 * sh_queue_flush writes the audit lines of the queued releases with one
 * write() and makes them durable with one fdatasync, then sends the shares;
 * if either fails, none of them leaves and each client gets ERROR internal.
 */
void sh_queue_flush(struct sh_server *s)
{
    bool synced;

    if (s->num_queued == 0) {
        return;
    }
    synced = sh_audit_sync(&s->audit) == 0;
    for (size_t i = 0; i < s->num_queued; i++) {
        struct sh_queued *q = &s->queue[i];

        if (synced) {
            s->num_released++;
            reply(s, &q->id, q->frame, q->len);
        } else {
            s->num_denied++;
            reply_error(s, &q->id, q->req_id, SPK_ERR_INTERNAL, "internal error");
        }
        zmq_msg_close(&q->id);
    }
    s->num_queued = 0;
}

static void share_request(struct sh_server *s, zmq_msg_t *id, const struct sh_allow_client *client,
                          bool rate_ok, const char *address, uint64_t now_ms)
{
    const struct proto_share_req *req = &s->msg.u.share_req;
    char key_hex[2 * PROTO_KEY_ID_LEN + 1];
    char digest_hex[2 * PROTO_SHA256_LEN + 1];
    struct sh_share *share = NULL;
    struct sh_queued *q;
    int err = 0;

    q = sh_queue_slot(s);
    if (!rate_ok) {
        err = SPK_ERR_RATE_LIMITED;
    } else if (!sh_allow_key(client, req->key_id)) {
        err = SPK_ERR_NOT_ALLOWED;
    } else if ((share = sh_store_find(&s->store, req->key_id)) == NULL) {
        err = SPK_ERR_UNKNOWN_KEY;
    } else if (share->mode == PROTO_MODE_THRESHOLD) {
        /* A threshold key share never leaves: ask for a signature share. */
        err = SPK_ERR_UNSUPPORTED;
    } else if (sh_store_share_open(&s->store, share, now_ms) != 0) {
        err = SPK_ERR_INTERNAL;
    } else if ((err = sh_share_response_build(&s->sessions, q->frame, sizeof(q->frame), &q->len,
                                              s->msg.req_id, client->curve_pk, req->requester_pk,
                                              share)) != 0) {
        /* a low-order requester key is the only caller-made failure here */
        err = err == SPK_ERR_MALFORMED ? SPK_ERR_MALFORMED : SPK_ERR_INTERNAL;
    }
    if (err == 0) {
        /* the audit line is written before the share leaves, or it does not
         * leave; sh_queue_flush writes and syncs it to the disk first */
        sodium_bin2hex(key_hex, sizeof(key_hex), req->key_id, sizeof(req->key_id));
        sodium_bin2hex(digest_hex, sizeof(digest_hex), req->input_digest,
                       sizeof(req->input_digest));
        if (sh_audit_line(&s->audit,
                          "client=%s key=%s op=%s ops=%u digest=%s outcome=released index=%u "
                          "req=%llu addr=%s",
                          client->name, key_hex, proto_op_name(req->op), (unsigned)req->op_count,
                          digest_hex, share->index, (unsigned long long)s->msg.req_id,
                          address) == 0 &&
            sh_queue_push(s, q, id)) {
            return;
        }
        err = SPK_ERR_INTERNAL;
    }
    refuse(s, id, client, address, now_ms, err,
           err == SPK_ERR_NOT_ALLOWED    ? "this client may not fetch this key"
           : err == SPK_ERR_UNKNOWN_KEY  ? "no share of this key here"
           : err == SPK_ERR_RATE_LIMITED ? "over the rate limit"
           : err == SPK_ERR_MALFORMED    ? "bad requester key"
           : err == SPK_ERR_UNSUPPORTED  ? "threshold-mode key: ask for a signature share"
                                         : "internal error");
}

/* sigshare_request: a signature share of a threshold-mode key, audited and
 * synced as a release (outcome=signed) before it leaves. */
static void sigshare_request(struct sh_server *s, zmq_msg_t *id,
                             const struct sh_allow_client *client, bool rate_ok,
                             const char *address, uint64_t now_ms)
{
    const struct proto_sigshare_req *req = &s->msg.u.sigshare_req;
    char key_hex[2 * PROTO_KEY_ID_LEN + 1];
    char digest_hex[2 * PROTO_SHA256_LEN + 1];
    uint8_t input_digest[PROTO_SHA256_LEN];
    struct sh_share *share = NULL;
    struct sh_queued *q;
    const char *why = "internal error";
    int err = 0;

    q = sh_queue_slot(s);
    if (!rate_ok) {
        err = SPK_ERR_RATE_LIMITED;
        why = "over the rate limit";
    } else if (!sh_allow_key(client, req->key_id)) {
        err = SPK_ERR_NOT_ALLOWED;
        why = "this client may not use this key";
    } else if ((share = sh_store_find(&s->store, req->key_id)) == NULL) {
        err = SPK_ERR_UNKNOWN_KEY;
        why = "no share of this key here";
    } else {
        err =
            sh_sigshare_build(q->frame, sizeof(q->frame), &q->len, s->msg.req_id, share, req, &why);
    }
    if (err == 0) {
        sodium_bin2hex(key_hex, sizeof(key_hex), req->key_id, sizeof(req->key_id));
        /* As for a share release: SHA-256 of the operation's input, the digest. */
        crypto_hash_sha256(input_digest, req->digest, req->digest_len);
        sodium_bin2hex(digest_hex, sizeof(digest_hex), input_digest, sizeof(input_digest));
        if (sh_audit_line(&s->audit,
                          "client=%s key=%s op=%s ops=1 digest=%s outcome=signed index=%u "
                          "req=%llu addr=%s",
                          client->name, key_hex, proto_op_name(req->op), digest_hex, share->index,
                          (unsigned long long)s->msg.req_id, address) == 0 &&
            sh_queue_push(s, q, id)) {
            return;
        }
        err = SPK_ERR_INTERNAL;
        why = "internal error";
    }
    refuse(s, id, client, address, now_ms, err, why);
}

/* frame_handle: one [routing id][frame] from the ROUTER. */
static void frame_handle(struct sh_server *s, zmq_msg_t *id, zmq_msg_t *body)
{
    const char *user = zmq_msg_gets(body, "User-Id");
    const char *address = zmq_msg_gets(body, "Peer-Address");
    const struct sh_allow_client *client = NULL;
    uint8_t pk[PROTO_X25519_LEN];
    struct proto_rd z;
    uint8_t type = 0;
    uint64_t req_id = 0;
    uint64_t now_ms;
    bool rate_ok;
    int r;

    if (address == NULL) {
        address = "-";
    }
    if (user != NULL && strlen(user) == PROTO_Z85_KEY_LEN && s->have_user &&
        sodium_memcmp(user, s->user_z85, PROTO_Z85_KEY_LEN) == 0) {
        memcpy(pk, s->user_pk, PROTO_X25519_LEN);
        client = sh_allow_find(&s->allow, pk);
    } else if (user != NULL) {
        proto_rd_init(&z, (const uint8_t *)user, strlen(user));
        if (proto_z85_decode_key(&z, pk)) {
            memcpy(s->user_z85, user, PROTO_Z85_KEY_LEN);
            memcpy(s->user_pk, pk, PROTO_X25519_LEN);
            s->have_user = true;
            client = sh_allow_find(&s->allow, pk);
        }
    }
    /* the allow-list may have changed since the connection was admitted */
    if (client == NULL || !sh_allow_address(client, address)) {
        char who[PROTO_NAME_MAX + 8];

        s->num_denied++;
        (void)snprintf(who, sizeof(who), "key:%.*s", PROTO_Z85_KEY_LEN, user != NULL ? user : "-");
        if (sh_audit_count(&s->audit, client != NULL ? client->name : who, address,
                           SH_AUDIT_NOT_ALLOWED, spk_now_ms())) {
            spk_log("share-holder", "refused a request of %s from %s: no longer allowed",
                    client != NULL ? client->name : who, address);
        }
        if (proto_msg_peek(zmq_msg_data(body), zmq_msg_size(body), &type, &req_id) != 0) {
            req_id = 0;
        }
        reply_error(s, id, req_id, SPK_ERR_NOT_ALLOWED, "client no longer allowed");
        return;
    }
    now_ms = spk_now_ms();
    rate_ok = sh_bucket_take(bucket_get(s, client->curve_pk, now_ms), s->opt->rate, s->opt->burst,
                             now_ms);
    r = proto_msg_decode(&s->msg, zmq_msg_data(body), zmq_msg_size(body));
    if (r != 0) {
        s->num_bad++;
        if (!rate_ok) {
            return; /* garbage over the rate is only counted */
        }
        if (proto_msg_peek(zmq_msg_data(body), zmq_msg_size(body), &type, &req_id) != 0) {
            req_id = 0;
        }
        reply_error(s, id, req_id, r == SPK_ERR_VERSION ? SPK_ERR_VERSION : SPK_ERR_MALFORMED,
                    r == SPK_ERR_VERSION ? "unsupported protocol version" : "malformed message");
        return;
    }
    switch ((enum proto_msg_type)s->msg.type) {
    case PROTO_MSG_PING: {
        struct proto_msg pong;
        size_t len = 0;

        if (!rate_ok) {
            s->num_rate_limited++;
            (void)sh_audit_count(&s->audit, client->name, address, SH_AUDIT_RATE_LIMITED, now_ms);
            reply_error(s, id, s->msg.req_id, SPK_ERR_RATE_LIMITED, "over the rate limit");
            return;
        }
        memset(&pong, 0, sizeof(pong));
        pong.type = PROTO_MSG_PONG;
        pong.req_id = s->msg.req_id;
        if (proto_msg_encode(s->out, sizeof(s->out), &len, &pong) == 0) {
            reply(s, id, s->out, len);
        }
        return;
    }
    case PROTO_MSG_SHARE_REQUEST:
        share_request(s, id, client, rate_ok, address, now_ms);
        return;
    case PROTO_MSG_SIGSHARE_REQUEST:
        sigshare_request(s, id, client, rate_ok, address, now_ms);
        return;
    case PROTO_MSG_ERROR:
        /* Never answered: two peers that answered errors would trade them forever. */
        s->num_bad++;
        return;
    case PROTO_MSG_PONG:
    case PROTO_MSG_SHARE_RESPONSE:
    case PROTO_MSG_OP_REQUEST:
    case PROTO_MSG_OP_RESPONSE:
    case PROTO_MSG_SIGSHARE_RESPONSE:
    default:
        s->num_bad++;
        if (rate_ok) {
            reply_error(s, id, s->msg.req_id, SPK_ERR_UNSUPPORTED,
                        "a share-holder answers PING, SHARE_REQUEST and SIGSHARE_REQUEST only");
        }
        return;
    }
}

/* sh_router_read: one message from the ROUTER. False when there is none. */
bool sh_router_read(struct sh_server *s)
{
    zmq_msg_t id;
    zmq_msg_t body;
    int more = 0;
    size_t more_len = sizeof(more);
    bool extra = false;

    zmq_msg_init(&id);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&id, s->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        zmq_msg_close(&body);
        return false;
    }
    if (!zmq_msg_more(&id) || zmq_msg_recv(&body, s->router, ZMQ_DONTWAIT) < 0) {
        s->num_bad++;
        goto out;
    }
    /* one frame per message: a multipart message is drained and refused */
    while (zmq_getsockopt(s->router, ZMQ_RCVMORE, &more, &more_len) == 0 && more) {
        zmq_msg_t part;

        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, s->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        zmq_msg_close(&part);
        extra = true;
    }
    if (extra) {
        s->num_bad++;
        reply_error(s, &id, 0, SPK_ERR_MALFORMED, "one frame per message");
        goto out;
    }
    frame_handle(s, &id, &body);
out:
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    return true;
}
