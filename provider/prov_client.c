/*
 * prov_client.c: the module's way to the combiner. One I/O thread per process
 * owns the connections, one per combiner endpoint: a SOCK_SEQPACKET Unix
 * socket for unix:// (one datagram per message, no thread of ZeroMQ's
 * between the caller and the combiner), a ZeroMQ DEALER for ipc:// and
 * tcp://. Callers hand it an OP_REQUEST and wait for the answer, so any
 * number of application threads (HAProxy) may sign at once through sockets
 * only one thread touches.
 *
 * fork: nginx and Apache read keys in the master and sign in forked
 * workers, and a ZeroMQ context does not survive a fork. So the per-process
 * part (struct prov_io) is made on the first operation, and a process that
 * finds one made by another pid abandons it (never touching its locks or
 * sockets) and makes its own.
 *
 * Connections: an operation that finds no combiner connected waits for one
 * up to PROV_PEER_WAIT_MS, or to its deadline while a handshake is under way
 * (a new connection, or one coming back after the
 * combiner restarted: nginx and Apache workers each reconnect on their own
 * schedule, and a handshake that came in between used to fail at once while
 * another worker already served). A socket monitor tells the I/O thread how
 * each ZeroMQ handshake ends, so a combiner that refuses this client (its
 * CURVE key not in the allow file, or its uid not let in) answers
 * "not-allowed", at once, not after the wait. A CURVE handshake broken off
 * PROV_HANDSHAKE_BREAKS times in a row, each within PROV_QUICK_BREAK_MS of
 * its connection (the reference names another combiner key), answers
 * SPK_ERR_HANDSHAKE; once, or later in the handshake, is what a combiner
 * killed mid-handshake looks like too, and is waited past. Operations in flight
 * on a connection that ends are sent again on a new one (signing and
 * decrypting are idempotent: a combiner that restarted answers them). A
 * unix:// combiner refuses by closing the connection unanswered; after
 * PROV_UNIX_REFUSALS such closes in a row the operations on it end
 * "not-allowed".
 *
 * ASYNC: inside an OpenSSL ASYNC job the caller pauses the job instead of
 * blocking; the I/O thread makes the job's wait fd (an eventfd in the job's
 * wait context) readable when the answer is in. Every operation ends by its
 * deadline (timeout-ms): answer, error, or SPK_ERR_TIMEOUT.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/crypto.h>
#include <sodium.h>
#include <zmq.h>

#include "base/base.h"
#include "provider/internal.h"

/* One OP_REQUEST is a header plus four small items and the input. */
#define PROV_REQ_BUF_MAX (PROTO_WIRE_HDR_LEN + 64 + PROTO_BN_MAX)
_Static_assert(PROV_REQ_BUF_MAX <= SPK_UNIX_MSG_MAX, "an OP_REQUEST fits a unix:// datagram");
/* How long an operation waits for a connected combiner before "unreachable"
 * is the answer (ZMQ_IMMEDIATE refuses to queue for a peer that is not
 * there): four of the DEALER's reconnect attempts (ZMQ_RECONNECT_IVL_MAX). */
#define PROV_PEER_WAIT_MS 1000
/* A blocked caller's own deadline past the I/O thread's, in case it died. */
#define PROV_BACKSTOP_MS 2000
/* CURVE handshakes broken off in a row that make the operations end
 * SPK_ERR_HANDSHAKE: the second comes one reconnect (ZMQ_RECONNECT_IVL)
 * after the first when the key is wrong. */
#define PROV_HANDSHAKE_BREAKS 2
/* A combiner that cannot open our HELLO (another key) drops the connection
 * as soon as the HELLO arrives, within milliseconds of the connection; one
 * killed while it held our handshake (its ZAP check waits for the end of its
 * warm-up, up to 1.5 s) drops it whenever that happens. Only a break this
 * soon after the connection counts towards PROV_HANDSHAKE_BREAKS. */
#define PROV_QUICK_BREAK_MS 200
/* unix://: connections closed before any answer, in a row, that make the
 * operations on the last one end "not-allowed" (one such close is what a
 * combiner killed mid-operation looks like too). */
#define PROV_UNIX_REFUSALS 2

struct prov_route {
    struct prov_route *next; /* immutable once published */
    uint8_t key_id[PROTO_KEY_ID_LEN];
    struct proto_keyref ref;
};

/* Wakes a paused job: an eventfd shared by the job's wait context and the
 * operations that wait on it, closed when the last of them lets go. */
struct prov_waker {
    atomic_int refs;
    int fd;
};

struct prov_conn;

struct prov_op {
    struct prov_op *prev, *next;
    int refs; /* caller + I/O thread, under io->lock */
    const struct proto_keyref *ref;
    struct prov_conn *conn; /* the I/O thread's: where it was sent */
    uint64_t req_id;
    uint64_t deadline_ms;
    uint64_t peer_wait_until_ms; /* 0 until the first send found no peer */
    uint8_t frame[PROV_REQ_BUF_MAX];
    size_t frame_len;
    bool done;
    int status;
    uint8_t result[PROTO_BN_MAX];
    size_t result_len;
    struct prov_waker *waker;
};

struct prov_conn {
    struct prov_conn *next;
    const struct proto_keyref *ref; /* endpoint and CURVE settings */
    const char *endpoint;
    void *sock;             /* ipc://, tcp://: the DEALER; NULL for unix:// */
    void *monitor;          /* PAIR: the connection and handshake events of sock */
    bool handshaking;       /* connected, the ZeroMQ (CURVE) handshake not over */
    uint64_t connected_ms;  /* when the last connection was made (spk_now_ms) */
    uint64_t lost_ms;       /* when the last connection ended, 0 before */
    int refused;            /* 0, or how the last handshake ended (SPK_ERR_*) */
    unsigned breaks;        /* quick CURVE handshake breaks in a row (PROV_QUICK_BREAK_MS) */
    struct spk_knock knock; /* when to connect anew after a refusal */
    bool disconnected;      /* spk_resend_due's state */
    bool is_unix;
    int fd;                     /* unix://: the connection, -1 while there is none */
    bool answered;              /* unix://: an answer came on this connection */
    unsigned unanswered_closes; /* unix://: connections closed unanswered in a row */
    int item;                   /* unix://: its index in the poll items, or -1 */
};

struct prov_io {
    pid_t pid;
    struct prov_client *client;
    pthread_mutex_t lock; /* queue, inflight, op state */
    pthread_cond_t cond;  /* an op finished */
    struct prov_op *queue;
    struct prov_op *inflight;
    bool stop;
    int kick_fd;
    atomic_uint_fast64_t next_id;
    /* The I/O thread's own: */
    void *zctx;
    pthread_t thread;
    struct prov_conn *conns;
    struct prov_op *retry; /* waiting for a new connection */
    struct proto_msg rmsg;
    uint8_t rbuf[PROTO_MSG_MAX];
};

struct prov_client {
    char endpoint[PROTO_ENDPOINT_MAX + 1]; /* "" or the override of every reference */
    int timeout_ms;
    _Atomic(struct prov_route *) routes;
    _Atomic(struct prov_io *) io;
};

/* ---- wakers ----------------------------------------------------------------- */

static void prov_waker_put(struct prov_waker *w)
{
    if (w != NULL && atomic_fetch_sub(&w->refs, 1) == 1) {
        close(w->fd);
        free(w);
    }
}

static void prov_waker_cleanup(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD fd, void *custom)
{
    (void)ctx;
    (void)key;
    (void)fd;
    prov_waker_put(custom);
}

/* prov_waker_of_job: the waker of |job|'s wait context (made on first use),
 * with a reference for the caller. NULL on failure. */
static struct prov_waker *prov_waker_of_job(struct prov_client *c, ASYNC_JOB *job)
{
    ASYNC_WAIT_CTX *wctx = ASYNC_get_wait_ctx(job);
    OSSL_ASYNC_FD fd = -1;
    void *custom = NULL;
    struct prov_waker *w;

    if (wctx == NULL) {
        return NULL;
    }
    if (ASYNC_WAIT_CTX_get_fd(wctx, c, &fd, &custom) && custom != NULL) {
        w = custom;
        atomic_fetch_add(&w->refs, 1);
        return w;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL) {
        return NULL;
    }
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_init(&w->refs, 2); /* the wait context's and the caller's */
    if (w->fd < 0 || !ASYNC_WAIT_CTX_set_wait_fd(wctx, c, w->fd, w, prov_waker_cleanup)) {
        if (w->fd >= 0) {
            close(w->fd);
        }
        free(w);
        return NULL;
    }
    return w;
}

static void prov_fd_drain(int fd)
{
    uint64_t v;

    while (read(fd, &v, sizeof(v)) > 0) {
    }
}

static void prov_fd_kick(int fd)
{
    uint64_t one = 1;

    /* Only fails when the counter would overflow: it is readable then. */
    if (write(fd, &one, sizeof(one)) < 0) {
        (void)errno;
    }
}

/* ---- operations (io->lock held) --------------------------------------------- */

static void prov_op_put_locked(struct prov_op *op)
{
    if (--op->refs == 0) {
        prov_waker_put(op->waker);
        OPENSSL_cleanse(op, sizeof(*op));
        free(op);
    }
}

static void prov_list_remove(struct prov_op **head, struct prov_op *op)
{
    if (op->prev != NULL) {
        op->prev->next = op->next;
    } else if (*head == op) {
        *head = op->next;
    }
    if (op->next != NULL) {
        op->next->prev = op->prev;
    }
    op->prev = op->next = NULL;
}

static void prov_list_push(struct prov_op **head, struct prov_op *op)
{
    op->prev = NULL;
    op->next = *head;
    if (*head != NULL) {
        (*head)->prev = op;
    }
    *head = op;
}

/* prov_op_finish_locked ends |op| (no longer on any list) with |status|, wakes
 * its caller and drops the I/O thread's reference. */
static void prov_op_finish_locked(struct prov_io *io, struct prov_op *op, int status)
{
    op->status = status;
    op->done = true;
    if (op->waker != NULL) {
        prov_fd_kick(op->waker->fd);
    }
    pthread_cond_broadcast(&io->cond);
    prov_op_put_locked(op);
}

/* ---- connections (I/O thread) ------------------------------------------------ */

static bool prov_same_target(const struct proto_keyref *a, const char *a_ep,
                             const struct proto_keyref *b, const char *b_ep)
{
    if (strcmp(a_ep, b_ep) != 0 || a->has_curve != b->has_curve) {
        return false;
    }
    return !a->has_curve || (sodium_memcmp(a->combiner_pk, b->combiner_pk, PROTO_X25519_LEN) == 0 &&
                             strcmp(a->client_key, b->client_key) == 0);
}

/* prov_curve_setup makes |sock| a CURVE client of the reference's combiner
 * with the key pair in its client-key file (refused if others may read it). */
static int prov_curve_setup(void *sock, const struct proto_keyref *ref)
{
    struct proto_holder_secret *key = NULL;
    uint8_t *text = NULL;
    size_t text_len = 0;
    int r = SPK_ERR_INTERNAL;

    if ((r = spk_file_read_private(ref->client_key, PROTO_FILE_MAX, &text, &text_len)) != 0) {
        goto out;
    }
    if ((key = spk_secret_new(sizeof(*key))) == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    if ((r = proto_holder_secret_decode(key, text, text_len)) != 0) {
        goto out;
    }
    r = SPK_ERR_INTERNAL;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, ref->combiner_pk, PROTO_X25519_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, key->pub.curve_pk, PROTO_X25519_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, key->curve_sk, PROTO_X25519_LEN) != 0) {
        goto out;
    }
    r = 0;
out:
    spk_secret_free(key);
    spk_secret_free(text);
    return r;
}

/* prov_conn_get: the I/O thread's DEALER for |ref| (made and connected on
 * first use). 0 or SPK_ERR_*. */
static int prov_conn_get(struct prov_io *io, const struct proto_keyref *ref, struct prov_conn **out)
{
    const char *endpoint = io->client->endpoint[0] != '\0' ? io->client->endpoint : ref->endpoint;
    struct prov_conn *k;
    int zero = 0;
    int one = 1;
    int ivl = 100;
    int ivl_max = 250;
    int64_t maxmsg = PROTO_MSG_MAX;
    char monitor_ep[64];
    int r;

    for (k = io->conns; k != NULL; k = k->next) {
        if (prov_same_target(k->ref, k->endpoint, ref, endpoint)) {
            *out = k;
            return 0;
        }
    }
    if ((k = calloc(1, sizeof(*k))) == NULL) {
        return SPK_ERR_NOMEM;
    }
    k->ref = ref;
    k->endpoint = endpoint;
    k->fd = -1;
    k->item = -1;
    if (spk_endpoint_is_unix(endpoint)) {
        /* Connected by the first send (prov_unix_send). */
        k->is_unix = true;
        k->next = io->conns;
        io->conns = k;
        *out = k;
        return 0;
    }
    k->sock = zmq_socket(io->zctx, ZMQ_DEALER);
    r = SPK_ERR_INTERNAL;
    if (k->sock == NULL || zmq_setsockopt(k->sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(k->sock, ZMQ_IMMEDIATE, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(k->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl)) != 0 ||
        zmq_setsockopt(k->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max)) != 0 ||
        zmq_setsockopt(k->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0) {
        goto fail;
    }
    if (ref->has_curve && (r = prov_curve_setup(k->sock, ref)) != 0) {
        goto fail;
    }
    r = SPK_ERR_INTERNAL;
    snprintf(monitor_ep, sizeof(monitor_ep), "inproc://splitkey-conn-%p", (void *)k);
    if (zmq_socket_monitor(
            k->sock, monitor_ep,
            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 ||
        (k->monitor = zmq_socket(io->zctx, ZMQ_PAIR)) == NULL ||
        zmq_setsockopt(k->monitor, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_connect(k->monitor, monitor_ep) != 0) {
        goto fail;
    }
    if (zmq_connect(k->sock, endpoint) != 0) {
        r = SPK_ERR_UNAVAILABLE;
        goto fail;
    }
    k->next = io->conns;
    io->conns = k;
    *out = k;
    return 0;
fail:
    if (k->sock != NULL) { /* the monitor stops before its reader goes (prov_io_free) */
        (void)zmq_socket_monitor(k->sock, NULL, 0);
    }
    if (k->monitor != NULL) {
        zmq_close(k->monitor);
    }
    if (k->sock != NULL) {
        zmq_close(k->sock);
    }
    free(k);
    return r;
}

/*
 * prov_conn_requeue takes back |k|'s operations in flight, which its
 * combiner will not answer (the connection is gone): with |refusal| 0 to
 * |retry|, to be sent again on a new connection (a combiner restarting gets
 * the full wait); else they end with |refusal|.
 */
static void prov_conn_requeue(struct prov_io *io, struct prov_conn *k, struct prov_op **retry,
                              int refusal)
{
    struct prov_op *op;
    struct prov_op *next;

    pthread_mutex_lock(&io->lock);
    for (op = io->inflight; op != NULL; op = next) {
        next = op->next;
        if (op->conn != k) {
            continue;
        }
        prov_list_remove(&io->inflight, op);
        op->conn = NULL;
        if (refusal != 0) {
            prov_op_finish_locked(io, op, refusal);
        } else {
            op->peer_wait_until_ms = 0;
            prov_list_push(retry, op);
        }
    }
    pthread_mutex_unlock(&io->lock);
}

/*
 * prov_conn_events reads |k|'s connection and handshake events: whether a
 * handshake is under way, and whether the last one let this client in. A refusal (ZAP said no: the
 * CURVE key or the uid is not let in) is "not-allowed"; a handshake broken off without a word is
 * what a CURVE server does with a HELLO sealed to another key (the reference's combiner key is
 * wrong), or a combiner dying mid-handshake, which the next handshake corrects.
 * ZeroMQ never connects again after a refusal or a CURVE handshake broken
 * off: prov_conn_knock does, so a worker refused once is let in when the
 * combiner's allow file is fixed and reloaded, without its process being
 * replaced.
 * A combiner gone (killed, restarted) takes the operations it had: they are
 * sent again on a disconnect and once more when the next connection is up
 * (spk_resend_due).
 */
static void prov_conn_events(struct prov_io *io, struct prov_conn *k)
{
    uint8_t ev[6];

    for (;;) {
        uint16_t event;
        int got = zmq_recv(k->monitor, ev, sizeof(ev), ZMQ_DONTWAIT);
        int more = 0;
        size_t more_len = sizeof(more);

        if (got < 0) {
            break;
        }
        /* The second frame (the endpoint) says nothing we need. */
        while (zmq_getsockopt(k->monitor, ZMQ_RCVMORE, &more, &more_len) == 0 && more) {
            uint8_t skip[1];
            if (zmq_recv(k->monitor, skip, sizeof(skip), 0) < 0) {
                break;
            }
        }
        if (got != (int)sizeof(ev)) {
            continue;
        }
        memcpy(&event, ev, sizeof(event));
        k->handshaking = event == ZMQ_EVENT_CONNECTED;
        if (event == ZMQ_EVENT_CONNECTED) {
            k->connected_ms = spk_now_ms();
        } else if (event == ZMQ_EVENT_DISCONNECTED ||
                   event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            k->lost_ms = spk_now_ms();
        }
        if (spk_resend_due(&k->disconnected, event == ZMQ_EVENT_DISCONNECTED,
                           event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)) {
            prov_conn_requeue(io, k, &io->retry, 0);
        }
        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            k->refused = 0;
            k->breaks = 0;
            (void)spk_knock_admitted(&k->knock);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            k->refused = SPK_ERR_NOT_ALLOWED;
            (void)spk_knock_refused(&k->knock, spk_now_ms());
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            /* The connection ended mid-handshake: a combiner that cannot
             * open our HELLO (another key) drops it, but so does one killed
             * or stopping then, and ZeroMQ connects again either way. Only
             * a second quick break in a row says the key is wrong; a slow
             * one says the combiner had taken our HELLO (its key is ours)
             * and starts the count again. Without CURVE there is no key to
             * be wrong. */
            if (spk_now_ms() - k->connected_ms < PROV_QUICK_BREAK_MS) {
                k->breaks++;
            } else {
                k->breaks = 0;
            }
            k->refused =
                k->ref->has_curve && k->breaks >= PROV_HANDSHAKE_BREAKS ? SPK_ERR_HANDSHAKE : 0;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            k->refused = k->ref->has_curve ? SPK_ERR_HANDSHAKE : 0;
            (void)spk_knock_refused(&k->knock, spk_now_ms());
            break;
        default:
            break;
        }
    }
}

/* prov_conn_knock connects |k| anew when a refusal's wait is over. Until
 * then operations end at once with the refusal; from now they wait for the
 * new handshake, which says again whether this client is let in. */
static void prov_conn_knock(struct prov_conn *k, uint64_t now)
{
    if (!spk_knock_due(&k->knock, now)) {
        return;
    }
    k->refused = 0;
    (void)zmq_disconnect(k->sock, k->endpoint);
    (void)zmq_connect(k->sock, k->endpoint);
}

static void prov_io_answer(struct prov_io *io, const uint8_t *frame, size_t len)
{
    struct proto_msg *m = &io->rmsg;
    struct prov_op *op;
    int status;

    if (proto_msg_decode(m, frame, len) != 0) {
        return; /* dropped: the caller's deadline ends its operation */
    }
    pthread_mutex_lock(&io->lock);
    for (op = io->inflight; op != NULL; op = op->next) {
        if (op->req_id == m->req_id) {
            break;
        }
    }
    if (op != NULL) {
        status = proto_op_answer(m, op->result, sizeof(op->result), &op->result_len);
        prov_list_remove(&io->inflight, op);
        prov_op_finish_locked(io, op, status);
    }
    pthread_mutex_unlock(&io->lock);
    OPENSSL_cleanse(m, sizeof(*m));
}

/*
 * prov_unix_close ends |k|'s unix:// connection. Its operations in flight
 * go to |retry|, to be sent again on a new connection; if the combiner
 * closed PROV_UNIX_REFUSALS connections in a row before answering anything
 * on them, it refuses this client (its uid), and they end "not-allowed".
 * Returns whether it refuses.
 */
static bool prov_unix_close(struct prov_io *io, struct prov_conn *k, struct prov_op **retry)
{
    bool refused;

    close(k->fd);
    k->fd = -1;
    k->unanswered_closes = k->answered ? 0 : k->unanswered_closes + 1;
    refused = k->unanswered_closes >= PROV_UNIX_REFUSALS;
    prov_conn_requeue(io, k, retry, refused ? SPK_ERR_NOT_ALLOWED : 0);
    return refused;
}

/* prov_unix_send sends |op| on |k|'s unix:// connection, connecting first if
 * there is none. On failure *err is SPK_ERR_UNAVAILABLE for what a retry may
 * mend (nothing listening, the socket full, the connection lost), another
 * SPK_ERR_* for what it may not. */
static bool prov_unix_send(struct prov_io *io, struct prov_conn *k, struct prov_op *op,
                           struct prov_op **retry, int *err)
{
    if (k->fd < 0) {
        if ((*err = spk_unix_connect(&k->fd, k->endpoint)) != 0) {
            return false;
        }
        k->answered = false;
    }
    if (send(k->fd, op->frame, op->frame_len, MSG_DONTWAIT | MSG_NOSIGNAL) ==
        (ssize_t)op->frame_len) {
        return true;
    }
    *err = SPK_ERR_UNAVAILABLE;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
        prov_unix_close(io, k, retry)) {
        *err = SPK_ERR_NOT_ALLOWED;
    }
    return false;
}

/* prov_unix_read takes every answer waiting on |k|'s unix:// connection;
 * the end of the connection or an error closes it (prov_unix_close). */
static void prov_unix_read(struct prov_io *io, struct prov_conn *k)
{
    for (;;) {
        ssize_t got = recv(k->fd, io->rbuf, sizeof(io->rbuf), MSG_DONTWAIT);

        if (got > 0) {
            k->answered = true;
            k->unanswered_closes = 0;
            prov_io_answer(io, io->rbuf, (size_t)got);
            OPENSSL_cleanse(io->rbuf, (size_t)got);
            continue;
        }
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        (void)prov_unix_close(io, k, &io->retry);
        return;
    }
}

/* prov_io_send tries to send |op|; ends it on a hard failure or a refusal,
 * keeps it for a retry while it may still wait for a connection. */
static void prov_io_send(struct prov_io *io, struct prov_op *op, struct prov_op **retry)
{
    struct prov_conn *k = NULL;
    uint64_t now;
    int r;

    if ((r = prov_conn_get(io, op->ref, &k)) == 0) {
        if (k->is_unix
                ? prov_unix_send(io, k, op, retry, &r)
                : zmq_send(k->sock, op->frame, op->frame_len, ZMQ_DONTWAIT) == (int)op->frame_len) {
            op->conn = k;
            pthread_mutex_lock(&io->lock);
            prov_list_push(&io->inflight, op);
            pthread_mutex_unlock(&io->lock);
            return;
        }
        now = spk_now_ms();
        if (op->peer_wait_until_ms == 0) {
            op->peer_wait_until_ms = now + PROV_PEER_WAIT_MS;
        }
        if (!k->is_unix) {
            r = k->refused != 0 ? k->refused : SPK_ERR_UNAVAILABLE;
        }
        /* A handshake under way (a CURVE one on a slow host) is waited for
         * to the deadline; nothing listening, for PROV_PEER_WAIT_MS from
         * the first try or from the end of the last connection, whichever
         * is later (a combiner killed again while it held our handshake is
         * given the same time to come back as the first time). */
        if (r == SPK_ERR_UNAVAILABLE && now < op->deadline_ms &&
            (now < op->peer_wait_until_ms || now < k->lost_ms + PROV_PEER_WAIT_MS ||
             k->handshaking)) {
            prov_list_push(retry, op);
            return;
        }
    }
    pthread_mutex_lock(&io->lock);
    prov_op_finish_locked(io, op, r);
    pthread_mutex_unlock(&io->lock);
}

/* prov_io_expire ends what is past its deadline; returns ms to the next one
 * (at most |cap|). */
static long prov_io_expire(struct prov_io *io, long cap)
{
    uint64_t now = spk_now_ms();
    struct prov_op *op;
    struct prov_op *next;
    long wait = cap;

    pthread_mutex_lock(&io->lock);
    for (op = io->inflight; op != NULL; op = next) {
        next = op->next;
        if (op->deadline_ms <= now) {
            prov_list_remove(&io->inflight, op);
            prov_op_finish_locked(io, op, SPK_ERR_TIMEOUT);
        } else if ((long)(op->deadline_ms - now) < wait) {
            wait = (long)(op->deadline_ms - now);
        }
    }
    pthread_mutex_unlock(&io->lock);
    return wait;
}

static void *prov_io_main(void *arg)
{
    struct prov_io *io = arg;
    zmq_pollitem_t items[1 + 2 * 64];

    for (;;) {
        struct prov_op *todo;
        struct prov_op *retry = NULL;
        struct prov_conn *k;
        size_t n = 0;
        long wait;
        uint64_t now;

        pthread_mutex_lock(&io->lock);
        if (io->stop) {
            pthread_mutex_unlock(&io->lock);
            break;
        }
        todo = io->queue;
        io->queue = NULL;
        pthread_mutex_unlock(&io->lock);
        /* Retries first: they were submitted earlier. */
        while (io->retry != NULL) {
            struct prov_op *op = io->retry;
            prov_list_remove(&io->retry, op);
            prov_io_send(io, op, &retry);
        }
        while (todo != NULL) {
            struct prov_op *op = todo;
            prov_list_remove(&todo, op);
            prov_io_send(io, op, &retry);
        }
        io->retry = retry;

        items[n++] = (zmq_pollitem_t){NULL, io->kick_fd, ZMQ_POLLIN, 0};
        for (k = io->conns; k != NULL; k = k->next) {
            k->item = -1;
            if (n + 2 > sizeof(items) / sizeof(items[0])) {
                continue;
            }
            if (!k->is_unix) {
                items[n++] = (zmq_pollitem_t){k->sock, 0, ZMQ_POLLIN, 0};
                items[n++] = (zmq_pollitem_t){k->monitor, 0, ZMQ_POLLIN, 0};
            } else if (k->fd >= 0) {
                k->item = (int)n;
                items[n++] = (zmq_pollitem_t){NULL, k->fd, ZMQ_POLLIN, 0};
            }
        }
        wait = prov_io_expire(io, io->retry != NULL ? 10 : 1000);
        now = spk_now_ms();
        for (k = io->conns; k != NULL; k = k->next) {
            wait = spk_knock_wait_ms(&k->knock, now, wait);
        }
        if (zmq_poll(items, (int)n, wait) < 0 && errno != EINTR && errno != EAGAIN) {
            break;
        }
        prov_fd_drain(io->kick_fd);
        now = spk_now_ms();
        for (k = io->conns; k != NULL; k = k->next) {
            if (k->is_unix) {
                if (k->item >= 0 && items[k->item].revents != 0) {
                    prov_unix_read(io, k);
                }
                continue;
            }
            prov_conn_events(io, k);
            prov_conn_knock(k, now);
            for (;;) {
                int got = zmq_recv(k->sock, io->rbuf, sizeof(io->rbuf), ZMQ_DONTWAIT);
                if (got < 0) {
                    break;
                }
                if ((size_t)got <= sizeof(io->rbuf)) {
                    prov_io_answer(io, io->rbuf, (size_t)got);
                }
                OPENSSL_cleanse(io->rbuf,
                                (size_t)got < sizeof(io->rbuf) ? (size_t)got : sizeof(io->rbuf));
            }
        }
        (void)prov_io_expire(io, 0);
    }
    /* Stopped: nothing more will be answered. */
    pthread_mutex_lock(&io->lock);
    while (io->retry != NULL) {
        struct prov_op *op = io->retry;
        prov_list_remove(&io->retry, op);
        prov_op_finish_locked(io, op, SPK_ERR_UNAVAILABLE);
    }
    while (io->queue != NULL) {
        struct prov_op *op = io->queue;
        prov_list_remove(&io->queue, op);
        prov_op_finish_locked(io, op, SPK_ERR_UNAVAILABLE);
    }
    while (io->inflight != NULL) {
        struct prov_op *op = io->inflight;
        prov_list_remove(&io->inflight, op);
        prov_op_finish_locked(io, op, SPK_ERR_UNAVAILABLE);
    }
    pthread_mutex_unlock(&io->lock);
    return NULL;
}

/* ---- per-process state -------------------------------------------------------- */

static void prov_io_free(struct prov_io *io)
{
    struct prov_conn *k;

    if (io == NULL) {
        return;
    }
    pthread_mutex_lock(&io->lock);
    io->stop = true;
    pthread_mutex_unlock(&io->lock);
    prov_fd_kick(io->kick_fd);
    pthread_join(io->thread, NULL);
    while ((k = io->conns) != NULL) {
        io->conns = k->next;
        if (k->is_unix) {
            if (k->fd >= 0) {
                close(k->fd);
            }
        } else {
            /* The monitor stops before its reader goes: an event sent to a
             * reader that is gone blocks ZeroMQ's I/O thread for good. */
            (void)zmq_socket_monitor(k->sock, NULL, 0);
            zmq_close(k->monitor);
            zmq_close(k->sock);
        }
        free(k);
    }
    zmq_ctx_term(io->zctx);
    close(io->kick_fd);
    pthread_cond_destroy(&io->cond);
    pthread_mutex_destroy(&io->lock);
    free(io);
}

static struct prov_io *prov_io_new(struct prov_client *c)
{
    struct prov_io *io = calloc(1, sizeof(*io));
    sigset_t all, old;
    int rc;

    if (io == NULL) {
        return NULL;
    }
    io->pid = getpid();
    io->client = c;
    atomic_init(&io->next_id, 1);
    io->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io->kick_fd < 0 || (io->zctx = zmq_ctx_new()) == NULL) {
        goto fail;
    }
    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->cond, NULL);
    /* The host's signals are for its own threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&io->thread, NULL, prov_io_main, io);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&io->cond);
        pthread_mutex_destroy(&io->lock);
        goto fail;
    }
    return io;
fail:
    if (io->zctx != NULL) {
        zmq_ctx_term(io->zctx);
    }
    if (io->kick_fd >= 0) {
        close(io->kick_fd);
    }
    free(io);
    return NULL;
}

/* prov_io_get: this process's I/O state, made on first use. A state made by
 * another pid (before a fork) is abandoned as it is: its thread does not
 * exist here and its locks may be held by threads that do not either. */
static struct prov_io *prov_io_get(struct prov_client *c)
{
    struct prov_io *io = atomic_load(&c->io);
    struct prov_io *mine;

    if (io != NULL && io->pid == getpid()) {
        return io;
    }
    if ((mine = prov_io_new(c)) == NULL) {
        return NULL;
    }
    if (atomic_compare_exchange_strong(&c->io, &io, mine)) {
        return mine;
    }
    /* Another thread of this process was first (io now holds its state). */
    prov_io_free(mine);
    return io;
}

/* ---- the client -------------------------------------------------------------- */

struct prov_client *prov_client_new(const char *endpoint, int timeout_ms)
{
    struct prov_client *c;

    if (endpoint != NULL && !proto_endpoint_valid(endpoint)) {
        return NULL;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        return NULL;
    }
    if (endpoint != NULL) {
        memcpy(c->endpoint, endpoint, strlen(endpoint) + 1);
    }
    c->timeout_ms = timeout_ms;
    atomic_init(&c->routes, NULL);
    atomic_init(&c->io, NULL);
    return c;
}

void prov_client_free(struct prov_client *c)
{
    struct prov_io *io;
    struct prov_route *rt;

    if (c == NULL) {
        return;
    }
    io = atomic_load(&c->io);
    if (io != NULL && io->pid == getpid()) {
        prov_io_free(io);
    }
    rt = atomic_load(&c->routes);
    while (rt != NULL) {
        struct prov_route *next = rt->next;
        free(rt);
        rt = next;
    }
    free(c);
}

int prov_client_route(struct prov_client *c, const struct proto_keyref *ref)
{
    struct prov_route *rt = calloc(1, sizeof(*rt));
    struct prov_route *head;

    if (rt == NULL) {
        return SPK_ERR_NOMEM;
    }
    memcpy(rt->key_id, ref->key_id, sizeof(rt->key_id));
    rt->ref = *ref;
    head = atomic_load(&c->routes);
    do {
        rt->next = head;
    } while (!atomic_compare_exchange_weak(&c->routes, &head, rt));
    return 0;
}

static const struct proto_keyref *prov_client_lookup(struct prov_client *c,
                                                     const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    const struct prov_route *rt;

    /* Newest first: the last reference loaded for a key wins. */
    for (rt = atomic_load(&c->routes); rt != NULL; rt = rt->next) {
        if (sodium_memcmp(rt->key_id, key_id, PROTO_KEY_ID_LEN) == 0) {
            return &rt->ref;
        }
    }
    return NULL;
}

/* prov_op_wait waits for |op| to finish: pausing |job|, or blocking. */
static void prov_op_wait(struct prov_io *io, struct prov_op *op, ASYNC_JOB *job)
{
    if (job != NULL) {
        /*
         * Pause at least once, even when the answer is already in: the
         * application learns of the job's wait fd only from a pause
         * (SSL_ERROR_WANT_ASYNC), and one that tracks those fds (HAProxy)
         * must have seen it before the SSL is freed. The fd is readable then,
         * so the job resumes at once.
         */
        for (;;) {
            bool done;
            if (!ASYNC_pause_job()) {
                break;
            }
            pthread_mutex_lock(&io->lock);
            done = op->done;
            pthread_mutex_unlock(&io->lock);
            if (done) {
                break;
            }
        }
        prov_fd_drain(op->waker->fd);
        return;
    }
    {
        uint64_t until = op->deadline_ms + PROV_BACKSTOP_MS;
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)((until - spk_now_ms()) / 1000u);
        ts.tv_nsec += (long)((until - spk_now_ms()) % 1000u) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&io->lock);
        while (!op->done) {
            if (pthread_cond_timedwait(&io->cond, &io->lock, &ts) == ETIMEDOUT) {
                break;
            }
        }
        pthread_mutex_unlock(&io->lock);
    }
}

int prov_client_keyop(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op_kind,
                      const uint8_t *in, size_t in_len, uint16_t client_version, uint8_t *out,
                      size_t out_cap, size_t *out_len)
{
    struct prov_client *c = arg;
    ASYNC_JOB *job = ASYNC_get_current_job();
    const struct proto_keyref *ref;
    struct proto_msg *m = NULL;
    struct prov_op *op = NULL;
    struct prov_io *io;
    int r = SPK_ERR_INTERNAL;

    *out_len = 0;
    if (in_len > PROTO_BN_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    if ((ref = prov_client_lookup(c, key_id)) == NULL) {
        return SPK_ERR_UNKNOWN_KEY;
    }
    if ((io = prov_io_get(c)) == NULL) {
        return SPK_ERR_INTERNAL;
    }
    if ((op = calloc(1, sizeof(*op))) == NULL || (m = calloc(1, sizeof(*m))) == NULL) {
        r = SPK_ERR_NOMEM;
        goto out_free;
    }
    op->ref = ref;
    op->req_id = atomic_fetch_add(&io->next_id, 1);
    op->deadline_ms = spk_now_ms() + (uint64_t)c->timeout_ms;
    m->type = PROTO_MSG_OP_REQUEST;
    m->req_id = op->req_id;
    memcpy(m->u.op_req.key_id, key_id, PROTO_KEY_ID_LEN);
    m->u.op_req.op = op_kind;
    memcpy(m->u.op_req.input, in, in_len);
    m->u.op_req.input_len = in_len;
    m->u.op_req.client_version = client_version;
    r = proto_msg_encode(op->frame, sizeof(op->frame), &op->frame_len, m);
    OPENSSL_cleanse(m, sizeof(*m));
    free(m);
    m = NULL;
    if (r != 0) {
        goto out_free;
    }
    if (job != NULL) {
        if ((op->waker = prov_waker_of_job(c, job)) == NULL) {
            r = SPK_ERR_INTERNAL;
            goto out_free;
        }
        prov_fd_drain(op->waker->fd);
    }
    op->refs = 2;
    pthread_mutex_lock(&io->lock);
    prov_list_push(&io->queue, op);
    pthread_mutex_unlock(&io->lock);
    prov_fd_kick(io->kick_fd);

    prov_op_wait(io, op, job);

    pthread_mutex_lock(&io->lock);
    if (!op->done) {
        r = SPK_ERR_TIMEOUT;
    } else if ((r = op->status) == 0) {
        if (op->result_len > out_cap) {
            r = SPK_ERR_INTERNAL;
        } else {
            memcpy(out, op->result, op->result_len);
            *out_len = op->result_len;
        }
    }
    prov_op_put_locked(op);
    pthread_mutex_unlock(&io->lock);
    return r;
out_free:
    if (op != NULL) {
        prov_waker_put(op->waker);
        OPENSSL_cleanse(op, sizeof(*op));
        free(op);
    }
    free(m);
    return r;
}
