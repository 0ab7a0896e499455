/*
 * edge_conn.c: one client connection of the edge: accept, the TLS handshake
 * (an ASYNC job paused on a private-key operation goes on when the SSL's
 * async callback says the operation ended), the upstream connection with its
 * PROXY header, and the relay with one buffer per direction: a side is read
 * only when the buffer towards the other side is empty (backpressure), and
 * an EOF on one side becomes a half-close on the other. What the SSL writes
 * to the client is sent once per run of the connection (edge_out_write).
 */

/* accept4 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "edge/internal.h"

static void edge_conn_free(struct edge_conn *c);
static void edge_conn_note_used(size_t *used, size_t len);

static int edge_ver_index(const SSL *ssl)
{
    int v = SSL_version(ssl);

    return v == TLS1_2_VERSION ? 0 : v == TLS1_3_VERSION ? 1 : 2;
}

const char *const edge_ver_names[EDGE_VER_NUM] = {"TLSv1.2", "TLSv1.3", "unknown"};

static void edge_addr_str(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else {
        snprintf(out, cap, "unknown");
    }
}

/*
 * edge_handshake_failed counts a failed handshake and logs one line with the
 * client's address and why: |reason| if given, else the first OpenSSL error
 * (with the provider's detail, e.g. the combiner's answer), else what
 * SSL_get_error said. Called before the error queue is cleared.
 */
void edge_handshake_failed(struct edge_conn *c, int ssl_err, const char *reason)
{
    struct edge_loop *L = c->loop;
    char addr[INET6_ADDRSTRLEN + 16];
    char why[300] = "";
    const char *data = NULL;
    int flags = 0;
    unsigned long e = 0;

    L->num_failed_handshakes++;
    L->hs[1][edge_ver_index(c->ssl)][0]++;
    edge_addr_str(&c->peer, addr, sizeof(addr));
    if (reason == NULL) {
        /* The provider's failure carries the combiner's reason as data. */
        unsigned long first = 0;
        while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
            if (first == 0) {
                first = e;
                ERR_error_string_n(e, why, sizeof(why));
                if (ERR_reason_error_string(e) != NULL) {
                    snprintf(why, sizeof(why), "%s", ERR_reason_error_string(e));
                }
            }
            if ((flags & ERR_TXT_STRING) != 0 && data != NULL && data[0] != '\0' &&
                strncmp(data, "splitkey", 8) == 0) {
                snprintf(why, sizeof(why), "%s", data);
                break;
            }
        }
        if (first == 0) {
            snprintf(why, sizeof(why), "%s",
                     ssl_err == SSL_ERROR_SYSCALL       ? "the client closed the connection"
                     : ssl_err == SSL_ERROR_ZERO_RETURN ? "the client sent close_notify"
                                                        : "handshake error");
        } else if (ERR_GET_LIB(first) == ERR_LIB_SSL &&
                   ERR_GET_REASON(first) == SSL_R_NO_SHARED_CIPHER && c->site->threshold) {
            /* An old client that offers only RSA key exchange: say why, so
             * that nobody turns tls12-rsa-key-exchange on to fix it. */
            snprintf(why, sizeof(why), "%s",
                     "no shared cipher (the certificate's key is in threshold mode: TLS 1.3 or "
                     "TLS 1.2 (EC)DHE only, never RSA key exchange)");
        }
        reason = why;
    }
    spk_log("edge", "handshake failed: client %s: %s", addr, reason);
}

static void edge_ready_unlink(struct edge_loop *L, struct edge_conn *c)
{
    if (!c->ready) {
        return;
    }
    if (c->ready_prev != NULL) {
        c->ready_prev->ready_next = c->ready_next;
    } else {
        L->ready = c->ready_next;
    }
    if (c->ready_next != NULL) {
        c->ready_next->ready_prev = c->ready_prev;
    }
    c->ready_prev = c->ready_next = NULL;
    c->ready = false;
}

/* edge_conn_async_ready is the SSL's async callback (|arg| the connection):
 * called by edge_client when the paused job's operation ended. The job is
 * resumed later in the loop turn, not from inside the client's processing. */
static int edge_conn_async_ready(SSL *ssl, void *arg)
{
    struct edge_conn *c = arg;
    struct edge_loop *L = c->loop;

    (void)ssl;
    if (!c->ready) {
        c->ready = true;
        c->ready_prev = NULL;
        c->ready_next = L->ready;
        if (L->ready != NULL) {
            L->ready->ready_prev = c;
        }
        L->ready = c;
    }
    return 1;
}

void edge_conn_run_ready(struct edge_loop *L)
{
    while (L->ready != NULL) {
        struct edge_conn *c = L->ready;
        edge_ready_unlink(L, c);
        c->paused = false;
        edge_conn_run(c);
    }
}

/* edge_async_pause: the job waits for its operation. The client socket
 * stays registered: a client seldom sends anything while its handshake
 * waits, and masking and unmasking it were two epoll_ctl calls per
 * handshake. If it does stir, edge_conn_event masks it then. */
static void edge_async_pause(struct edge_conn *c)
{
    c->paused = true;
}

void edge_conn_event(struct edge_conn *c, struct edge_ev *ev)
{
    if (c->paused && ev == &c->cev) {
        /* Level-triggered: until the job goes on, the loop would only spin. */
        edge_ev_set(c->loop, &c->cev, 0);
        return;
    }
    edge_conn_run(c);
}

void edge_conn_close(struct edge_conn *c)
{
    struct edge_loop *L = c->loop;
    int tries;

    /* A job still waits for the combiner: end its operation and let the job
     * run to its end (it fails the handshake), so none is left behind. */
    for (tries = 0; c->paused && tries < 4; tries++) {
        int rc;
        (void)edge_client_cancel(L->client, c);
        edge_client_set_owner(L->client, c);
        rc = SSL_do_handshake(c->ssl);
        edge_client_set_owner(L->client, NULL);
        c->paused = rc != 1 && SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_ASYNC;
    }
    ERR_clear_error();
    edge_conn_free(c);
}

static uint8_t *edge_buf_get(struct edge_loop *L)
{
    if (L->buf_pool_len > 0) {
        return L->buf_pool[--L->buf_pool_len];
    }
    return malloc(EDGE_BUF_LEN);
}

/* edge_buf_put takes back |buf| of which the first |used| bytes were ever
 * written: those are wiped before it is kept or freed. */
static void edge_buf_put(struct edge_loop *L, uint8_t *buf, size_t used)
{
    if (buf == NULL) {
        return;
    }
    OPENSSL_cleanse(buf, used);
    if (L->buf_pool_len < EDGE_BUF_POOL) {
        L->buf_pool[L->buf_pool_len++] = buf;
        return;
    }
    free(buf);
}

void edge_buf_pool_free(struct edge_loop *L)
{
    while (L->buf_pool_len > 0) {
        free(L->buf_pool[--L->buf_pool_len]);
    }
}

/*
 * The client's write side. OpenSSL flushes after each flight of the
 * handshake and after each TLS 1.3 ticket, and writes a response and the
 * close_notify after it as two records: each was a write() and a TCP segment
 * of its own. What the SSL writes during one run of the connection is kept
 * here and leaves in one write() when the run ends (edge_out_flush, from
 * edge_conn_run): the two tickets go out together, and so do a response and
 * its close_notify when the origin closed at once. Only ciphertext passes.
 */

/* A write of at least this much (a full TLS record's payload) skips the buffer. */
#define EDGE_OUT_DIRECT (16 * 1024)

/* edge_out_flush sends what |c| holds: 1 when all is sent (the buffer goes
 * back to the pool), 0 when the socket is full, -1 on an error. */
static int edge_out_flush(struct edge_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->cev.fd, c->out + c->out_off, c->out_len - c->out_off);

        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
    }
    c->out_len = c->out_off = 0;
    edge_buf_put(c->loop, c->out, c->out_used);
    c->out = NULL;
    c->out_used = 0;
    return 1;
}

static int edge_out_write(BIO *b, const char *data, int len)
{
    struct edge_conn *c = BIO_get_data(b);
    size_t n;

    BIO_clear_retry_flags(b);
    if (c == NULL || len <= 0) {
        return c == NULL ? -1 : 0;
    }
    n = (size_t)len;
    if (c->out_len == 0 && n >= EDGE_OUT_DIRECT) {
        /* A full record with nothing held before it: a copy would gain no
         * write, so it goes straight out (a bulk transfer's records). */
        ssize_t sent = write(c->cev.fd, data, n);

        if (sent > 0) {
            return (int)sent;
        }
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            BIO_set_retry_write(b);
        }
        return -1;
    }
    if (c->out_len + n > EDGE_BUF_LEN) {
        /* No room: what is held goes first, as a socket BIO would have sent it. */
        int r = edge_out_flush(c);

        if (r <= 0) {
            if (r == 0) {
                BIO_set_retry_write(b);
            }
            return -1;
        }
    }
    if (c->out == NULL && (c->out = edge_buf_get(c->loop)) == NULL) {
        return -1;
    }
    if (n > EDGE_BUF_LEN - c->out_len) {
        n = EDGE_BUF_LEN - c->out_len; /* OpenSSL passes the rest of its record again */
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    edge_conn_note_used(&c->out_used, c->out_len);
    return (int)n;
}

static long edge_out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    const struct edge_conn *c = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* sent when the run ends */
    case BIO_CTRL_WPENDING:
        return c != NULL ? (long)(c->out_len - c->out_off) : 0;
    default:
        return 0;
    }
}

BIO_METHOD *edge_out_method_new(void)
{
    int type = BIO_get_new_index();
    BIO_METHOD *m;

    if (type == -1 ||
        (m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "splitkey edge client")) == NULL) {
        return NULL;
    }
    if (BIO_meth_set_write(m, edge_out_write) != 1 || BIO_meth_set_ctrl(m, edge_out_ctrl) != 1) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

static void edge_conn_free(struct edge_conn *c)
{
    struct edge_loop *L = c->loop;
    bool was_full = L->num_conns >= L->cfg->max_connections;

    edge_ready_unlink(L, c);
    edge_ev_set(L, &c->cev, 0);
    edge_ev_set(L, &c->uev, 0);
    SSL_free(c->ssl);
    /* An alert written on the way out leaves if the socket takes it at once,
     * as it did when the SSL wrote to the socket itself. */
    if (c->out != NULL && c->cev.fd >= 0) {
        (void)edge_out_flush(c);
    }
    edge_buf_put(L, c->out, c->out_used);
    c->out = NULL;
    edge_sites_unref(c->sites);
    c->sites = NULL;
    if (c->cev.fd >= 0) {
        close(c->cev.fd);
    }
    if (c->uev.fd >= 0) {
        close(c->uev.fd);
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        L->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    L->num_conns--;
    edge_buf_put(L, c->c2u, c->c2u_used);
    edge_buf_put(L, c->u2c, c->u2c_used);
    c->c2u = c->u2c = NULL;
    c->ssl = NULL;
    c->dead = true;
    c->next = L->dead;
    c->prev = NULL;
    L->dead = c;
    if (was_full && !L->stop && L->drain_deadline == 0) {
        size_t i;
        for (i = 0; i < L->num_listen; i++) {
            edge_ev_set(L, &L->listen_ev[i], EPOLLIN);
        }
        L->listening = true;
    }
}

/* edge_proxy_header writes a PROXY protocol v2 header for |c| into |out|. */
static size_t edge_proxy_header(const struct edge_conn *c, uint8_t *out)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    size_t len = 16;

    memcpy(out, sig, sizeof(sig));
    out[12] = 0x21; /* version 2, PROXY */
    if (c->peer.ss_family == AF_INET && c->local.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&c->peer;
        const struct sockaddr_in *d = (const struct sockaddr_in *)&c->local;
        out[13] = 0x11; /* TCP over IPv4 */
        out[14] = 0;
        out[15] = 12;
        memcpy(out + 16, &s->sin_addr, 4);
        memcpy(out + 20, &d->sin_addr, 4);
        memcpy(out + 24, &s->sin_port, 2);
        memcpy(out + 26, &d->sin_port, 2);
        len += 12;
    } else if (c->peer.ss_family == AF_INET6 && c->local.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&c->peer;
        const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&c->local;
        out[13] = 0x21; /* TCP over IPv6 */
        out[14] = 0;
        out[15] = 36;
        memcpy(out + 16, &s->sin6_addr, 16);
        memcpy(out + 32, &d->sin6_addr, 16);
        memcpy(out + 48, &s->sin6_port, 2);
        memcpy(out + 50, &d->sin6_port, 2);
        len += 36;
    } else {
        out[12] = 0x20; /* LOCAL: no addresses */
        out[13] = 0x00;
        out[14] = 0;
        out[15] = 0;
    }
    return len;
}

/*
 * edge_conn_note_used: every write into a relay buffer starts at its first
 * byte, so the longest one bounds what the buffer ever held. On close only
 * that much is wiped: wiping both 64 KiB buffers of every connection cost
 * about 6.5% of the edge's CPU under a one-request-per-connection load.
 */
static void edge_conn_note_used(size_t *used, size_t len)
{
    if (len > *used) {
        *used = len;
    }
}

/*
 * edge_conn_upstream_failed: the origin could not be reached. With
 * `upstream-failure http502` the client gets a 502 response and close_notify
 * (the relay sends them; what the client sends is dropped); with reset, the
 * default, its TCP connection is reset, so that it cannot take the close for
 * an empty answer whatever the protocol. False when |c| is to be closed now.
 */
bool edge_conn_upstream_failed(struct edge_conn *c)
{
    static const char body[] = "502 Bad Gateway: the origin cannot be reached\n";
    struct edge_loop *L = c->loop;
    struct linger reset = {1, 0};
    int n;

    L->upstream_failures++;
    if (c->uev.fd >= 0) {
        edge_ev_set(L, &c->uev, 0);
        close(c->uev.fd);
        c->uev.fd = -1;
    }
    if (L->cfg->upstream_failure != EDGE_UPSTREAM_FAILURE_HTTP502 || c->u2c == NULL) {
        setsockopt(c->cev.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        return false;
    }
    n = snprintf((char *)c->u2c, EDGE_BUF_LEN,
                 "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 sizeof(body) - 1, body);
    c->u2c_len = n > 0 ? (size_t)n : 0;
    edge_conn_note_used(&c->u2c_used, c->u2c_len);
    c->u2c_off = 0;
    c->c2u_len = c->c2u_off = 0;
    c->up_failed = true;
    c->upstream_eof = true;
    c->up_shut = true;
    c->state = EDGE_CONN_RELAY;
    c->deadline_ms = spk_now_ms() + L->cfg->idle_timeout_ms;
    return true;
}

static bool edge_conn_start_upstream(struct edge_conn *c)
{
    struct edge_site *s = c->site;
    int one = 1;
    int fd;

    c->c2u = edge_buf_get(c->loop);
    c->u2c = edge_buf_get(c->loop);
    if (c->c2u == NULL || c->u2c == NULL) {
        return false;
    }
    fd = socket(s->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->uev.fd = fd;
    if (connect(fd, (const struct sockaddr *)&s->up_addr, s->up_len) != 0 && errno != EINPROGRESS) {
        spk_log("edge", "upstream %s: %s", s->upstream, strerror(errno));
        return edge_conn_upstream_failed(c);
    }
    if (c->loop->cfg->proxy_protocol) {
        /* The local address only matters here: asked for on every accept it
         * was a system call per connection for nothing. */
        socklen_t llen = sizeof(c->local);

        if (getsockname(c->cev.fd, (struct sockaddr *)&c->local, &llen) != 0) {
            memset(&c->local, 0, sizeof(c->local)); /* LOCAL: no addresses */
        }
        c->c2u_len = edge_proxy_header(c, c->c2u);
        edge_conn_note_used(&c->c2u_used, c->c2u_len);
    }
    c->state = EDGE_CONN_CONNECTING;
    c->deadline_ms = spk_now_ms() + c->loop->cfg->handshake_timeout_ms;
    return true;
}

/* edge_conn_connected: bytes went to or came from the origin, so its
 * connection is up. */
static void edge_conn_connected(struct edge_conn *c)
{
    if (c->state == EDGE_CONN_CONNECTING) {
        c->state = EDGE_CONN_RELAY;
        c->deadline_ms = spk_now_ms() + c->loop->cfg->idle_timeout_ms;
    }
}

/*
 * edge_conn_check_connect asks the kernel whether the origin's connection is
 * up when nothing went either way to tell (the client has sent nothing yet,
 * and the origin neither): up, it is relayed; failed, that is the upstream
 * failure (up_errno); else the loop waits for it to become writable.
 */
static void edge_conn_check_connect(struct edge_conn *c)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(c->uev.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
        c->up_errno = soerr != 0 ? soerr : errno;
        return;
    }
    if (getpeername(c->uev.fd, (struct sockaddr *)&sa, &sl) == 0) {
        edge_conn_connected(c);
        return;
    }
    c->want_u_out = true; /* still connecting */
}

/* edge_conn_handshake: one step; false when the connection is finished. */
static bool edge_conn_handshake(struct edge_conn *c)
{
    struct edge_loop *L = c->loop;
    int rc = SSL_do_handshake(c->ssl);
    int err;

    if (rc == 1) {
        c->paused = false;
        /* The key operations end with the handshake (renegotiation is off):
         * the relay's reads and writes need no ASYNC job, and each one ran in
         * a job of its own (a switch of stacks there and back). */
        SSL_clear_mode(c->ssl, SSL_MODE_ASYNC);
        L->num_handshakes++;
        L->hs[0][edge_ver_index(c->ssl)][SSL_session_reused(c->ssl) ? 1 : 0]++;
        if (!edge_conn_start_upstream(c)) {
            return false;
        }
        return true;
    }
    err = SSL_get_error(c->ssl, rc);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        c->paused = false;
        c->want_c_in = true;
        return true;
    case SSL_ERROR_WANT_WRITE:
        c->paused = false;
        c->want_c_out = true;
        return true;
    case SSL_ERROR_WANT_ASYNC:
        edge_async_pause(c);
        return true;
    default:
        /* OpenSSL has sent its alert (a failed key operation is an internal
         * error alert); nothing else goes to the client. */
        c->paused = false;
        edge_handshake_failed(c, err, NULL);
        ERR_clear_error();
        return false;
    }
}

/* edge_conn_relay: move what can be moved; false when the connection is
 * finished. Sets the want_* flags for what it waits on. */
static bool edge_conn_relay(struct edge_conn *c)
{
    bool progress = true;
    uint64_t now = spk_now_ms();

    /* A side that had nothing to read (want_*_in) is not read again in this
     * call: only its next readiness event can bring more, and each pass of
     * the loop read it again for an EAGAIN (about 4 system calls a
     * handshake). The write sides are asked afresh on every pass. */
    c->want_c_in = c->want_u_in = false;
    while (progress) {
        progress = false;
        c->want_c_out = c->want_u_out = false;
        /* client -> upstream */
        if (!c->client_eof && c->c2u_len == 0 && !c->want_c_in) {
            int n = SSL_read(c->ssl, c->c2u, EDGE_BUF_LEN);
            if (n > 0) {
                c->c2u_len = (size_t)n;
                edge_conn_note_used(&c->c2u_used, c->c2u_len);
                c->c2u_off = 0;
                progress = true;
            } else {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_READ) {
                    c->want_c_in = true;
                } else if (e == SSL_ERROR_WANT_WRITE) {
                    c->want_c_out = true;
                } else if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
                    c->client_eof = true; /* close_notify, or a plain TCP close */
                    progress = true;
                    if (e == SSL_ERROR_SYSCALL) {
                        c->tls_shut = true; /* nothing more can be written */
                    }
                } else {
                    ERR_clear_error();
                    return false;
                }
            }
        }
        if (c->up_failed) {
            c->c2u_len = c->c2u_off = 0; /* nowhere to send it */
        }
        if (c->c2u_off < c->c2u_len) {
            ssize_t n = write(c->uev.fd, c->c2u + c->c2u_off, c->c2u_len - c->c2u_off);
            if (n > 0) {
                edge_conn_connected(c);
                c->c2u_off += (size_t)n;
                if (c->c2u_off == c->c2u_len) {
                    c->c2u_off = c->c2u_len = 0;
                }
                progress = true;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->want_u_out = true; /* full, or still connecting */
            } else if (c->state == EDGE_CONN_CONNECTING) {
                c->up_errno = n < 0 ? errno : EPIPE;
                return true;
            } else {
                return false;
            }
        }
        /* Half-close towards the origin only while it may still answer: once
         * it has closed too, the close that follows says the same. */
        if (c->client_eof && c->c2u_len == 0 && !c->up_shut && !c->upstream_eof &&
            c->state == EDGE_CONN_RELAY) {
            shutdown(c->uev.fd, SHUT_WR);
            c->up_shut = true;
        }
        /* upstream -> client */
        if (!c->upstream_eof && c->u2c_len == 0 && !c->want_u_in) {
            ssize_t n = read(c->uev.fd, c->u2c, EDGE_BUF_LEN);
            if (n > 0) {
                edge_conn_connected(c);
                c->u2c_len = (size_t)n;
                edge_conn_note_used(&c->u2c_used, c->u2c_len);
                c->u2c_off = 0;
                progress = true;
            } else if (n == 0) {
                edge_conn_connected(c);
                c->upstream_eof = true;
                progress = true;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->want_u_in = true;
            } else if (c->state == EDGE_CONN_CONNECTING) {
                c->up_errno = errno;
                return true;
            } else {
                c->upstream_eof = true;
                progress = true;
            }
        }
        if (c->u2c_off < c->u2c_len) {
            int n;
            if (c->tls_shut) {
                return false; /* the client is gone: drop the rest */
            }
            n = SSL_write(c->ssl, c->u2c + c->u2c_off, (int)(c->u2c_len - c->u2c_off));
            if (n > 0) {
                c->u2c_off += (size_t)n;
                if (c->u2c_off == c->u2c_len) {
                    c->u2c_off = c->u2c_len = 0;
                }
                progress = true;
            } else {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE) {
                    c->want_c_out = true;
                } else if (e == SSL_ERROR_WANT_READ) {
                    c->want_c_in = true;
                } else {
                    ERR_clear_error();
                    return false;
                }
            }
        }
        if (c->upstream_eof && c->u2c_len == 0 && !c->tls_shut) {
            /* close_notify: the origin is done. Like any record, it waits
             * for room rather than being dropped. */
            int rc = SSL_shutdown(c->ssl);

            if (rc < 0 && SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_WRITE) {
                c->want_c_out = true;
            } else {
                ERR_clear_error();
                c->tls_shut = true;
                progress = true;
            }
        }
        if (progress && c->state == EDGE_CONN_RELAY) {
            c->deadline_ms = now + c->loop->cfg->idle_timeout_ms;
        }
    }
    if (c->client_eof && c->upstream_eof && c->c2u_len == 0 && c->u2c_len == 0 && c->tls_shut) {
        /* Done once the client has all of it (edge_conn_run sends it). */
        if (c->out_len > 0 && edge_out_flush(c) == 0) {
            c->want_c_out = true;
            return true;
        }
        return false;
    }
    return true;
}

/* edge_conn_run drives |c| as far as it goes, then sets its epoll interest. */
void edge_conn_run(struct edge_conn *c)
{
    struct edge_loop *L = c->loop;
    bool alive = true;

    c->want_c_in = c->want_c_out = c->want_u_in = c->want_u_out = false;
    /* Every SSL call below may start a key operation of |c|'s job. */
    edge_client_set_owner(L->client, c);
    if (c->state == EDGE_CONN_HANDSHAKE) {
        alive = edge_conn_handshake(c);
    }
    if (alive && (c->state == EDGE_CONN_CONNECTING || c->state == EDGE_CONN_RELAY)) {
        /* A connection still being made relays too: the first write or read
         * that gets through says it is up, an error says it failed (most
         * often the request is there to write at once). */
        alive = edge_conn_relay(c);
        if (alive && c->state == EDGE_CONN_CONNECTING && c->up_errno == 0 && !c->want_u_out) {
            edge_conn_check_connect(c);
            if (c->state == EDGE_CONN_RELAY) {
                alive = edge_conn_relay(c);
            }
        }
        if (alive && c->up_errno != 0) {
            spk_log("edge", "upstream %s: %s", c->site->upstream, strerror(c->up_errno));
            c->up_errno = 0;
            alive = edge_conn_upstream_failed(c) && edge_conn_relay(c);
        }
    }
    edge_client_set_owner(L->client, NULL);
    /* want_c_out already says the socket was full in this run (only
     * edge_out_write and edge_out_flush make the SSL or the relay wait to
     * write): another write() would only fail again. */
    if (alive && c->out_len > 0 && !c->want_c_out) {
        int sent = edge_out_flush(c);

        if (sent < 0) {
            alive = false;
        } else if (sent == 0) {
            c->want_c_out = true;
        }
    }
    if (!alive) {
        edge_conn_close(c);
        return;
    }
    if (!c->paused) {
        edge_ev_set(L, &c->cev, (c->want_c_in ? EPOLLIN : 0) | (c->want_c_out ? EPOLLOUT : 0));
    }
    edge_ev_set(L, &c->uev, (c->want_u_in ? EPOLLIN : 0) | (c->want_u_out ? EPOLLOUT : 0));
}

/* edge_conn_set_bios: the SSL reads the socket itself and writes through
 * |c| (edge_out_write). */
static bool edge_conn_set_bios(struct edge_conn *c, int fd)
{
    BIO *rbio = BIO_new_socket(fd, BIO_NOCLOSE);
    BIO *wbio = c->loop->out_method != NULL ? BIO_new(c->loop->out_method) : NULL;

    if (rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        return false;
    }
    BIO_set_data(wbio, c);
    BIO_set_init(wbio, 1);
    SSL_set_bio(c->ssl, rbio, wbio);
    return true;
}

/* At most this many accepts per readiness event: clients that fail fast and
 * reconnect at once would otherwise keep the loop in accept() forever (and
 * SIGCHLD, timers and the combiner's answers would wait). The listener is
 * level-triggered: the rest comes on the next turn. */
#define EDGE_ACCEPT_BATCH 32

void edge_accept(struct edge_loop *L, struct edge_ev *lev)
{
    unsigned batch = 0;

    while (L->num_conns < L->cfg->max_connections) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        struct edge_conn *c;
        int fd = accept4(lev->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            return; /* EAGAIN, or a transient error (EMFILE...): try again later */
        }

        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        /* TCP_NODELAY comes from the listening socket (edge_listen_socket). */
        c->loop = L;
        c->listen_index = (size_t)(lev - L->listen_ev);
        c->state = EDGE_CONN_HANDSHAKE;
        c->cev = (struct edge_ev){EDGE_EV_CLIENT, fd, 0, c};
        c->uev = (struct edge_ev){EDGE_EV_UPSTREAM, -1, 0, c};
        c->peer = peer;
        c->sites = L->sites;
        c->sites->refs++;
        c->site = &c->sites->v[0];
        c->ssl = SSL_new(c->site->ctx);
        if (c->ssl == NULL || !edge_conn_set_bios(c, fd)) {
            edge_sites_unref(c->sites);
            SSL_free(c->ssl);
            close(fd);
            free(c);
            continue;
        }
        SSL_set_app_data(c->ssl, c);
        /* Before the first handshake step: OpenSSL hands the callback to the
         * job's wait context when it makes that context. */
        SSL_set_async_callback(c->ssl, edge_conn_async_ready);
        SSL_set_async_callback_arg(c->ssl, c);
        SSL_set_accept_state(c->ssl);
        c->deadline_ms = spk_now_ms() + L->cfg->handshake_timeout_ms;
        c->next = L->conns;
        if (L->conns != NULL) {
            L->conns->prev = c;
        }
        L->conns = c;
        L->num_conns++;
        L->num_accepted++;
        edge_conn_run(c);
        if (++batch >= EDGE_ACCEPT_BATCH) {
            return;
        }
    }
    /* Full: stop accepting; the kernel backlog holds the rest. */
    if (L->listening) {
        size_t i;
        for (i = 0; i < L->num_listen; i++) {
            edge_ev_set(L, &L->listen_ev[i], 0);
        }
        L->listening = false;
    }
}
