/*
 * edge_client.c: the TLS process's side of the combiner connection: a
 * SOCK_SEQPACKET Unix socket for unix:// (one datagram per message; the
 * requests of one loop turn leave in one sendmmsg, answers are read with
 * recvmmsg), or a ZeroMQ DEALER for ipc:// and tcp:// (CURVE). Each
 * private-key operation is an OP_REQUEST with a fresh request id and a
 * deadline. Inside an OpenSSL ASYNC job the operation pauses
 * the job until edge_client_process (run by the event loop) records the
 * answer and calls the job's wait-context callback (SSL_set_async_callback:
 * the loop marks the connection ready and resumes its handshake in the same
 * turn, with no wake-up file descriptor to write, read or watch). Nothing secret passes here except
 * a TLS premaster secret on its way back, which is wiped from our buffers.
 */

#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/crypto.h>
#include <zmq.h>

#include "edge/internal.h"
#include "split/split.h"

/* One OP_REQUEST is a header plus four small items and the input. */
#define EDGE_REQ_BUF_MAX (PROTO_WIRE_HDR_LEN + 64 + PROTO_BN_MAX)
_Static_assert(EDGE_REQ_BUF_MAX <= SPK_UNIX_MSG_MAX, "an OP_REQUEST fits a unix:// datagram");
/* unix://: messages per recvmmsg / sendmmsg. */
#define EDGE_UNIX_BATCH 16

struct edge_pending {
    struct edge_pending *prev, *next;
    uint64_t req_id;
    uint64_t deadline_ms;
    ASYNC_callback_fn wake; /* the job's wait-context callback; NULL when blocking */
    void *wake_arg;
    const void *owner; /* edge_client_set_owner's value when it started */
    bool done;
    int status;
    uint8_t *out;
    size_t out_cap;
    size_t out_len;
    /* The encoded OP_REQUEST (public: a digest or a ciphertext), kept to be
     * sent again to a new combiner: signing and decrypting are idempotent. */
    uint8_t *frame;
    size_t frame_len;
    bool sent; /* taken by the current connection; false: send (again) */
};

/* How soon an operation waiting to be sent is tried again, and how often
 * the monitor is read while operations are in flight. */
#define EDGE_CLIENT_RETRY_MS 5
#define EDGE_CLIENT_WATCH_MS 20
/* A refused handshake: the edge connects anew (struct spk_knock). */
#define EDGE_CLIENT_REFUSED_EVENTS                                                                 \
    (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

struct edge_client {
    void *sock; /* ipc://, tcp://: the DEALER; NULL for unix:// */
    void *mon;  /* PAIR: the DEALER's disconnect events */
    int fd;     /* what the loop waits on: ZMQ_FD, or the unix:// socket (-1: not connected) */
    bool is_unix;
    uint64_t conn_gen;                     /* counts unix:// connections */
    char endpoint[PROTO_ENDPOINT_MAX + 1]; /* where to connect again */
    struct spk_knock knock;                /* ipc://, tcp://: after a refused handshake */
    bool disconnected;                     /* ipc://, tcp://: spk_resend_due's state */
    int timeout_ms;
    uint64_t next_id;
    const void *owner; /* who runs the SSL call now (edge_client_set_owner) */
    struct edge_pending *head;
    size_t num_pending;
    struct edge_keyop_stats stats;
    /* Scratch on the heap: an ASYNC job's stack is only 32 KiB. */
    struct proto_msg wmsg;
    uint8_t wbuf[EDGE_REQ_BUF_MAX];
    struct proto_msg rmsg;
    uint8_t rbuf[PROTO_MSG_MAX]; /* unix://: EDGE_UNIX_BATCH answers of SPK_UNIX_MSG_MAX */
};
_Static_assert(EDGE_UNIX_BATCH *SPK_UNIX_MSG_MAX <= PROTO_MSG_MAX, "unix:// answers fit rbuf");

static void edge_client_lost(struct edge_client *c);

/* edge_unix_connect: connected, or tried and not (no combiner listening yet). */
static bool edge_unix_connect(struct edge_client *c)
{
    if (c->fd < 0) {
        if (spk_unix_connect(&c->fd, c->endpoint) != 0) {
            c->fd = -1;
            return false;
        }
        c->conn_gen++;
    }
    return true;
}

/* edge_chan_send sends one frame now: true when it went. */
static bool edge_chan_send(struct edge_client *c, const uint8_t *frame, size_t len)
{
    if (!c->is_unix) {
        /* ZMQ_IMMEDIATE: with no combiner connected the send fails. */
        return zmq_send(c->sock, frame, len, ZMQ_DONTWAIT) == (int)len;
    }
    if (!edge_unix_connect(c)) {
        return false;
    }
    if (send(c->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len) {
        return true;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        edge_client_lost(c);
    }
    return false;
}

/* edge_chan_wait: up to |ms| for an answer to read (blocking callers only). */
static void edge_chan_wait(struct edge_client *c, long ms)
{
    if (!c->is_unix) {
        zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
        (void)zmq_poll(&item, 1, ms);
    } else if (c->fd >= 0) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        (void)poll(&pfd, 1, (int)ms);
    } else {
        struct timespec ts = {0,
                              (ms < EDGE_CLIENT_RETRY_MS ? ms : EDGE_CLIENT_RETRY_MS) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

struct edge_client *edge_client_new(void *zmq_ctx, const char *endpoint, int timeout_ms,
                                    const struct edge_client_curve *curve)
{
    struct edge_client *c = calloc(1, sizeof(*c));
    int zero = 0;
    int one = 1;
    int ivl = 100;
    int64_t maxmsg = PROTO_ZMQ_MAXMSGSIZE;
    size_t fd_len = sizeof(c->fd);

    if (c == NULL) {
        return NULL;
    }
    c->timeout_ms = timeout_ms;
    c->next_id = 1;
    c->fd = -1;
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    if (spk_endpoint_is_unix(endpoint)) {
        /* Connected now if the combiner listens already, else on first use. */
        c->is_unix = true;
        (void)edge_unix_connect(c);
        return c;
    }
    c->sock = zmq_socket(zmq_ctx, ZMQ_DEALER);
    if (c->sock == NULL || zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl)) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0 ||
        (curve != NULL &&
         (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, curve->server_pk, PROTO_X25519_LEN) != 0 ||
          zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, curve->client_pk, PROTO_X25519_LEN) != 0 ||
          zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, curve->client_sk, PROTO_X25519_LEN) != 0)) ||
        zmq_connect(c->sock, endpoint) != 0 ||
        zmq_getsockopt(c->sock, ZMQ_FD, &c->fd, &fd_len) != 0) {
        edge_client_free(c);
        return NULL;
    }
    {
        /* A combiner that goes away (killed, restarted, an external one on
         * another host) takes the requests it had: the monitor says so, and
         * they are sent again to whichever combiner answers next. It also
         * says when a handshake was refused (struct spk_knock). */
        char mon_ep[64];

        snprintf(mon_ep, sizeof(mon_ep), "inproc://spk-edge-client-%p", (void *)c);
        c->mon = zmq_socket(zmq_ctx, ZMQ_PAIR);
        if (zmq_socket_monitor(c->sock, mon_ep,
                               ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                   EDGE_CLIENT_REFUSED_EVENTS) != 0 ||
            c->mon == NULL || zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
            zmq_connect(c->mon, mon_ep) != 0) {
            edge_client_free(c);
            return NULL;
        }
    }
    return c;
}

int edge_client_open(struct edge_client **out, void *zmq_ctx, const struct edge_config *cfg,
                     const char *endpoint, char *why, size_t why_len)
{
    struct proto_holder_secret *me = NULL;
    struct edge_client_curve *curve = NULL;
    int r;

    *out = NULL;
    if (strncmp(endpoint, "tcp://", 6) == 0) {
        if ((r = split_holder_secret_load(&me, cfg->combiner_client_key)) != 0) {
            snprintf(why, why_len, "combiner-client-key %s: %s", cfg->combiner_client_key,
                     spk_strerror(r));
            return r;
        }
        if ((curve = spk_secret_new(sizeof(*curve))) == NULL) {
            spk_secret_free(me);
            snprintf(why, why_len, "no locked memory");
            return SPK_ERR_NOMEM;
        }
        memcpy(curve->server_pk, cfg->combiner_curve_pk, PROTO_X25519_LEN);
        memcpy(curve->client_pk, me->pub.curve_pk, PROTO_X25519_LEN);
        memcpy(curve->client_sk, me->curve_sk, PROTO_X25519_LEN);
        spk_secret_free(me);
    }
    *out = edge_client_new(zmq_ctx, endpoint, (int)cfg->op_timeout_ms, curve);
    spk_secret_free(curve);
    if (*out == NULL) {
        snprintf(why, why_len, "cannot connect to %s", endpoint);
        return SPK_ERR_IO;
    }
    return 0;
}

static void edge_pending_finish(struct edge_client *c, struct edge_pending *p, int status)
{
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        c->head = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
    p->prev = p->next = NULL;
    c->num_pending--;
    p->status = status;
    p->done = true;
    if (p->wake != NULL) {
        (void)p->wake(p->wake_arg);
    }
}

void edge_client_free(struct edge_client *c)
{
    if (c == NULL) {
        return;
    }
    edge_client_fail_all(c, SPK_ERR_UNAVAILABLE);
    /* The monitor is stopped before its reader goes: an event for a reader
     * that is gone (the combiner's connection ending now) blocks ZeroMQ's
     * I/O thread for good, holding the lock the stop needs, and the edge
     * would never exit. */
    if (c->sock != NULL) {
        (void)zmq_socket_monitor(c->sock, NULL, 0);
    }
    if (c->mon != NULL) {
        zmq_close(c->mon);
    }
    if (c->sock != NULL) {
        zmq_close(c->sock);
    }
    if (c->is_unix && c->fd >= 0) {
        close(c->fd);
    }
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

int edge_client_fd(const struct edge_client *c)
{
    return c->fd;
}

void edge_client_stats(const struct edge_client *c, struct edge_keyop_stats *out)
{
    *out = c->stats;
}

size_t edge_client_pending(const struct edge_client *c)
{
    return c->num_pending;
}

void edge_client_fail_all(struct edge_client *c, int err)
{
    while (c->head != NULL) {
        edge_pending_finish(c, c->head, err);
    }
}

/* edge_unix_send_batch: unix://, up to EDGE_UNIX_BATCH unsent operations
 * from |p| backwards (oldest first) in one sendmmsg. The last one examined,
 * or NULL when all went; |stop| when the socket took no more. */
static struct edge_pending *edge_unix_send_batch(struct edge_client *c, struct edge_pending *p,
                                                 bool *stop)
{
    struct mmsghdr mm[EDGE_UNIX_BATCH];
    struct iovec iov[EDGE_UNIX_BATCH];
    struct edge_pending *batch[EDGE_UNIX_BATCH];
    unsigned n = 0;
    int k;

    memset(mm, 0, sizeof(mm));
    for (; p != NULL && n < EDGE_UNIX_BATCH; p = p->prev) {
        if (!p->sent) {
            batch[n] = p;
            iov[n].iov_base = p->frame;
            iov[n].iov_len = p->frame_len;
            mm[n].msg_hdr.msg_iov = &iov[n];
            mm[n].msg_hdr.msg_iovlen = 1;
            n++;
        }
    }
    if (n == 0) {
        return NULL;
    }
    k = sendmmsg(c->fd, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            edge_client_lost(c); /* marks all unsent: the caller stops */
        }
        *stop = true;
        return NULL;
    }
    for (int i = 0; i < k; i++) {
        batch[i]->sent = true;
    }
    *stop = (unsigned)k < n;
    return p;
}

/* edge_client_resend sends every operation not taken by a combiner yet,
 * oldest first, until one does not go (no combiner connected). */
static void edge_client_resend(struct edge_client *c)
{
    struct edge_pending *p, *last = NULL;
    bool any = false;

    for (p = c->head; p != NULL; p = p->next) {
        last = p;
        any |= !p->sent;
    }
    if (!any) {
        return;
    }
    if (c->is_unix) {
        bool stop = false;

        if (!edge_unix_connect(c)) {
            return; /* no combiner yet; tried again soon */
        }
        for (p = last; p != NULL && !stop;) {
            p = edge_unix_send_batch(c, p, &stop);
        }
        return;
    }
    for (p = last; p != NULL; p = p->prev) {
        if (p->sent) {
            continue;
        }
        if (!edge_chan_send(c, p->frame, p->frame_len)) {
            return; /* ZMQ_IMMEDIATE: no combiner yet; tried again soon */
        }
        p->sent = true;
    }
}

/* edge_client_lost: the unix:// connection broke (the combiner exited or
 * was restarted): what it had goes to the next one, as with ZeroMQ. */
static void edge_client_lost(struct edge_client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    for (struct edge_pending *p = c->head; p != NULL; p = p->next) {
        p->sent = false;
    }
}

uint64_t edge_client_conn_gen(const struct edge_client *c)
{
    return c->conn_gen;
}

bool edge_client_connected(const struct edge_client *c)
{
    return !c->is_unix || c->fd >= 0;
}

void edge_client_requeue_all(struct edge_client *c)
{
    for (struct edge_pending *p = c->head; p != NULL; p = p->next) {
        p->sent = false;
    }
    edge_client_resend(c);
}

void edge_client_set_owner(struct edge_client *c, const void *owner)
{
    c->owner = owner;
}

bool edge_client_cancel(struct edge_client *c, const void *owner)
{
    struct edge_pending *p;

    for (p = c->head; p != NULL; p = p->next) {
        if (p->wake != NULL && p->owner == owner) {
            edge_pending_finish(c, p, SPK_ERR_TIMEOUT);
            return true;
        }
    }
    return false;
}

long edge_client_timeout_ms(const struct edge_client *c)
{
    const struct edge_pending *p;
    uint64_t now = spk_now_ms();
    long best = -1;

    for (p = c->head; p != NULL; p = p->next) {
        long left = p->deadline_ms <= now ? 0 : (long)(p->deadline_ms - now);
        long retry = p->sent ? EDGE_CLIENT_WATCH_MS : EDGE_CLIENT_RETRY_MS;
        if (left > retry) {
            left = retry;
        }
        if (best < 0 || left < best) {
            best = left;
        }
    }
    return spk_knock_wait_ms(&c->knock, now, best);
}

static void edge_client_answer(struct edge_client *c, const uint8_t *frame, size_t len)
{
    struct proto_msg *m = &c->rmsg;
    struct edge_pending *p;
    int status;

    if (proto_msg_decode(m, frame, len) != 0) {
        return; /* the combiner is trusted, but a bad frame is still just dropped */
    }
    for (p = c->head; p != NULL; p = p->next) {
        if (p->req_id == m->req_id) {
            break;
        }
    }
    if (p == NULL) {
        OPENSSL_cleanse(m, sizeof(*m));
        return; /* late: its operation already timed out */
    }
    status = proto_op_answer(m, p->out, p->out_cap, &p->out_len);
    edge_pending_finish(c, p, status);
    OPENSSL_cleanse(m, sizeof(*m));
}

/* edge_unix_read takes every answer waiting, EDGE_UNIX_BATCH per recvmmsg
 * (answers already queued are read even after the combiner exited). True
 * when the connection ended. */
static bool edge_unix_read(struct edge_client *c)
{
    while (c->fd >= 0) {
        struct mmsghdr mm[EDGE_UNIX_BATCH];
        struct iovec iov[EDGE_UNIX_BATCH];
        bool ended = false;
        int k;

        memset(mm, 0, sizeof(mm));
        for (int i = 0; i < EDGE_UNIX_BATCH; i++) {
            iov[i].iov_base = c->rbuf + (size_t)i * SPK_UNIX_MSG_MAX;
            iov[i].iov_len = SPK_UNIX_MSG_MAX;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        k = recvmmsg(c->fd, mm, EDGE_UNIX_BATCH, MSG_DONTWAIT, NULL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return false;
            }
            edge_client_lost(c);
            return true;
        }
        for (int i = 0; i < k; i++) {
            size_t len = mm[i].msg_len < SPK_UNIX_MSG_MAX ? mm[i].msg_len : SPK_UNIX_MSG_MAX;

            if (mm[i].msg_len == 0) {
                ended = true; /* the end of the connection reads as an empty datagram */
            } else if (!ended && !(mm[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                edge_client_answer(c, iov[i].iov_base, len);
            }
            OPENSSL_cleanse(iov[i].iov_base, len);
        }
        if (ended) {
            edge_client_lost(c);
            return true;
        }
        if (k < EDGE_UNIX_BATCH) {
            return false;
        }
    }
    return false;
}

/* edge_client_event takes one monitor event of the DEALER: *lost when what
 * was in flight is to be sent again (spk_resend_due). */
static void edge_client_event(struct edge_client *c, uint16_t event, bool *lost)
{
    if (spk_resend_due(&c->disconnected, (event & ZMQ_EVENT_DISCONNECTED) != 0,
                       (event & ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0)) {
        *lost = true;
    }
    if ((event & ZMQ_EVENT_HANDSHAKE_SUCCEEDED) && spk_knock_admitted(&c->knock)) {
        spk_log("edge", "the combiner at %s admits this edge again", c->endpoint);
    }
    if ((event & EDGE_CLIENT_REFUSED_EVENTS) && spk_knock_refused(&c->knock, spk_now_ms())) {
        spk_log("edge",
                "the combiner at %s refused this edge's connection (%s); trying "
                "again, from %d ms to every %d s",
                c->endpoint,
                (event & ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) ? "not admitted" : "handshake failed",
                SPK_KNOCK_MIN_MS, SPK_KNOCK_MAX_MS / 1000);
    }
}

static void edge_client_step(struct edge_client *c, bool read_unix)
{
    struct edge_pending *p;
    struct edge_pending *next;
    uint64_t now;
    bool lost = false;

    if (c->is_unix && read_unix) {
        lost = edge_unix_read(c);
    }
    for (; c->sock != NULL;) {
        int n = zmq_recv(c->sock, c->rbuf, sizeof(c->rbuf), ZMQ_DONTWAIT);
        if (n < 0) {
            break;
        }
        if ((size_t)n <= sizeof(c->rbuf)) {
            edge_client_answer(c, c->rbuf, (size_t)n);
        }
        OPENSSL_cleanse(c->rbuf, (size_t)n < sizeof(c->rbuf) ? (size_t)n : sizeof(c->rbuf));
    }
    /* Monitor events: [event u16, value u32] then the endpoint. */
    for (; c->mon != NULL;) {
        uint8_t ev[8];
        int more = 0;
        size_t more_len = sizeof(more);
        int n = zmq_recv(c->mon, ev, sizeof(ev), ZMQ_DONTWAIT);

        if (n < 0) {
            break;
        }
        if (n >= 2) {
            edge_client_event(c, (uint16_t)(ev[0] | ev[1] << 8), &lost);
        }
        while (zmq_getsockopt(c->mon, ZMQ_RCVMORE, &more, &more_len) == 0 && more &&
               zmq_recv(c->mon, ev, sizeof(ev), ZMQ_DONTWAIT) >= 0) {
        }
    }
    if (lost) {
        edge_client_requeue_all(c);
    }
    now = spk_now_ms();
    if (spk_knock_due(&c->knock, now)) {
        /* A new session: the refused one is gone for good. */
        (void)zmq_disconnect(c->sock, c->endpoint);
        if (zmq_connect(c->sock, c->endpoint) != 0) {
            spk_log("edge", "cannot connect to the combiner at %s again: %s", c->endpoint,
                    zmq_strerror(zmq_errno()));
        }
    }
    for (p = c->head; p != NULL; p = next) {
        next = p->next;
        if (p->deadline_ms <= now) {
            edge_pending_finish(c, p, p->sent ? SPK_ERR_TIMEOUT : SPK_ERR_UNAVAILABLE);
        }
    }
    edge_client_resend(c);
}

void edge_client_process(struct edge_client *c)
{
    edge_client_step(c, true);
}

void edge_client_tick(struct edge_client *c)
{
    /* A unix:// socket is read when epoll says so: a recvmmsg on every loop
     * turn was one failed system call per turn. A DEALER is asked each turn
     * (no system call; its ZMQ_FD only signals edges). */
    edge_client_step(c, false);
}

int edge_client_keyop(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                      const uint8_t *in, size_t in_len, uint16_t client_version, uint8_t *out,
                      size_t out_cap, size_t *out_len)
{
    struct edge_client *c = arg;
    struct edge_pending p;
    ASYNC_JOB *job = ASYNC_get_current_job();
    size_t frame_len = 0;
    int kind = op >= PROTO_OP_DECRYPT_PKCS1 ? 1 : 0;
    uint64_t started = spk_now_us();
    int r;

    *out_len = 0;
    memset(&p, 0, sizeof(p));
    if (in_len > PROTO_BN_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    /* The job is resumed by its SSL's async callback, which the edge sets
     * on every connection; a job without one could never be woken. */
    if (job != NULL &&
        (!ASYNC_WAIT_CTX_get_callback(ASYNC_get_wait_ctx(job), &p.wake, &p.wake_arg) ||
         p.wake == NULL)) {
        return SPK_ERR_INTERNAL;
    }
    p.owner = c->owner;
    memset(&c->wmsg, 0, sizeof(c->wmsg));
    c->wmsg.type = PROTO_MSG_OP_REQUEST;
    c->wmsg.req_id = c->next_id++;
    memcpy(c->wmsg.u.op_req.key_id, key_id, PROTO_KEY_ID_LEN);
    c->wmsg.u.op_req.op = op;
    memcpy(c->wmsg.u.op_req.input, in, in_len);
    c->wmsg.u.op_req.input_len = in_len;
    c->wmsg.u.op_req.client_version = client_version;
    r = proto_msg_encode(c->wbuf, sizeof(c->wbuf), &frame_len, &c->wmsg);
    OPENSSL_cleanse(&c->wmsg.u.op_req.input, sizeof(c->wmsg.u.op_req.input));
    if (r != 0) {
        return r;
    }
    if ((p.frame = malloc(frame_len)) == NULL) {
        OPENSSL_cleanse(c->wbuf, frame_len);
        return SPK_ERR_NOMEM;
    }
    memcpy(p.frame, c->wbuf, frame_len);
    OPENSSL_cleanse(c->wbuf, frame_len);
    p.frame_len = frame_len;
    /* With no combiner connected (one restarting) the send fails, and the
     * operation waits to be sent until its deadline. Over unix:// an
     * operation of an ASYNC job leaves at the end of the loop turn
     * (edge_client_process), with the others of that turn in one sendmmsg. */
    p.sent = (job == NULL || !c->is_unix) && edge_chan_send(c, p.frame, frame_len);
    p.req_id = c->wmsg.req_id;
    p.deadline_ms = spk_now_ms() + (uint64_t)c->timeout_ms;
    p.out = out;
    p.out_cap = out_cap;
    p.next = c->head;
    if (c->head != NULL) {
        c->head->prev = &p;
    }
    c->head = &p;
    c->num_pending++;

    if (job != NULL) {
        while (!p.done) {
            if (!ASYNC_pause_job()) {
                edge_pending_finish(c, &p, SPK_ERR_INTERNAL);
                break;
            }
        }
    } else {
        while (!p.done) {
            long wait = edge_client_timeout_ms(c);
            edge_chan_wait(c, wait < 0 ? 0 : wait);
            edge_client_process(c);
        }
    }
    free(p.frame);
    if (p.status == SPK_ERR_TIMEOUT) {
        c->stats.ops[kind][EDGE_OPRES_TIMEOUT]++;
    } else if (p.status == SPK_ERR_UNAVAILABLE) {
        c->stats.ops[kind][EDGE_OPRES_UNAVAILABLE]++;
    } else {
        c->stats.ops[kind][p.status == 0                   ? EDGE_OPRES_OK
                           : p.status == SPK_ERR_THRESHOLD ? EDGE_OPRES_TOO_FEW_SHARES
                                                           : EDGE_OPRES_ERROR]++;
        spk_hist_observe(&c->stats.latency[kind], (double)(spk_now_us() - started) / 1e6);
    }
    if (p.status != 0) {
        OPENSSL_cleanse(out, out_cap);
        return p.status;
    }
    *out_len = p.out_len;
    return 0;
}

/*
 * edge_client_ping sends PING and waits (blocking) up to |timeout_ms| for the
 * PONG: the combiner is up. 0, SPK_ERR_TIMEOUT or SPK_ERR_UNAVAILABLE.
 */
int edge_client_ping(struct edge_client *c, int timeout_ms)
{
    uint64_t deadline = spk_now_ms() + (uint64_t)timeout_ms;
    size_t frame_len = 0;
    uint64_t id;
    int r;

    while (spk_now_ms() < deadline) {
        memset(&c->wmsg, 0, sizeof(c->wmsg));
        c->wmsg.type = PROTO_MSG_PING;
        c->wmsg.req_id = id = c->next_id++;
        if ((r = proto_msg_encode(c->wbuf, sizeof(c->wbuf), &frame_len, &c->wmsg)) != 0) {
            return r;
        }
        if (edge_chan_send(c, c->wbuf, frame_len)) {
            uint64_t until = spk_now_ms() + 500;
            while (spk_now_ms() < until && edge_client_connected(c)) {
                int n;
                edge_chan_wait(c, 100);
                n = c->is_unix ? (int)recv(c->fd, c->rbuf, sizeof(c->rbuf), MSG_DONTWAIT)
                               : zmq_recv(c->sock, c->rbuf, sizeof(c->rbuf), ZMQ_DONTWAIT);
                if (n == 0 && c->is_unix) {
                    edge_client_lost(c);
                    break;
                }
                if (n > 0 && (size_t)n <= sizeof(c->rbuf) &&
                    proto_msg_decode(&c->rmsg, c->rbuf, (size_t)n) == 0 &&
                    c->rmsg.type == PROTO_MSG_PONG && c->rmsg.req_id == id) {
                    return 0;
                }
            }
        } else {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return SPK_ERR_TIMEOUT;
}
