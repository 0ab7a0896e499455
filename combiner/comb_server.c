/*
 * comb_server.c: `combiner run`, the combiner as a daemon (comb_server.h).
 * It binds a ROUTER (ipc://, tcp://) or a SOCK_SEQPACKET socket (unix://,
 * the edge's cheaper channel: no I/O thread on either side, one datagram
 * per message, one recvmmsg and one sendmmsg per loop turn) at the
 * configuration's `listen` endpoint and serves
 * OP_REQUEST with a combiner that comb_conf_open built: its own share of
 * every key opened with its key file into locked memory, the others fetched
 * from the share-holders that the key's record names (comb_source_remote.c).
 * Every answer is OP_RESPONSE or ERROR; PING gets PONG.
 *
 * The door: a ZAP handler in this thread admits each connection before any
 * of its messages is read. Over ipc:// ZeroMQ hands it the peer's uid
 * (SO_PEERCRED, in the ZAP address "...:UID:GID:PID") and only the uids of
 * `client NAME uid` lines get in; over tcp:// the socket is a CURVE server
 * with the combiner's key, and only the keys of the `allow` file that have a
 * `client NAME curve` line get in. The client's name comes back with every
 * message (ZeroMQ's User-Id property) and selects the operations it may ask
 * for. Over unix:// the combiner reads SO_PEERCRED itself when it accepts
 * a connection, with the same `client NAME uid` lines. A refused
 * connection gets nothing and costs one log line.
 *
 * Hardened and with memory locked before any share is read.
 */

#define _GNU_SOURCE /* accept4, recvmmsg, sendmmsg, struct ucred */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>
#include <zmq.h>

#include "base/base.h"
#include "combiner/comb_server.h"
#include "split/split.h"

#define SERVER_POLL_MAX 300
/* How stale the answer to "is the edge that started me still there" may get
 * under load (idle, the loop wakes at least every second anyway). */
#define SERVER_PARENT_CHECK_MS 100
#define SERVER_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define SERVER_ZAP_DOMAIN "splitkey-combiner"
/* With no client line, an ipc:// combiner serves its own uid the TLS set:
 * the edge that started it. */
#define SERVER_SELF_CLIENT "self"

/* unix:// requests read per recvmmsg and answers written per sendmmsg. */
#define COMB_UNIX_BATCH 16
/* A longer datagram arrives truncated and is answered as malformed. */
#define COMB_UNIX_REQ_MAX SPK_UNIX_MSG_MAX
/* Answers queued for a client that does not read; beyond, they are dropped
 * and its operations time out. */
#define COMB_UNIX_OUT_MAX 4096

/* Who asked: a ROUTER identity, or a unix:// connection (slot and generation). */
struct server_peer {
    int conn; /* index in s->conns; -1: the ROUTER */
    uint64_t conn_gen;
    uint8_t id[COMB_SERVER_ID_MAX];
    size_t id_len;
};

/* One request waiting for the combiner: who asked, under which id. */
struct server_req {
    struct comb_server *s;
    struct server_peer peer;
    uint64_t req_id;
};

static void server_unix_queue(struct comb_server *s, const struct server_peer *peer,
                              const uint8_t *frame, size_t len);

/* ---- answers ------------------------------------------------------------------- */

static void server_send(struct comb_server *s, const struct server_peer *peer,
                        const struct proto_msg *m)
{
    size_t len = 0;

    if (proto_msg_encode(s->frame, PROTO_MSG_MAX, &len, m) != 0) {
        return;
    }
    if (peer->conn >= 0) {
        server_unix_queue(s, peer, s->frame, len);
    } else if (zmq_send(s->router, peer->id, peer->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) ==
               (int)peer->id_len) {
        /* ROUTER drops what it cannot route (the client went away): fine. */
        (void)zmq_send(s->router, s->frame, len, ZMQ_DONTWAIT);
    }
    OPENSSL_cleanse(s->frame, len);
}

static void server_send_error(struct comb_server *s, const struct server_peer *peer,
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
    server_send(s, peer, &m);
}

static void server_done(void *arg, const struct comb_result *res)
{
    struct server_req *req = arg;
    struct comb_server *s = req->s;
    struct proto_msg *m = s->msg;

    if (res->status != 0 || res->out_len == 0 || res->out_len > PROTO_BN_MAX) {
        s->num_failed++;
        server_send_error(s, &req->peer, req->req_id,
                          res->status != 0 ? res->status : SPK_ERR_INTERNAL, res->detail);
        if (res->detail != NULL && res->detail[0] != '\0') {
            spk_log("combiner", "operation failed: %s", res->detail);
        }
    } else {
        s->num_ok++;
        memset(m, 0, sizeof(*m));
        m->type = PROTO_MSG_OP_RESPONSE;
        m->req_id = req->req_id;
        memcpy(m->u.op_resp.result, res->out, res->out_len);
        m->u.op_resp.result_len = res->out_len;
        server_send(s, &req->peer, m);
        OPENSSL_cleanse(m, sizeof(*m));
    }
    OPENSSL_free(req);
}

/* ---- the door ------------------------------------------------------------------ */

static const struct sh_allow_client *server_allow_by_name(const struct sh_allow *allow,
                                                          const char *name)
{
    for (size_t i = 0; i < allow->num_clients; i++) {
        if (strcmp(allow->clients[i].name, name) == 0) {
            return &allow->clients[i];
        }
    }
    return NULL;
}

/* server_client_by_uid: the `client NAME uid` line of |uid|, or NULL with |why|. */
static const struct comb_conf_client *server_client_by_uid(const struct comb_gen *g, uint32_t uid,
                                                           const char **why)
{
    for (size_t i = 0; i < g->conf.num_clients; i++) {
        if (g->conf.clients[i].by_uid && g->conf.clients[i].uid == uid) {
            return &g->conf.clients[i];
        }
    }
    *why = "uid not among the client lines";
    return NULL;
}

/* server_ipc_uid: the peer uid of a ZAP address over ipc:// ("...:UID:GID:PID"). */
static bool server_ipc_uid(const char *address, uint32_t *out)
{
    const char *p = address + strlen(address);
    unsigned colons = 0;
    char *end = NULL;
    unsigned long v;

    while (p > address && colons < 3) {
        p--;
        colons += *p == ':';
    }
    if (colons != 3 || *p != ':') {
        return false;
    }
    errno = 0;
    v = strtoul(p + 1, &end, 10);
    if (errno != 0 || end == p + 1 || *end != ':' || v > UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/*
 * server_zap_decide: the client a ZAP request is for, or NULL with |why|.
 * Over ipc:// (NULL mechanism) by the peer's uid; over tcp:// (CURVE) by the
 * client key in the allow file, from its address ranges.
 */
static const struct comb_conf_client *server_zap_decide(struct comb_server *s,
                                                        const struct sh_zap_req *req, char *who,
                                                        size_t who_len, const char **why)
{
    const struct comb_gen *g = s->cur;

    if (!s->tcp && req->null_mechanism) {
        uint32_t uid = 0;

        if (!server_ipc_uid(req->address, &uid)) {
            *why = "no peer credentials";
            return NULL;
        }
        snprintf(who, who_len, "uid %u", (unsigned)uid);
        return server_client_by_uid(g, uid, why);
    }
    if (s->tcp && req->curve_pk != NULL) {
        const struct sh_allow_client *ac = sh_allow_find(&g->allow, req->curve_pk);
        const struct comb_conf_client *cl;
        char z85[PROTO_Z85_KEY_LEN + 1];

        zmq_z85_encode(z85, req->curve_pk, PROTO_X25519_LEN);
        snprintf(who, who_len, "key %s from %s", z85, req->address[0] != '\0' ? req->address : "-");
        if (ac == NULL) {
            *why = "client key not in the allow file";
            return NULL;
        }
        if (!sh_allow_address(ac, req->address)) {
            *why = "address not allowed for this client";
            return NULL;
        }
        cl = comb_conf_find_client(&g->conf, ac->name);
        if (cl == NULL || cl->by_uid) {
            *why = "no 'client NAME curve' line for this key's name";
            return NULL;
        }
        return cl;
    }
    snprintf(who, who_len, "%s", req->address[0] != '\0' ? req->address : "-");
    *why = "unsupported ZAP request or mechanism";
    return NULL;
}

/* server_zap_handle answers one ZAP request (RFC 27); the client's name is
 * the User-Id of its messages. */
static void server_zap_handle(struct comb_server *s)
{
    struct sh_zap_req req;
    char who[PROTO_Z85_KEY_LEN + SH_ZAP_ADDRESS_MAX + 16] = "";
    const char *why = "not allowed";
    const struct comb_conf_client *cl;

    if (!sh_zap_recv(s->zap, &req)) {
        return;
    }
    cl = server_zap_decide(s, &req, who, sizeof(who), &why);
    if (cl == NULL) {
        s->num_refused_peers++;
        spk_log("combiner", "refused a connection from %s: %s", who[0] != '\0' ? who : "-", why);
    }
    if (sh_zap_reply(s->zap, &req, cl != NULL, cl != NULL ? "OK" : why,
                     cl != NULL ? cl->name : "") != 0) {
        spk_log("combiner", "cannot answer a ZAP request: %s", zmq_strerror(zmq_errno()));
    }
}

static void server_zap_drain(struct comb_server *s)
{
    for (;;) {
        int events = 0;
        size_t len = sizeof(events);

        if (zmq_getsockopt(s->zap, ZMQ_EVENTS, &events, &len) != 0 || !(events & ZMQ_POLLIN)) {
            return;
        }
        server_zap_handle(s);
    }
}

/*
 * server_may: |user| (the ZAP User-Id of the message) may ask for |op| with
 * key |key_id|. A client removed by a reload may ask for nothing.
 */
static bool server_may(const struct comb_server *s, const char *user, uint8_t op,
                       const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    const struct comb_conf_client *cl;

    if (user == NULL || op >= 64) {
        return false;
    }
    cl = comb_conf_find_client(&s->cur->conf, user);
    if (cl == NULL || !(cl->ops & (1ull << op))) {
        return false;
    }
    if (!cl->by_uid) {
        const struct sh_allow_client *ac = server_allow_by_name(&s->cur->allow, cl->name);
        return ac != NULL && sh_allow_key(ac, key_id);
    }
    return true;
}

/* ---- requests ------------------------------------------------------------------ */

/* server_handle serves one request |frame| of client |user| (NULL: unknown). */
static void server_handle(struct comb_server *s, const struct server_peer *peer, const char *user,
                          const uint8_t *frame, size_t len)
{
    struct proto_msg *m = s->msg;
    struct server_req *req = NULL;
    struct comb_ctx *comb = s->cur->comb;
    uint8_t type = 0;
    uint64_t req_id = 0;
    int r;

    if ((r = proto_msg_decode(m, frame, len)) != 0) {
        if (proto_msg_peek(frame, len, &type, &req_id) == 0) {
            server_send_error(s, peer, req_id, r, "bad message");
        }
        return;
    }
    if (m->type == PROTO_MSG_PING) {
        struct proto_msg pong;
        memset(&pong, 0, sizeof(pong));
        pong.type = PROTO_MSG_PONG;
        pong.req_id = m->req_id;
        server_send(s, peer, &pong);
        return;
    }
    if (m->type == PROTO_MSG_ERROR) {
        return; /* never answered: two peers that answered errors would trade them forever */
    }
    if (m->type != PROTO_MSG_OP_REQUEST) {
        server_send_error(s, peer, m->req_id, SPK_ERR_UNSUPPORTED, "not a request");
        return;
    }
    if (!server_may(s, user, m->u.op_req.op, m->u.op_req.key_id)) {
        s->num_refused_ops++;
        spk_log("combiner", "refused %s for client %s: not among its operations or keys",
                proto_op_name(m->u.op_req.op), user != NULL ? user : "-");
        server_send_error(s, peer, m->req_id, SPK_ERR_NOT_ALLOWED,
                          "operation not allowed for this client");
        OPENSSL_cleanse(m, sizeof(*m));
        return;
    }
    req = OPENSSL_zalloc(sizeof(*req));
    if (req == NULL) {
        server_send_error(s, peer, m->req_id, SPK_ERR_NOMEM, "no memory");
        return;
    }
    req->s = s;
    req->peer = *peer;
    req->req_id = m->req_id;
    if (comb_alg_is_sign((enum comb_alg)m->u.op_req.op)) {
        r = comb_sign(comb, NULL, m->u.op_req.key_id, (enum comb_alg)m->u.op_req.op,
                      m->u.op_req.input, m->u.op_req.input_len, server_done, req);
    } else {
        struct comb_decrypt_params params;
        memset(&params, 0, sizeof(params));
        params.tls_version = m->u.op_req.client_version;
        r = comb_decrypt(comb, NULL, m->u.op_req.key_id, (enum comb_alg)m->u.op_req.op,
                         m->u.op_req.input, m->u.op_req.input_len, &params, server_done, req);
    }
    OPENSSL_cleanse(m, sizeof(*m));
    if (r != 0) {
        s->num_failed++;
        server_send_error(s, peer, req->req_id, r, comb_last_error(comb));
        OPENSSL_free(req);
    }
}

/*
 * server_poll: zmq_poll's answer for |items|, for one system call in place
 * of seven on a wake-up. zmq_poll asks every ZeroMQ socket for ZMQ_EVENTS
 * (getpid and a poll of its command pipe) in a pass before it sleeps and
 * again after it wakes. A socket's ZMQ_FD is edge-triggered: it becomes
 * readable on a change only once ZMQ_EVENTS or a read has seen nothing
 * pending. So the pass before sleeping is kept (nothing pending is then
 * missed, and a socket with input now is not slept on), and after waking a
 * ZeroMQ socket whose fd fired counts as readable without asking it again:
 * every reader here reads until EAGAIN, for which a spurious one costs one
 * read. Only ZMQ_POLLIN is asked of ZeroMQ sockets here. Returns the number
 * of items with revents, or -1 with errno (EINTR).
 */
static int server_poll(zmq_pollitem_t *items, size_t n, long wait)
{
    struct pollfd pfd[SERVER_POLL_MAX];
    bool ready = false;
    int r, count = 0;

    if (n > SERVER_POLL_MAX) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].revents = 0;
        if (items[i].socket != NULL) {
            int fd = -1, events = 0;
            size_t fd_len = sizeof(fd), events_len = sizeof(events);

            if (zmq_getsockopt(items[i].socket, ZMQ_FD, &fd, &fd_len) != 0 ||
                zmq_getsockopt(items[i].socket, ZMQ_EVENTS, &events, &events_len) != 0) {
                return -1;
            }
            items[i].revents = (short)(events & items[i].events & ZMQ_POLLIN);
            ready = ready || items[i].revents != 0;
            pfd[i] = (struct pollfd){fd, items[i].events & ZMQ_POLLIN ? POLLIN : 0, 0};
        } else {
            pfd[i] = (struct pollfd){items[i].fd,
                                     (short)((items[i].events & ZMQ_POLLIN ? POLLIN : 0) |
                                             (items[i].events & ZMQ_POLLOUT ? POLLOUT : 0)),
                                     0};
        }
    }
    if ((r = poll(pfd, n, ready ? 0 : (int)wait)) < 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        short ev = pfd[i].revents;

        if (items[i].socket != NULL) {
            if (ev & (POLLIN | POLLERR | POLLHUP)) {
                items[i].revents |= (short)(items[i].events & ZMQ_POLLIN);
            }
        } else {
            items[i].revents =
                (short)((ev & POLLIN ? ZMQ_POLLIN : 0) | (ev & POLLOUT ? ZMQ_POLLOUT : 0) |
                        (ev & ~(POLLIN | POLLOUT) ? ZMQ_POLLERR : 0));
        }
        count += items[i].revents != 0 ? 1 : 0;
    }
    return count;
}

static void server_read_router(struct comb_server *s)
{
    struct server_peer peer;

    memset(&peer, 0, sizeof(peer));
    peer.conn = -1;
    for (;;) {
        int more = 0;
        size_t more_len = sizeof(more);
        int id_len = zmq_recv(s->router, peer.id, sizeof(peer.id), ZMQ_DONTWAIT);
        zmq_msg_t body;
        bool ok;

        if (id_len < 0) {
            return;
        }
        if (zmq_getsockopt(s->router, ZMQ_RCVMORE, &more, &more_len) != 0 || !more) {
            continue;
        }
        zmq_msg_init(&body);
        ok = zmq_msg_recv(&body, s->router, ZMQ_DONTWAIT) >= 0;
        /* Skip any further frames of a malformed multipart message. */
        for (;;) {
            uint8_t junk[16];
            more = 0;
            if (zmq_getsockopt(s->router, ZMQ_RCVMORE, &more, &more_len) != 0 || !more) {
                break;
            }
            if (zmq_recv(s->router, junk, sizeof(junk), ZMQ_DONTWAIT) < 0) {
                break;
            }
            ok = false;
        }
        if (ok && zmq_msg_size(&body) <= PROTO_MSG_MAX && (size_t)id_len <= sizeof(peer.id)) {
            peer.id_len = (size_t)id_len;
            server_handle(s, &peer, zmq_msg_gets(&body, "User-Id"), zmq_msg_data(&body),
                          zmq_msg_size(&body));
        }
        OPENSSL_cleanse(zmq_msg_data(&body), zmq_msg_size(&body));
        zmq_msg_close(&body);
    }
}

/* ---- the unix:// door ----------------------------------------------------------- */

static void server_unix_close(struct comb_server *s, struct comb_unix_conn *conn)
{
    struct comb_unix_out *o, *next;

    (void)s;
    for (o = conn->out_head; o != NULL; o = next) {
        next = o->next;
        OPENSSL_clear_free(o, sizeof(*o) + o->len);
    }
    conn->out_head = conn->out_tail = NULL;
    conn->num_out = 0;
    if (conn->fd >= 0) {
        close(conn->fd);
    }
    conn->fd = -1;
}

/* server_unix_queue: the answer goes out at the end of this loop turn (one
 * sendmmsg for all of the connection's answers), or when the socket has
 * room again. One for a connection closed meanwhile is dropped. */
static void server_unix_queue(struct comb_server *s, const struct server_peer *peer,
                              const uint8_t *frame, size_t len)
{
    struct comb_unix_conn *conn = &s->conns[peer->conn];
    struct comb_unix_out *o;

    if (conn->fd < 0 || conn->gen != peer->conn_gen) {
        return;
    }
    if (conn->num_out >= COMB_UNIX_OUT_MAX || (o = OPENSSL_malloc(sizeof(*o) + len)) == NULL) {
        if (!conn->warned) {
            spk_log("combiner", "client %s does not read its answers: dropping them", conn->client);
        }
        conn->warned = true; /* one line per connection, not one per answer */
        return;
    }
    o->next = NULL;
    o->len = len;
    memcpy(o->frame, frame, len);
    if (conn->out_tail != NULL) {
        conn->out_tail->next = o;
    } else {
        conn->out_head = o;
    }
    conn->out_tail = o;
    conn->num_out++;
}

/* server_unix_flush writes the queued answers of |conn| until the socket is
 * full; a client that went away is closed. */
static void server_unix_flush(struct comb_server *s, struct comb_unix_conn *conn)
{
    while (conn->fd >= 0 && conn->out_head != NULL) {
        struct mmsghdr mm[COMB_UNIX_BATCH];
        struct iovec iov[COMB_UNIX_BATCH];
        struct comb_unix_out *o = conn->out_head;
        unsigned n = 0;
        int k;

        memset(mm, 0, sizeof(mm));
        for (; o != NULL && n < COMB_UNIX_BATCH; o = o->next, n++) {
            iov[n].iov_base = o->frame;
            iov[n].iov_len = o->len;
            mm[n].msg_hdr.msg_iov = &iov[n];
            mm[n].msg_hdr.msg_iovlen = 1;
        }
        k = sendmmsg(conn->fd, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                server_unix_close(s, conn);
            }
            return;
        }
        for (int i = 0; i < k; i++) {
            o = conn->out_head;
            conn->out_head = o->next;
            conn->num_out--;
            OPENSSL_clear_free(o, sizeof(*o) + o->len);
        }
        if (conn->out_head == NULL) {
            conn->out_tail = NULL;
        }
        if ((unsigned)k < n) {
            return;
        }
    }
}

/*
 * server_unix_accept admits each new connection by its peer uid
 * (SO_PEERCRED, from the kernel, as the ZAP handler does for ipc://): only
 * the uids of `client NAME uid` lines get in, and the name chosen here
 * selects the operations of every request on the connection.
 */
static void server_unix_accept(struct comb_server *s)
{
    for (;;) {
        struct ucred cred;
        socklen_t cred_len = sizeof(cred);
        const struct comb_conf_client *cl;
        const char *why = "not allowed";
        struct comb_unix_conn *conn = NULL;
        int fd = accept4(s->unix_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            return;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 ||
            cred_len != sizeof(cred)) {
            s->num_refused_peers++;
            spk_log("combiner", "refused a connection: no peer credentials");
            close(fd);
            continue;
        }
        if ((cl = server_client_by_uid(s->cur, (uint32_t)cred.uid, &why)) == NULL) {
            s->num_refused_peers++;
            spk_log("combiner", "refused a connection from uid %u: %s", (unsigned)cred.uid, why);
            close(fd);
            continue;
        }
        for (size_t i = 0; i < COMB_SERVER_CONN_MAX; i++) {
            if (s->conns[i].fd < 0) {
                conn = &s->conns[i];
                break;
            }
        }
        if (conn == NULL) {
            spk_log("combiner", "refused a connection from uid %u: %d connections already",
                    (unsigned)cred.uid, COMB_SERVER_CONN_MAX);
            close(fd);
            continue;
        }
        conn->fd = fd;
        conn->gen = ++s->next_conn_gen;
        conn->warned = false;
        snprintf(conn->client, sizeof(conn->client), "%s", cl->name);
    }
}

/* server_unix_read serves what |conn| sent: up to COMB_UNIX_BATCH requests
 * per recvmmsg. An empty datagram is the end of the connection. */
static void server_unix_read(struct comb_server *s, size_t idx)
{
    struct comb_unix_conn *conn = &s->conns[idx];
    struct server_peer peer;

    memset(&peer, 0, sizeof(peer));
    peer.conn = (int)idx;
    peer.conn_gen = conn->gen;
    while (conn->fd >= 0) {
        struct mmsghdr mm[COMB_UNIX_BATCH];
        struct iovec iov[COMB_UNIX_BATCH];
        bool closed = false;
        int k;

        memset(mm, 0, sizeof(mm));
        for (int i = 0; i < COMB_UNIX_BATCH; i++) {
            iov[i].iov_base = s->unix_in + (size_t)i * COMB_UNIX_REQ_MAX;
            iov[i].iov_len = COMB_UNIX_REQ_MAX;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        k = recvmmsg(conn->fd, mm, COMB_UNIX_BATCH, MSG_DONTWAIT, NULL);
        if (k < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                server_unix_close(s, conn);
            }
            return;
        }
        for (int i = 0; i < k; i++) {
            const uint8_t *frame = iov[i].iov_base;
            size_t len = mm[i].msg_len;
            uint8_t type = 0;
            uint64_t req_id = 0;

            if (len == 0) {
                closed = true;
                break;
            }
            if (mm[i].msg_hdr.msg_flags & MSG_TRUNC) {
                if (proto_msg_peek(frame, len, &type, &req_id) == 0) {
                    server_send_error(s, &peer, req_id, SPK_ERR_MALFORMED, "bad message");
                }
            } else {
                server_handle(s, &peer, conn->client, frame, len);
            }
        }
        for (int i = 0; i < k; i++) {
            OPENSSL_cleanse(iov[i].iov_base,
                            mm[i].msg_len < COMB_UNIX_REQ_MAX ? mm[i].msg_len : COMB_UNIX_REQ_MAX);
        }
        if (closed) {
            server_unix_close(s, conn);
            return;
        }
        if (k < COMB_UNIX_BATCH) {
            return; /* drained; poll says when there is more */
        }
    }
}

/* server_unix_poll_items: the listening socket (unless draining) and every
 * open connection, POLLOUT while answers wait; |item_conn| gets the
 * connection of each item after the first. */
static size_t server_unix_poll_items(struct comb_server *s, zmq_pollitem_t *items,
                                     size_t item_conn[COMB_SERVER_CONN_MAX], bool draining)
{
    size_t n = 0;

    if (s->unix_fd < 0) {
        return 0;
    }
    items[n++] = (zmq_pollitem_t){NULL, s->unix_fd, draining ? 0 : ZMQ_POLLIN, 0};
    for (size_t i = 0; i < COMB_SERVER_CONN_MAX; i++) {
        struct comb_unix_conn *conn = &s->conns[i];

        if (conn->fd >= 0) {
            item_conn[n - 1] = i;
            items[n++] = (zmq_pollitem_t){
                NULL, conn->fd,
                (short)((draining ? 0 : ZMQ_POLLIN) | (conn->out_head != NULL ? ZMQ_POLLOUT : 0)),
                0};
        }
    }
    return n;
}

static void server_unix_serve(struct comb_server *s, const zmq_pollitem_t *items, size_t num_items,
                              const size_t item_conn[COMB_SERVER_CONN_MAX], bool draining)
{
    if (num_items == 0 || draining) {
        return;
    }
    for (size_t i = 1; i < num_items; i++) {
        if (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
            server_unix_read(s, item_conn[i - 1]);
        }
    }
    /* After the reads: a new connection may take a slot just closed. */
    if (items[0].revents & ZMQ_POLLIN) {
        server_unix_accept(s);
    }
}

static void server_unix_flush_all(struct comb_server *s)
{
    for (size_t i = 0; i < COMB_SERVER_CONN_MAX; i++) {
        if (s->conns[i].out_head != NULL) {
            server_unix_flush(s, &s->conns[i]);
        }
    }
}

/* ---- generations ------------------------------------------------------------------ */

static void server_gen_free(struct comb_gen *g)
{
    if (g == NULL) {
        return;
    }
    comb_free(g->comb); /* frees the holder sources and closes their sockets */
    sh_allow_cleanup(&g->allow);
    comb_conf_cleanup(&g->conf);
    OPENSSL_free(g);
}

/*
 * server_gen_load reads the configuration file into a new generation, not
 * yet built: the file, the holders' public keys, the allow file. The
 * client lines get their default here.
 */
static struct comb_gen *server_gen_load(const char *path, char *why, size_t why_len)
{
    struct comb_gen *g = OPENSSL_zalloc(sizeof(*g));
    char reason[1024] = "";

    if (g == NULL) {
        snprintf(why, why_len, "no memory");
        return NULL;
    }
    if (comb_conf_load(&g->conf, path, NULL, NULL, why, why_len) != 0) {
        OPENSSL_free(g);
        return NULL;
    }
    if (g->conf.allow_path[0] != '\0' &&
        sh_allow_load(&g->allow, g->conf.allow_path, reason, sizeof(reason)) != 0) {
        /* sh_allow_load's reason names the file already. */
        snprintf(why, why_len, "config '%s': allow file: %.900s", path, reason);
        server_gen_free(g);
        return NULL;
    }
    if (g->conf.num_clients == 0) {
        struct comb_conf_client *self = OPENSSL_zalloc(sizeof(*self));
        if (self == NULL) {
            snprintf(why, why_len, "no memory");
            server_gen_free(g);
            return NULL;
        }
        snprintf(self->name, sizeof(self->name), "%s", SERVER_SELF_CLIENT);
        self->by_uid = true;
        self->uid = (uint32_t)geteuid();
        self->ops = COMB_OPS_TLS;
        g->conf.clients = self;
        g->conf.num_clients = 1;
    }
    return g;
}

/* server_gen_build opens the shares and connects the holders of |g|. */
static int server_gen_build(struct comb_server *s, struct comb_gen *g, int wait_ms, char *why,
                            size_t why_len)
{
    return comb_conf_open(&g->comb, &g->conf, s->zctx, wait_ms, why, why_len);
}

static void server_report_silent(void *arg, const char *name, const char *endpoint, bool connected,
                                 const struct spk_hist *latency)
{
    (void)arg;
    (void)latency;
    if (!connected) {
        spk_log("combiner", "holder %s at %s does not answer yet", name, endpoint);
    }
}

/*
 * server_reload_exp_note: a process that `combiner run` started on OpenSSL's
 * AVX2 code (exp-code, combiner/cmd/exp.c) keeps it until it restarts; a
 * reload that brings keys it is slower for says so.
 */
static void server_reload_exp_note(const struct comb_gen *g)
{
    const char *cap = getenv("OPENSSL_ia32cap");
    size_t other = 0;

    if (cap == NULL || strcmp(cap, COMB_EXP_AVX2_MASK) != 0) {
        return;
    }
    for (size_t i = 0; i < g->conf.num_keys; i++) {
        other += !comb_exp_avx2_suits(g->conf.keys[i].mode, g->conf.keys[i].modulus_len);
    }
    if (other > 0) {
        spk_log("combiner",
                "reload: %zu key(s) not RSA-2048, for which OpenSSL's AVX2 code that this process "
                "runs (exp-code) is slower; a restart chooses again",
                other);
    }
}

/* server_reload: SIGHUP. The file is read again; a new generation warms up
 * beside the serving one, which goes on serving if anything is wrong. */
static void server_reload(struct comb_server *s, const char *path, bool listen_overridden)
{
    struct comb_gen *g;
    char why[COMB_CONF_WHY_MAX * 4] = "";

    if (s->next != NULL || s->old != NULL) {
        spk_log("combiner", "reload: the previous one is still in progress; try again");
        return;
    }
    if ((g = server_gen_load(path, why, sizeof(why))) == NULL ||
        server_gen_build(s, g, 0, why, sizeof(why)) != 0) {
        server_gen_free(g);
        s->reloads_failed++;
        spk_log("combiner", "reload failed: %s; serving the previous configuration", why);
        return;
    }
    if (!listen_overridden && strcmp(g->conf.listen, s->listen) != 0) {
        spk_log("combiner", "reload: listen changes only with a restart");
    }
    server_reload_exp_note(g);
    /* The old set serves meanwhile, so the new one may take its time: holders
     * behind slow links need a few round trips for their CURVE sessions. */
    g->warm_deadline_ms =
        spk_now_ms() + (g->conf.timeout_ms * 3 > 3000 ? g->conf.timeout_ms * 3 : 3000);
    s->next = g;
}

/*
 * server_reload_step: the warming generation takes over once every holder
 * is connected; after the warm-up deadline once any is (a dead holder in the
 * new file must not block the reload); and at the latest 30 s after the
 * SIGHUP, whatever then. The old one is freed once its operations are
 * answered.
 */
static void server_reload_step(struct comb_server *s)
{
    uint64_t now = spk_now_ms();

    if (s->next != NULL) {
        size_t total = 0;
        size_t connected = comb_remote_connected(s->next->comb, &total);

        if (connected == total || (now >= s->next->warm_deadline_ms && connected > 0) ||
            now >= s->next->warm_deadline_ms + 30000) {
            (void)comb_remote_each(s->next->comb, server_report_silent, NULL);
            s->old = s->cur;
            s->cur = s->next;
            s->next = NULL;
            s->reloads_ok++;
            spk_log("combiner", "reloaded: %zu key(s), %zu holder(s), %zu client(s)",
                    s->cur->conf.num_keys, s->cur->conf.num_holders, s->cur->conf.num_clients);
        }
    }
    if (s->old != NULL && comb_pending(s->old->comb) == 0) {
        server_gen_free(s->old);
        s->old = NULL;
    }
}

static size_t server_poll_gen(struct comb_gen *g, zmq_pollitem_t *items, size_t cap, long *wait)
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

/* server_poll_result hands |g| the revents of its |num| items (g may have
 * none: then it reads every socket, as without a poll). */
static void server_poll_result(struct comb_gen *g, const zmq_pollitem_t *items, size_t num)
{
    if (g != NULL) {
        comb_poll_result(g->comb, items, num);
    }
}

/* server_readable: the item |at| (SIZE_MAX: not polled) had something to read. */
static bool server_readable(const zmq_pollitem_t *items, size_t at)
{
    return at != SIZE_MAX && (items[at].revents & ZMQ_POLLIN) != 0;
}

static void server_process_gen(struct comb_gen *g)
{
    int r;

    if (g != NULL && (r = comb_process(g->comb)) != 0) {
        spk_log("combiner", "process: %s", spk_strerror(r));
    }
}

/* ---- binding ---------------------------------------------------------------------- */

/* server_socket_mode: 0600 for the socket file at |path|, or 0660 and the
 * group of socket-group. */
static int server_socket_mode(const struct comb_gen *g, const char *path)
{
    if (g->conf.socket_group[0] != '\0') {
        struct group gr, *found = NULL;
        char buf[4096];

        if (getgrnam_r(g->conf.socket_group, &gr, buf, sizeof(buf), &found) != 0 || found == NULL ||
            chown(path, (uid_t)-1, gr.gr_gid) != 0 || chmod(path, 0660) != 0) {
            spk_log("combiner", "socket-group %s for %s: %s", g->conf.socket_group, path,
                    found == NULL ? "no such group" : strerror(errno));
            return SPK_ERR_IO;
        }
    } else if (chmod(path, 0600) != 0) {
        spk_log("combiner", "chmod %s: %s", path, strerror(errno));
        return SPK_ERR_IO;
    }
    return 0;
}

/*
 * server_bind_unix: unix://, a SOCK_SEQPACKET socket made under umask 077
 * and then set to 0600 (0660 with socket-group), as for ipc://. A socket
 * file left by a combiner that died is replaced; any other file is not.
 */
static int server_bind_unix(struct comb_server *s, const struct comb_gen *g)
{
    struct sockaddr_un sa;
    socklen_t sa_len = 0;
    const char *path = s->listen + SPK_UNIX_SCHEME_LEN;
    struct stat st;
    mode_t old;
    int r;

    if (spk_unix_addr(&sa, &sa_len, s->listen) != 0) {
        spk_log("combiner", "listen %s: the path is empty or longer than %zu bytes", s->listen,
                sizeof(sa.sun_path) - 1);
        return SPK_ERR_INVALID_ARG;
    }
    if ((s->unix_in = OPENSSL_zalloc((size_t)COMB_UNIX_BATCH * COMB_UNIX_REQ_MAX)) == NULL) {
        spk_log("combiner", "no memory");
        return SPK_ERR_NOMEM;
    }
    s->unix_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->unix_fd < 0) {
        spk_log("combiner", "socket: %s", strerror(errno));
        return SPK_ERR_IO;
    }
    if (path[0] != '@' && lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            spk_log("combiner", "listen %s: the file exists and is not a socket", s->listen);
            return SPK_ERR_IO;
        }
        (void)unlink(path);
    }
    old = umask(077);
    r = bind(s->unix_fd, (struct sockaddr *)&sa, sa_len);
    umask(old);
    if (r != 0 || listen(s->unix_fd, COMB_SERVER_CONN_MAX) != 0) {
        spk_log("combiner", "cannot bind %s: %s", s->listen, strerror(errno));
        return SPK_ERR_IO;
    }
    if (path[0] == '@') {
        return 0; /* the abstract namespace has no file; the uid check remains */
    }
    if (lstat(path, &st) == 0) {
        s->unix_ino = (uint64_t)st.st_ino;
    }
    return server_socket_mode(g, path);
}

/*
 * server_bind binds the ROUTER behind the door. ipc://: the socket file is
 * made under umask 077 and then set to 0600 (0660 with socket-group), so no
 * umask of the caller lets another user connect; the ZAP handler checks the
 * peer uid of every connection anyway. tcp://: a CURVE server with the
 * combiner's transport key.
 */
static int server_bind(struct comb_server *s, const struct comb_gen *g)
{
    int64_t maxmsg = PROTO_ZMQ_MAXMSGSIZE;
    int zero = 0;
    int one = 1;

    if (spk_endpoint_is_unix(s->listen)) {
        return server_bind_unix(s, g);
    }
    s->router = zmq_socket(s->zctx, ZMQ_ROUTER);
    if (s->router == NULL || zmq_setsockopt(s->router, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(s->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0 ||
        zmq_setsockopt(s->router, ZMQ_ZAP_DOMAIN, SERVER_ZAP_DOMAIN, strlen(SERVER_ZAP_DOMAIN)) !=
            0) {
        spk_log("combiner", "cannot make the ROUTER socket: %s", zmq_strerror(zmq_errno()));
        return SPK_ERR_IO;
    }
    if (s->tcp) {
        struct proto_holder_secret *me = NULL;
        int r;

        if ((r = split_holder_secret_load(&me, g->conf.key_path)) != 0) {
            spk_log("combiner", "key %s: %s", g->conf.key_path, spk_strerror(r));
            return r;
        }
        r = zmq_setsockopt(s->router, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
            zmq_setsockopt(s->router, ZMQ_CURVE_SECRETKEY, me->curve_sk, PROTO_X25519_LEN) != 0;
        spk_secret_free(me);
        if (r != 0 || zmq_bind(s->router, s->listen) != 0) {
            spk_log("combiner", "cannot bind %s: %s", s->listen, zmq_strerror(zmq_errno()));
            return SPK_ERR_IO;
        }
        return 0;
    }
    {
        const char *path = s->listen + strlen("ipc://");
        mode_t old = umask(077);
        int r = zmq_bind(s->router, s->listen);
        int e = zmq_errno();

        umask(old);
        if (r != 0) {
            spk_log("combiner", "cannot bind %s: %s", s->listen, zmq_strerror(e));
            return SPK_ERR_IO;
        }
        if (path[0] == '@') {
            return 0; /* the abstract namespace has no file; the uid check remains */
        }
        return server_socket_mode(g, path);
    }
}

static int server_start(struct comb_server *s, const struct comb_server_opts *o)
{
    char why[COMB_CONF_WHY_MAX * 4] = "";
    char crt[256];
    struct comb_gen *g;
    sigset_t set;
    int r;

    if ((g = server_gen_load(o->config_path, why, sizeof(why))) == NULL) {
        spk_log("combiner", "%s", why);
        return SPK_ERR_INVALID_ARG;
    }
    s->cur = g;
    snprintf(s->listen, sizeof(s->listen), "%s", o->listen != NULL ? o->listen : g->conf.listen);
    if (strncmp(s->listen, "ipc://", 6) != 0 && strncmp(s->listen, "tcp://", 6) != 0 &&
        !spk_endpoint_is_unix(s->listen)) {
        spk_log("combiner",
                "config '%s': no 'listen unix://PATH', 'listen ipc://PATH' or 'listen "
                "tcp://HOST:PORT' line",
                o->config_path);
        return SPK_ERR_INVALID_ARG;
    }
    s->tcp = strncmp(s->listen, "tcp://", 6) == 0;
    if (s->tcp && g->conf.allow_path[0] == '\0') {
        spk_log("combiner",
                "config '%s': listen tcp:// needs an 'allow' file and 'client NAME curve "
                "OPS' lines: a tcp:// combiner serves CURVE clients only",
                o->config_path);
        return SPK_ERR_INVALID_ARG;
    }
    /* Memory is locked before the first share is read. */
    if ((r = spk_process_harden(o->allow_unlocked || g->conf.allow_unlocked, why, sizeof(why))) !=
        0) {
        spk_log("combiner",
                "%s (allow-unlocked yes or --allow-unlocked runs without locked memory)",
                why[0] != '\0' ? why : spk_strerror(r));
        return r;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        spk_log("combiner", "signalfd: %s", strerror(errno));
        return SPK_ERR_IO;
    }
    s->frame = OPENSSL_zalloc(PROTO_MSG_MAX);
    s->msg = OPENSSL_zalloc(sizeof(*s->msg));
    s->zctx = zmq_ctx_new();
    if (s->frame == NULL || s->msg == NULL || s->zctx == NULL) {
        spk_log("combiner", "no memory");
        return SPK_ERR_NOMEM;
    }
    /* The ZAP handler first: a ROUTER with a ZAP domain and no handler would admit anyone. */
    s->zap = zmq_socket(s->zctx, ZMQ_REP);
    if (s->zap == NULL || zmq_bind(s->zap, SERVER_ZAP_ENDPOINT) != 0) {
        spk_log("combiner", "cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        return SPK_ERR_IO;
    }
    if ((r = server_gen_build(s, g, 0, why, sizeof(why))) != 0) {
        spk_log("combiner", "%s", why);
        return r;
    }
    if ((r = server_bind(s, g)) != 0) {
        return r;
    }
    /* The holders are warmed up (up to 1.5 s, all of it when one is down)
     * so that the first operations do not find their CURVE sessions still
     * being set up; holders that stay silent are reported, not fatal. The
     * socket is bound first: a client that comes meanwhile (to a combiner
     * restarted after a crash, say) finds a listener and waits, in its
     * ZeroMQ handshake (whose ZAP check the loop answers) or in the
     * unix:// listen queue, instead of finding nothing there and giving up
     * (splitkey.so waits a second for a listener). */
    (void)comb_remote_wait_connected(g->comb, 1500);
    (void)comb_remote_each(g->comb, server_report_silent, NULL);
    if (!o->no_metrics && g->conf.metrics[0] != '\0' &&
        (r = spk_mserver_open(&s->metrics, s->zctx, g->conf.metrics, "combiner",
                              comb_metrics_render, s)) != 0) {
        return r;
    }
    comb_crt_report(g->comb, crt, sizeof(crt));
    spk_log("combiner", "RSA private-key operations: CRT halves %s", crt);
    spk_log("combiner", "serving %s (%zu key(s), %zu holder(s), %zu client(s), memory %s)",
            s->listen, g->conf.num_keys, g->conf.num_holders, g->conf.num_clients,
            spk_memory_locked() ? "locked" : "NOT locked");
    return 0;
}

/* server_unix_stop: after a drain the last answers get up to a second to
 * leave (as the ROUTER's linger gives them); the socket file goes if it is
 * still the one we bound. */
static void server_unix_stop(struct comb_server *s, bool clean)
{
    uint64_t until = spk_now_ms() + (clean ? 1000 : 0);
    struct stat st;

    for (;;) {
        struct pollfd pfd[COMB_SERVER_CONN_MAX];
        nfds_t n = 0;

        server_unix_flush_all(s);
        for (size_t i = 0; i < COMB_SERVER_CONN_MAX; i++) {
            if (s->conns[i].fd >= 0 && s->conns[i].out_head != NULL) {
                pfd[n++] = (struct pollfd){s->conns[i].fd, POLLOUT, 0};
            }
        }
        if (n == 0 || spk_now_ms() >= until) {
            break;
        }
        (void)poll(pfd, n, 50);
    }
    for (size_t i = 0; i < COMB_SERVER_CONN_MAX; i++) {
        server_unix_close(s, &s->conns[i]);
    }
    if (s->unix_fd >= 0) {
        const char *path = s->listen + SPK_UNIX_SCHEME_LEN;

        close(s->unix_fd);
        s->unix_fd = -1;
        if (path[0] != '@' && s->unix_ino != 0 && lstat(path, &st) == 0 &&
            (uint64_t)st.st_ino == s->unix_ino) {
            (void)unlink(path);
        }
    }
    OPENSSL_clear_free(s->unix_in, (size_t)COMB_UNIX_BATCH * COMB_UNIX_REQ_MAX);
    s->unix_in = NULL;
}

static void server_stop(struct comb_server *s, bool clean)
{
    /* The generations go first: their sources close sockets of zctx. */
    server_gen_free(s->next);
    server_gen_free(s->old);
    server_gen_free(s->cur);
    if (s->router != NULL) {
        /* The answers of a drain were only queued: give them up to a second to
         * reach the edge instead of the linger 0 that start-up chose. */
        int flush_ms = clean ? 1000 : 0;

        (void)zmq_setsockopt(s->router, ZMQ_LINGER, &flush_ms, sizeof(flush_ms));
        zmq_close(s->router);
    }
    server_unix_stop(s, clean);
    if (s->zap != NULL) {
        zmq_close(s->zap);
    }
    spk_mserver_close(&s->metrics);
    if (s->zctx != NULL) {
        zmq_ctx_term(s->zctx);
    }
    if (s->sigfd >= 0) {
        close(s->sigfd);
    }
    OPENSSL_clear_free(s->frame, PROTO_MSG_MAX);
    OPENSSL_clear_free(s->msg, sizeof(*s->msg));
}

int comb_server_run(const struct comb_server_opts *o)
{
    struct comb_server *s = OPENSSL_zalloc(sizeof(*s));
    uint64_t drain_deadline = 0;
    /* Started by the edge: stop when it is gone. Started alone (under an init
     * system, parent pid 1): the parent never changes. */
    pid_t parent = getppid();
    uint64_t parent_checked_ms = spk_now_ms();
    int status = 1;

    if (s == NULL) {
        spk_log("combiner", "no memory");
        return 1;
    }
    s->sigfd = -1;
    s->unix_fd = -1;
    for (size_t i = 0; i < COMB_SERVER_CONN_MAX; i++) {
        s->conns[i].fd = -1;
    }
    if (server_start(s, o) != 0) {
        goto out;
    }
    for (;;) {
        zmq_pollitem_t items[SERVER_POLL_MAX];
        size_t n = 0;
        size_t num_unix;
        size_t item_conn[COMB_SERVER_CONN_MAX];
        size_t at_router = SIZE_MAX, at_sig, at_zap = SIZE_MAX, at_metrics = SIZE_MAX;
        size_t at_gen[3], num_gen[3];
        struct comb_gen *gens[3] = {s->cur, s->next, s->old};
        long wait = -1;
        struct signalfd_siginfo si;
        bool signalled = false;
        uint64_t now;

        /* items[0 .. num_unix) are the unix:// door's, when it is one. */
        num_unix = server_unix_poll_items(s, items, item_conn, drain_deadline != 0);
        n += num_unix;
        if (s->router != NULL) {
            at_router = n;
            items[n++] = (zmq_pollitem_t){s->router, 0, drain_deadline == 0 ? ZMQ_POLLIN : 0, 0};
            /* Only the ROUTER asks the ZAP handler (the holder sockets are
             * CURVE clients, the metrics socket is a raw ZMQ_STREAM): behind
             * a unix:// door it is not polled, which saves zmq_poll a
             * ZMQ_EVENTS check (getpid + poll) before and after it sleeps. */
            at_zap = n;
            items[n++] = (zmq_pollitem_t){s->zap, 0, ZMQ_POLLIN, 0};
        }
        at_sig = n;
        items[n++] = (zmq_pollitem_t){NULL, s->sigfd, ZMQ_POLLIN, 0};
        if (s->metrics.stream != NULL) {
            at_metrics = n;
            items[n++] = (zmq_pollitem_t){s->metrics.stream, 0, ZMQ_POLLIN, 0};
        }
        for (size_t i = 0; i < 3; i++) {
            at_gen[i] = n;
            num_gen[i] = server_poll_gen(gens[i], items + n, SERVER_POLL_MAX - n, &wait);
            n += num_gen[i];
        }
        if (wait < 0 || wait > 1000) {
            wait = 1000;
        }
        if ((s->next != NULL || drain_deadline != 0) && wait > 50) {
            wait = 50;
        }
        /* Each source below is read only when its item says so: a read of
         * an empty socket costs system calls. */
        if (server_poll(items, n, wait) < 0) {
            if (errno != EINTR) {
                spk_log("combiner", "poll: %s", zmq_strerror(errno));
                goto out;
            }
            /* revents are not to be trusted: look at everything */
            for (size_t i = 0; i < n; i++) {
                items[i].revents = items[i].events;
            }
        }
        for (size_t i = 0; i < 3; i++) {
            server_poll_result(gens[i], items + at_gen[i], num_gen[i]);
        }
        while (server_readable(items, at_sig) &&
               read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            signalled = true;
            if (si.ssi_signo == SIGHUP) {
                server_reload(s, o->config_path, o->listen != NULL);
            } else if (drain_deadline == 0) {
                /* Stop taking requests; answer the ones in flight. */
                drain_deadline = spk_now_ms() + s->cur->conf.timeout_ms + 500;
                spk_log("combiner", "draining %zu operation(s)", comb_pending(s->cur->comb));
            }
        }
        /*
         * The edge that started it is gone: leave at once, without the drain
         * a SIGTERM asks for. getppid() is a system call, so it is asked on
         * every signal and otherwise at most every SERVER_PARENT_CHECK_MS.
         * The edge sets PR_SET_PDEATHSIG (SIGTERM) on its combiner, so its
         * death wakes this loop through the signalfd and is seen in that
         * same turn, as before. PR_SET_PDEATHSIG alone would not do: its
         * SIGTERM means "drain" here, it follows the thread that forked
         * rather than the process, and a combiner started otherwise lacks it.
         */
        now = spk_now_ms();
        if (signalled || now - parent_checked_ms >= SERVER_PARENT_CHECK_MS) {
            parent_checked_ms = now;
            if (getppid() != parent) {
                break;
            }
        }
        if (server_readable(items, at_zap)) {
            server_zap_drain(s);
        }
        server_unix_serve(s, items, num_unix, item_conn, drain_deadline != 0);
        if (drain_deadline == 0 && server_readable(items, at_router)) {
            server_read_router(s);
        }
        if (server_readable(items, at_metrics)) {
            spk_mserver_read(&s->metrics);
        }
        server_process_gen(s->cur);
        server_process_gen(s->next);
        server_process_gen(s->old);
        server_reload_step(s);
        server_unix_flush_all(s);
        if (drain_deadline != 0 && ((comb_pending(s->cur->comb) == 0 && s->old == NULL) ||
                                    spk_now_ms() >= drain_deadline)) {
            break;
        }
    }
    spk_log("combiner", "stopping (%llu ok, %llu failed)", (unsigned long long)s->num_ok,
            (unsigned long long)s->num_failed);
    status = 0;
out:
    server_stop(s, status == 0);
    OPENSSL_free(s);
    return status;
}
