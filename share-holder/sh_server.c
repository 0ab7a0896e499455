#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "proto/spk_metrics.h"
#include "share-holder/internal.h"
#include "split/split.h"

/*
 * The share-holder daemon: one thread, one zmq_poll loop over the ROUTER
 * socket, the ZAP handler's REP socket and a signalfd. Every frame from the
 * network goes through proto_msg_decode; the only bytes of a share that ever
 * reach a ZeroMQ buffer are ciphertext built by sh_share_response_build.
 * Frames are handled in sh_request.c; this file starts, reloads, runs the
 * loop and stops.
 */

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "splitkey"
#define DRAIN_MAX 100000 /* frames answered after SIGTERM */
#define LINGER_MS 1000

bool sh_bucket_take(struct sh_bucket *b, double rate, unsigned burst, uint64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        b->last_ms = now_ms;
    }
    if (b->tokens > (double)burst) {
        b->tokens = (double)burst;
    }
    if (b->tokens < 1.0) {
        return false;
    }
    b->tokens -= 1.0;
    return true;
}

/* ---- ZAP ---------------------------------------------------------------------- */

/* zap_handle answers one ZAP request (RFC 27): admit the CURVE client keys of
 * the allow-list from their address ranges, nothing else. */
static void zap_handle(struct sh_server *s)
{
    struct sh_zap_req req;
    const char *text = "unsupported ZAP request or mechanism";
    char z85[PROTO_Z85_KEY_LEN + 1] = "";
    const struct sh_allow_client *client = NULL;
    bool ok = false;

    if (!sh_zap_recv(s->zap, &req)) {
        return;
    }
    if (req.curve_pk != NULL) {
        zmq_z85_encode(z85, req.curve_pk, PROTO_X25519_LEN);
        client = sh_allow_find(&s->allow, req.curve_pk);
        if (client == NULL) {
            text = "client key not in the allow-list";
        } else if (!sh_allow_address(client, req.address)) {
            text = "address not allowed for this client";
        } else {
            ok = true;
            text = "OK";
        }
    }
    if (!ok) {
        char who[PROTO_NAME_MAX + 8];

        s->num_refused++;
        (void)snprintf(who, sizeof(who), "key:%s", z85[0] ? z85 : "-");
        /* logged once per key and interval; the audit summary counts them all */
        if (sh_audit_count(&s->audit, who, req.address, SH_AUDIT_REFUSED, spk_now_ms())) {
            spk_log("share-holder", "refused CURVE client %s from %s: %s", z85[0] ? z85 : "-",
                    req.address[0] ? req.address : "-", text);
        }
    }
    /* The user id is the key in Z85. */
    if (sh_zap_reply(s->zap, &req, ok, text, z85) != 0) {
        spk_log("share-holder", "cannot answer a ZAP request: %s", zmq_strerror(zmq_errno()));
    }
}

/* ---- reload --------------------------------------------------------------------- */

static void reload(struct sh_server *s)
{
    struct sh_allow allow;
    struct sh_store store;
    char why[PROTO_PATH_WHY_MAX] = "";
    int r;

    /* what was counted so far goes out under the old file, before logrotate's
     * SIGHUP makes us open the new one */
    sh_audit_summaries_write(&s->audit, spk_now_ms(), true);
    if (strcmp(s->opt->audit_path, "stderr") != 0 &&
        sh_audit_open(&s->audit, s->opt->audit_path, 0, why, sizeof(why)) != 0) {
        /* the old file stays open: releases are still audited */
        s->num_reload_failures++;
        spk_log("share-holder", "ERROR: reload: keeping the old audit log file: %s", why);
    }
    if ((r = sh_allow_load(&allow, s->opt->allow_path, why, sizeof(why))) != 0) {
        /* Fail loudly: the old list (with any client being revoked) stays in
         * force, so this is an error to act on, counted in the metrics. */
        s->num_reload_failures++;
        spk_log("share-holder",
                "ERROR: reload failed: allow-list %s refused (%s); still serving the PREVIOUS "
                "list of %zu clients, revocations in the new file are NOT in force",
                s->opt->allow_path, why, s->allow.num_clients);
    } else {
        sh_allow_cleanup(&s->allow);
        s->allow = allow;
    }
    if ((r = sh_store_load(&store, s->opt->shares_dir, s->key, stderr)) != 0) {
        s->num_reload_failures++;
        spk_log("share-holder", "ERROR: reload failed: keeping the old shares: %s",
                spk_strerror(r));
    } else {
        sh_store_cleanup(&s->store);
        s->store = store;
    }
    spk_log("share-holder",
            "reloaded: %zu clients, %zu shares (%zu skipped); so far %llu released, %llu "
            "denied, %llu refused, %llu bad frames",
            s->allow.num_clients, s->store.num_shares, s->store.num_skipped,
            (unsigned long long)s->num_released, (unsigned long long)s->num_denied,
            (unsigned long long)s->num_refused, (unsigned long long)s->num_bad);
}

static void signals_handle(struct sh_server *s)
{
    struct signalfd_siginfo si;

    while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            reload(s);
        } else {
            s->stop = true;
        }
    }
}

/* ---- metrics -------------------------------------------------------------------- */

/* metrics_render: the counters of the stop line, as Prometheus text. They
 * count since start; a reload keeps them. */
static void metrics_render(void *arg, struct spk_text *t)
{
    const struct sh_server *s = arg;
    size_t sessions = 0;

    for (size_t i = 0; i < SH_SESSIONS_MAX; i++) {
        sessions += s->sessions.entries[i].used;
    }
    spk_text_printf(
        t,
        "# HELP spk_holder_shares_released_total Shares released (one audit line each).\n"
        "# TYPE spk_holder_shares_released_total counter\n"
        "spk_holder_shares_released_total %llu\n"
        "# HELP spk_holder_requests_denied_total Share requests refused: the client may not "
        "have the key (or no longer at all), the key is unknown, the requester key is bad.\n"
        "# TYPE spk_holder_requests_denied_total counter\n"
        "spk_holder_requests_denied_total %llu\n"
        "# HELP spk_holder_requests_rate_limited_total Share requests over the client's "
        "rate limit.\n"
        "# TYPE spk_holder_requests_rate_limited_total counter\n"
        "spk_holder_requests_rate_limited_total %llu\n"
        "# HELP spk_holder_connections_refused_total CURVE handshakes the ZAP handler refused "
        "(key or address not in the allow-list).\n"
        "# TYPE spk_holder_connections_refused_total counter\n"
        "spk_holder_connections_refused_total %llu\n"
        "# HELP spk_holder_bad_frames_total Frames that did not decode as a request.\n"
        "# TYPE spk_holder_bad_frames_total counter\n"
        "spk_holder_bad_frames_total %llu\n"
        "# HELP spk_holder_reload_failures_total SIGHUP reloads that kept the previous "
        "allow-list, shares or audit log.\n"
        "# TYPE spk_holder_reload_failures_total counter\n"
        "spk_holder_reload_failures_total %llu\n"
        "# HELP spk_holder_sessions Response-encryption sessions cached (of %d).\n"
        "# TYPE spk_holder_sessions gauge\n"
        "spk_holder_sessions %zu\n"
        "# HELP spk_holder_shares Shares loaded.\n"
        "# TYPE spk_holder_shares gauge\n"
        "spk_holder_shares %zu\n"
        "# HELP spk_holder_clients Clients in the allow-list in force.\n"
        "# TYPE spk_holder_clients gauge\n"
        "spk_holder_clients %zu\n",
        (unsigned long long)s->num_released, (unsigned long long)s->num_denied,
        (unsigned long long)s->num_rate_limited, (unsigned long long)s->num_refused,
        (unsigned long long)s->num_bad, (unsigned long long)s->num_reload_failures, SH_SESSIONS_MAX,
        sessions, s->store.num_shares, s->allow.num_clients);
}

/* ---- start, loop, stop ------------------------------------------------------------ */

static int sockets_open(struct sh_server *s)
{
    int one = 1;
    int linger = LINGER_MS;
    int64_t max = PROTO_ZMQ_MAXMSGSIZE;
    char endpoint[SH_PATH_MAX + 1];
    size_t endpoint_len = sizeof(endpoint);

    s->ctx = zmq_ctx_new();
    if (s->ctx == NULL) {
        return SPK_ERR_INTERNAL;
    }
    s->zap = zmq_socket(s->ctx, ZMQ_REP);
    if (s->zap == NULL || zmq_bind(s->zap, ZAP_ENDPOINT) != 0) {
        spk_log("share-holder", "cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        return SPK_ERR_INTERNAL;
    }
    s->router = zmq_socket(s->ctx, ZMQ_ROUTER);
    if (s->router == NULL || zmq_setsockopt(s->router, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(s->router, ZMQ_CURVE_SECRETKEY, s->key->curve_sk, PROTO_X25519_LEN) != 0 ||
        zmq_setsockopt(s->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) != 0 ||
        zmq_setsockopt(s->router, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0 ||
        zmq_setsockopt(s->router, ZMQ_LINGER, &linger, sizeof(linger)) != 0) {
        spk_log("share-holder", "cannot set up the ROUTER socket: %s", zmq_strerror(zmq_errno()));
        return SPK_ERR_INTERNAL;
    }
    if (zmq_bind(s->router, s->opt->bind) != 0) {
        spk_log("share-holder", "cannot bind %s: %s", s->opt->bind, zmq_strerror(zmq_errno()));
        return SPK_ERR_IO;
    }
    if (zmq_getsockopt(s->router, ZMQ_LAST_ENDPOINT, endpoint, &endpoint_len) != 0) {
        (void)snprintf(endpoint, sizeof(endpoint), "%s", s->opt->bind);
    }
    if (s->opt->metrics[0] != '\0' && spk_mserver_open(&s->metrics, s->ctx, s->opt->metrics,
                                                       "share-holder", metrics_render, s) != 0) {
        return SPK_ERR_IO;
    }
    spk_log("share-holder", "holder %s serving %zu share%s to %zu client%s on %s", s->key->pub.name,
            s->store.num_shares, s->store.num_shares == 1 ? "" : "s", s->allow.num_clients,
            s->allow.num_clients == 1 ? "" : "s", endpoint);
    if (s->metrics.stream != NULL) {
        spk_log("share-holder", "metrics on http://%s/metrics", s->opt->metrics);
    }
    return 0;
}

static int server_start(struct sh_server *s)
{
    char why[256] = "";
    sigset_t set;
    /* A daemon runs unlocked only when its flag or file says so, never
     * because of an environment it may have inherited. */
    bool unlocked = s->opt->allow_unlocked;
    int r;

    if ((r = spk_mem_init()) != 0) {
        spk_log("share-holder", "cannot initialise secret memory: %s", spk_strerror(r));
        return r;
    }
    if ((r = spk_process_harden(unlocked, why, sizeof(why))) != 0) {
        spk_log("share-holder", "%s", why[0] ? why : spk_strerror(r));
        return r;
    }
    if (!spk_memory_locked()) {
        spk_log("share-holder", "WARNING: running with memory not locked (--allow-unlocked)");
    }
    if (s->opt->key_path[0] == '\0' || s->opt->shares_dir[0] == '\0' ||
        s->opt->allow_path[0] == '\0' || s->opt->bind[0] == '\0') {
        spk_log("share-holder", "--key, --shares, --allow and --bind are required (see --help)");
        return SPK_ERR_INVALID_ARG;
    }
    if ((r = split_holder_secret_load(&s->key, s->opt->key_path)) != 0) {
        spk_log("share-holder", "cannot load the holder key %s: %s", s->opt->key_path,
                spk_strerror(r));
        return r;
    }
    if ((r = sh_allow_load(&s->allow, s->opt->allow_path, why, sizeof(why))) != 0) {
        spk_log("share-holder", "allow-list %s: %s", s->opt->allow_path, why);
        return r;
    }
    if ((r = sh_store_load(&s->store, s->opt->shares_dir, s->key, stderr)) != 0) {
        spk_log("share-holder", "no usable share for holder %s in %s", s->key->pub.name,
                s->opt->shares_dir);
        return r;
    }
    if ((r = sh_audit_open(&s->audit, s->opt->audit_path, 0, why, sizeof(why))) != 0) {
        spk_log("share-holder", "%s", why);
        return r;
    }
    s->queue = calloc(SH_BATCH_MAX, sizeof(*s->queue));
    if (s->queue == NULL) {
        return SPK_ERR_NOMEM;
    }
    if ((r = sh_sessions_init(&s->sessions)) != 0) {
        spk_log("share-holder", "cannot allocate session keys: %s", spk_strerror(r));
        return r;
    }
    s->buckets = calloc(SH_BUCKETS_MAX, sizeof(*s->buckets));
    if (s->buckets == NULL) {
        return SPK_ERR_NOMEM;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* blocked before ZeroMQ starts its threads, so they inherit the mask */
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        spk_log("share-holder", "cannot set up signals: %s", strerror(errno));
        return SPK_ERR_INTERNAL;
    }
    return sockets_open(s);
}

/* zap_drain answers every ZAP request waiting; it ends with ZMQ_EVENTS
 * saying there is none, which re-arms the socket's ZMQ_FD. */
static void zap_drain(struct sh_server *s)
{
    for (;;) {
        int events = 0;
        size_t len = sizeof(events);

        if (zmq_getsockopt(s->zap, ZMQ_EVENTS, &events, &len) != 0 || !(events & ZMQ_POLLIN)) {
            return;
        }
        zap_handle(s);
    }
}

/*
 * server_loop polls the sockets' ZMQ_FDs and the signalfd with poll()
 * itself rather than zmq_poll: zmq_poll makes a zero-timeout pass and asks
 * each socket for ZMQ_EVENTS before and after sleeping, about nine system
 * calls per request more than needed for one request at a time. A ZMQ_FD
 * only says that the socket may have changed, and only once per change, so
 * a socket is read until it has nothing (the ROUTER: a receive that fails
 * with EAGAIN; the ZAP socket: ZMQ_EVENTS without ZMQ_POLLIN) before its fd
 * is waited on again.
 */

/* sh_router_has_input: a request is waiting on the ROUTER (ZMQ_EVENTS). */
static bool sh_router_has_input(struct sh_server *s)
{
    int events = 0;
    size_t len = sizeof(events);

    return zmq_getsockopt(s->router, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN) != 0;
}
static int server_loop(struct sh_server *s)
{
    struct pollfd fds[4];
    int router_fd = -1;
    int zap_fd = -1;
    int metrics_fd = -1;
    size_t fd_len = sizeof(int);
    bool router_ready = true; /* read it before the first wait */
    bool zap_ready = true;
    bool metrics_ready = true;
    int wait;

    if (zmq_getsockopt(s->router, ZMQ_FD, &router_fd, &fd_len) != 0 ||
        (fd_len = sizeof(int), zmq_getsockopt(s->zap, ZMQ_FD, &zap_fd, &fd_len)) != 0) {
        spk_log("share-holder", "cannot get the sockets' file descriptors: %s",
                zmq_strerror(zmq_errno()));
        return SPK_ERR_INTERNAL;
    }
    if (s->metrics.stream != NULL &&
        (fd_len = sizeof(int), zmq_getsockopt(s->metrics.stream, ZMQ_FD, &metrics_fd, &fd_len)) !=
            0) {
        spk_log("share-holder", "cannot get the metrics socket's file descriptor: %s",
                zmq_strerror(zmq_errno()));
        return SPK_ERR_INTERNAL;
    }
    while (!s->stop) {
        if (zap_ready) {
            zap_drain(s);
            zap_ready = false;
        }
        if (metrics_ready && s->metrics.stream != NULL) {
            spk_mserver_read(&s->metrics); /* reads until EAGAIN, which re-arms its fd */
            metrics_ready = false;
        }
        if (router_ready) {
            int i;

            for (i = 0; i < SH_BATCH_MAX && sh_router_read(s); i++) {
            }
            /* one fdatasync for the releases of this round, then they go */
            sh_queue_flush(s);
            /* a full batch may have left more: look again after the
             * signals and ZAP had their turn, without sleeping. And ZMQ_FD
             * is edge-triggered: the sends above may have taken in new
             * requests and consumed the signal, so ask ZMQ_EVENTS, or those
             * requests wait for the next wake-up (up to 100 ms, or forever). */
            router_ready = i == SH_BATCH_MAX || sh_router_has_input(s);
        }
        if (sh_audit_due_in_ms(&s->audit, spk_now_ms()) == 0) {
            sh_audit_summaries_write(&s->audit, spk_now_ms(), false);
        }
        /* wake up to close the shares opened for the last requests */
        wait = (int)sh_store_close_in_ms(&s->store, spk_now_ms());
        if (wait == 0) {
            if (sh_store_close(&s->store) != 0) {
                spk_log("share-holder", "cannot make the shares noaccess again: stopping");
                return SPK_ERR_INTERNAL;
            }
            wait = -1;
        }
        {
            long due = sh_audit_due_in_ms(&s->audit, spk_now_ms());

            if (due >= 0 && (wait < 0 || due < wait)) {
                wait = (int)due;
            }
        }
        if (router_ready) {
            wait = 0;
        }
        memset(fds, 0, sizeof(fds));
        fds[0].fd = router_fd;
        fds[0].events = POLLIN;
        fds[1].fd = zap_fd;
        fds[1].events = POLLIN;
        fds[2].fd = s->sigfd;
        fds[2].events = POLLIN;
        fds[3].fd = metrics_fd; /* -1 without --metrics: poll skips it */
        fds[3].events = POLLIN;
        if (poll(fds, 4, wait) < 0) {
            if (errno == EINTR) {
                continue;
            }
            spk_log("share-holder", "poll: %s", strerror(errno));
            return SPK_ERR_INTERNAL;
        }
        if (fds[2].revents & POLLIN) {
            signals_handle(s);
        }
        if (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) {
            zap_ready = true;
        }
        if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) {
            router_ready = true;
        }
        if (fds[3].revents & (POLLIN | POLLERR | POLLHUP)) {
            metrics_ready = true;
        }
    }
    /* drain: answer what has already arrived, then let the replies go */
    for (int i = 0; i < DRAIN_MAX && sh_router_read(s); i++) {
    }
    sh_queue_flush(s);
    sh_audit_summaries_write(&s->audit, spk_now_ms(), true);
    return 0;
}

static void server_stop(struct sh_server *s)
{
    if (s->router != NULL) {
        zmq_close(s->router);
    }
    if (s->zap != NULL) {
        zmq_close(s->zap);
    }
    spk_mserver_close(&s->metrics);
    if (s->ctx != NULL) {
        zmq_ctx_term(s->ctx);
    }
    if (s->sigfd >= 0) {
        close(s->sigfd);
    }
    sh_audit_close(&s->audit);
    free(s->queue);
    sh_store_cleanup(&s->store);
    sh_allow_cleanup(&s->allow);
    sh_sessions_cleanup(&s->sessions);
    free(s->buckets);
    spk_secret_free(s->key);
}

/* server_new: a server for |opt| that has not started, or NULL (no memory). */
static struct sh_server *server_new(const struct sh_options *opt)
{
    struct sh_server *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->opt = opt;
    s->audit.fd = -1;
    s->sigfd = -1;
    return s;
}

/* server_free stops |s| (server_stop) and wipes and frees it; NULL is fine. */
static void server_free(struct sh_server *s)
{
    if (s == NULL) {
        return;
    }
    server_stop(s);
    sodium_memzero(s, sizeof(*s));
    free(s);
}

int sh_run(const struct sh_options *opt)
{
    struct sh_server *s = server_new(opt);
    int r;

    if (s == NULL) {
        spk_log("share-holder", "out of memory");
        return 1;
    }
    if ((r = server_start(s)) == 0) {
        r = server_loop(s);
    }
    if (r == 0) {
        spk_log("share-holder",
                "stopping: %llu released, %llu denied, %llu rate-limited, %llu refused, %llu bad "
                "frames, %llu failed reloads",
                (unsigned long long)s->num_released, (unsigned long long)s->num_denied,
                (unsigned long long)s->num_rate_limited, (unsigned long long)s->num_refused,
                (unsigned long long)s->num_bad, (unsigned long long)s->num_reload_failures);
    }
    server_free(s);
    return r == 0 ? 0 : 1;
}
