/*
 * edge_loop.c: the TLS-facing process. One epoll loop over non-blocking
 * sockets; every handshake runs with SSL_MODE_ASYNC, so a private-key
 * operation pauses its ASYNC job (edge_client.c) instead of the loop. This
 * file sets the process up, reloads on SIGHUP, drains on SIGTERM and runs
 * the loop; the parts it dispatches to are the sites (edge_site.c), the
 * client connections and their relay (edge_conn.c), the combiner child
 * (edge_child.c) and the metrics endpoint (edge_metrics.c).
 *
 * This process holds certificates and public keys only. It starts the
 * combiner (fork + exec: a fresh process image), restarts it when it dies,
 * and fails the handshakes that were waiting on it.
 */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "edge/internal.h"

/* ---- epoll helpers ----------------------------------------------------------- */

void edge_ev_set(struct edge_loop *L, struct edge_ev *ev, uint32_t events)
{
    struct epoll_event e;

    if (ev->fd < 0 || ev->events == events) {
        return;
    }
    memset(&e, 0, sizeof(e));
    e.events = events;
    e.data.ptr = ev;
    if (events == 0) {
        epoll_ctl(L->epfd, EPOLL_CTL_DEL, ev->fd, NULL);
    } else if (ev->events == 0) {
        if (epoll_ctl(L->epfd, EPOLL_CTL_ADD, ev->fd, &e) != 0) {
            spk_log("edge", "epoll add fd %d: %s", ev->fd, strerror(errno));
            return;
        }
    } else {
        epoll_ctl(L->epfd, EPOLL_CTL_MOD, ev->fd, &e);
    }
    ev->events = events;
}

/* ---- reload and drain ----------------------------------------------------------------- */

/* edge_tickets_schedule: the edge's own keys (no ticket-key-file) are replaced
 * every ticket-key-rotate-s; a shorter period from a reload applies at once. */
static void edge_tickets_schedule(struct edge_loop *L)
{
    uint64_t next = spk_now_ms() + (uint64_t)L->cfg->ticket_key_rotate_s * 1000;

    if (L->cfg->ticket_key_file[0] != '\0') {
        L->ticket_rotate_at = 0;
    } else if (L->ticket_rotate_at == 0 || next < L->ticket_rotate_at) {
        L->ticket_rotate_at = next;
    }
}

static void edge_tickets_maybe_rotate(struct edge_loop *L, uint64_t now)
{
    if (L->ticket_rotate_at == 0 || now < L->ticket_rotate_at) {
        return;
    }
    L->ticket_rotate_at = now + (uint64_t)L->cfg->ticket_key_rotate_s * 1000;
    if (edge_tickets_rotate(L->tickets) != 0) {
        spk_log("edge", "ticket key rotation: no randomness; keeping the current key");
        return;
    }
    L->ticket_rotations++;
}

/*
 * edge_reload: SIGHUP. The file is read again and every certificate, record
 * and the ticket keys are loaded anew; only if all of that works are they
 * swapped in, else the edge goes on as it was and says why. Connections keep
 * the certificates they started with. The combiner gets the SIGHUP too and
 * reloads keys, shares and holders itself. listen, metrics and
 * combiner-endpoint only change with a restart.
 */
static void edge_reload(struct edge_loop *L)
{
    struct edge_config *cfg = malloc(sizeof(*cfg));
    struct edge_tickets *tickets = NULL;
    struct edge_sites *sites = NULL;
    char why[4096] = "";
    size_t i;
    bool same_listen, keep_own_keys;

    if (L->comb_pid > 0) {
        kill(L->comb_pid, SIGHUP);
    }
    if (cfg == NULL) {
        L->reloads_failed++;
        spk_log("edge", "reload failed: no memory; serving the previous configuration");
        return;
    }
    edge_config_init(cfg);
    if (edge_config_load(cfg, L->config_path, why, sizeof(why)) != 0) {
        free(cfg);
        L->reloads_failed++;
        spk_log("edge", "reload failed: %s; serving the previous configuration", why);
        return;
    }
    /* The edge's own keys stay: a reload does not end its clients' sessions. */
    keep_own_keys = cfg->ticket_key_file[0] == '\0' && L->cfg->ticket_key_file[0] == '\0';
    if ((!keep_own_keys &&
         edge_tickets_load(&tickets, cfg->ticket_key_file, why, sizeof(why)) != 0) ||
        (sites = edge_sites_new(L, cfg, why, sizeof(why))) == NULL) {
        edge_tickets_free(tickets);
        free(cfg);
        L->reloads_failed++;
        spk_log("edge", "reload failed: %s; serving the previous configuration", why);
        return;
    }
    same_listen = cfg->num_listen == L->cfg->num_listen;
    for (i = 0; same_listen && i < cfg->num_listen; i++) {
        same_listen = strcmp(cfg->listen[i], L->cfg->listen[i]) == 0;
    }
    if (!same_listen || strcmp(cfg->metrics, L->cfg->metrics) != 0 ||
        strcmp(cfg->combiner_endpoint, L->cfg->combiner_endpoint) != 0) {
        spk_log("edge", "reload: listen, metrics and combiner-endpoint change only with a restart");
    }
    /* Kept from start-up: where the combiner is and how it is started. */
    memcpy(cfg->combiner_endpoint, L->cfg->combiner_endpoint, sizeof(cfg->combiner_endpoint));
    memcpy(cfg->combiner_config, L->cfg->combiner_config, sizeof(cfg->combiner_config));
    if (cfg->combiner_binary[0] == '\0') {
        memcpy(cfg->combiner_binary, L->cfg->combiner_binary, sizeof(cfg->combiner_binary));
    }
    if (!keep_own_keys) {
        edge_tickets_use(tickets);
        edge_tickets_free(L->tickets);
        L->tickets = tickets;
        L->ticket_rotate_at = 0;
    }
    edge_sites_unref(L->sites);
    L->sites = sites;
    free(L->owned_cfg);
    L->owned_cfg = cfg;
    L->cfg = cfg;
    edge_tickets_schedule(L);
    L->reloads_ok++;
    spk_log("edge", "reloaded: %zu certificate(s), %zu ticket key(s)", sites->num,
            edge_tickets_count(L->tickets));
}

/* edge_drain_start: SIGTERM. Listeners close (new connections are refused),
 * open ones finish, up to drain-timeout-ms. */
static void edge_drain_start(struct edge_loop *L)
{
    size_t i;

    L->drain_deadline = spk_now_ms() + L->cfg->drain_timeout_ms;
    for (i = 0; i < L->num_listen; i++) {
        edge_ev_set(L, &L->listen_ev[i], 0);
        close(L->listen_ev[i].fd);
        L->listen_ev[i].fd = -1;
    }
    L->num_listen = 0;
    L->listening = false;
    spk_log("edge", "draining: %zu connection(s) open, up to %u ms", L->num_conns,
            L->cfg->drain_timeout_ms);
}

/* ---- set-up and the loop ------------------------------------------------------------- */

static int edge_listen_socket(const char *hostport, int *out_fd, char *why, size_t why_len)
{
    struct sockaddr_storage sa;
    socklen_t len = 0;
    int one = 1;
    int fd;

    if (edge_resolve(&sa, &len, hostport, true) != 0) {
        snprintf(why, why_len, "listen %s: cannot resolve", hostport);
        return SPK_ERR_INVALID_ARG;
    }
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* TCP_NODELAY here: Linux hands it down to every accepted socket, which
     * saves a setsockopt per connection. */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 1024) != 0) {
        snprintf(why, why_len, "listen %s: %s", hostport, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return SPK_ERR_IO;
    }
    *out_fd = fd;
    return 0;
}

static int edge_listen_open(struct edge_loop *L, const char *hostport, char *why, size_t why_len)
{
    int fd = -1;
    int r;

    if ((r = edge_listen_socket(hostport, &fd, why, why_len)) != 0) {
        return r;
    }
    L->listen_ev[L->num_listen] = (struct edge_ev){EDGE_EV_LISTEN, fd, 0, NULL};
    edge_ev_set(L, &L->listen_ev[L->num_listen], EPOLLIN);
    L->num_listen++;
    return 0;
}

/* edge_comb_watch follows the combiner connection's fd: a unix:// one is a
 * new socket after each restart (the old one left epoll when it was closed). */
static void edge_comb_watch(struct edge_loop *L)
{
    uint64_t gen = edge_client_conn_gen(L->client);

    /* By generation, not fd number: a new socket may get the old number. */
    if (gen == L->comb_gen || L->comb_ev.kind != EDGE_EV_COMBINER) {
        return;
    }
    L->comb_gen = gen;
    L->comb_ev.events = 0;
    L->comb_ev.fd = edge_client_fd(L->client);
    edge_ev_set(L, &L->comb_ev, EPOLLIN);
}

static void edge_tick(struct edge_loop *L)
{
    uint64_t now = spk_now_ms();
    struct edge_conn *c, *next;

    edge_client_tick(L->client);
    edge_comb_watch(L);
    if (now - L->last_tick < EDGE_TICK_MS) {
        return;
    }
    L->last_tick = now;
    {
        struct edge_mconn *m, *mnext;
        for (m = L->mconns; m != NULL; m = mnext) {
            mnext = m->next;
            if (m->deadline_ms <= now) {
                edge_mconn_free(L, m);
            }
        }
    }
    for (c = L->conns; c != NULL; c = next) {
        next = c->next;
        if (c->deadline_ms <= now) {
            if (c->state == EDGE_CONN_HANDSHAKE) {
                L->hs_timeouts++;
                edge_handshake_failed(c, 0, "handshake timeout");
            }
            if (c->state == EDGE_CONN_CONNECTING) {
                spk_log("edge", "upstream %s: no connection within %u ms", c->site->upstream,
                        L->cfg->handshake_timeout_ms);
                if (edge_conn_upstream_failed(c)) {
                    edge_conn_run(c);
                    continue;
                }
            }
            edge_conn_close(c);
        }
    }
    edge_tickets_maybe_rotate(L, now);
    if (L->comb_restart_at != 0 && now >= L->comb_restart_at && !L->stop) {
        L->comb_restart_at = 0;
        if (edge_combiner_start(L) != 0) {
            L->comb_restart_at = now + L->comb_backoff_ms;
        }
    }
}

static void edge_reap_dead(struct edge_loop *L)
{
    while (L->dead != NULL) {
        struct edge_conn *c = L->dead;
        L->dead = c->next;
        free(c);
    }
}

static void edge_loop_cleanup(struct edge_loop *L)
{
    size_t i;

    while (L->conns != NULL) {
        edge_conn_close(L->conns);
    }
    edge_buf_pool_free(L);
    edge_reap_dead(L);
    BIO_meth_free(L->out_method);
    L->out_method = NULL;
    if (L->comb_pid > 0) {
        int status;
        kill(L->comb_pid, SIGTERM);
        waitpid(L->comb_pid, &status, 0);
        L->comb_pid = 0;
    }
    for (i = 0; i < L->num_listen; i++) {
        close(L->listen_ev[i].fd);
    }
    while (L->mconns != NULL) {
        edge_mconn_free(L, L->mconns);
    }
    if (L->metrics_ev.fd >= 0) {
        close(L->metrics_ev.fd);
    }
    spk_text_free(&L->mtext);
    edge_sites_unref(L->sites);
    L->sites = NULL;
    free(L->owned_cfg);
    edge_client_free(L->client);
    edge_tickets_use(NULL);
    edge_tickets_free(L->tickets);
    if (L->zctx != NULL) {
        zmq_ctx_term(L->zctx);
    }
    if (L->sig_ev.fd >= 0) {
        close(L->sig_ev.fd);
    }
    if (L->epfd >= 0) {
        close(L->epfd);
    }
}

int edge_run(const struct edge_config *cfg, const char *config_path, const char *self_path)
{
    struct edge_loop loop;
    struct edge_loop *L = &loop;
    char why[4096] = "";
    sigset_t set;
    size_t i;
    int status = 1;
    int r;

    memset(L, 0, sizeof(*L));
    L->cfg = cfg;
    L->config_path = config_path;
    L->self_path = self_path;
    L->sig_ev.fd = -1;
    L->metrics_ev.fd = -1;
    L->comb_backoff_ms = 100;
    L->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (L->epfd < 0) {
        spk_log("edge", "epoll: %s", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if ((L->out_method = edge_out_method_new()) == NULL) {
        spk_log("edge", "no memory");
        goto out;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    L->sig_ev =
        (struct edge_ev){EDGE_EV_SIGNAL, signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC), 0, NULL};
    if (L->sig_ev.fd < 0) {
        spk_log("edge", "signalfd: %s", strerror(errno));
        goto out;
    }
    edge_ev_set(L, &L->sig_ev, EPOLLIN);

    L->zctx = zmq_ctx_new();
    if (L->zctx == NULL) {
        spk_log("edge", "cannot make a ZeroMQ context");
        goto out;
    }
    if (edge_client_open(&L->client, L->zctx, cfg, cfg->combiner_endpoint, why, sizeof(why)) != 0) {
        spk_log("edge", "%s", why);
        goto out;
    }
    /* Benchmark-only baseline (edge_bench.c): keys answered in-process, no
     * combiner is started or asked. */
    if ((r = edge_bench_active() ? prov_builtin_load(edge_bench_keyop, NULL)
                                 : prov_builtin_load(edge_client_keyop, L->client)) != 0) {
        spk_log("edge", "cannot load the OpenSSL provider");
        goto out;
    }
    if ((r = edge_tickets_load(&L->tickets, cfg->ticket_key_file, why, sizeof(why))) != 0) {
        spk_log("edge", "%s", why);
        goto out;
    }
    edge_tickets_use(L->tickets);
    edge_tickets_schedule(L);
    L->sites = edge_sites_new(L, cfg, why, sizeof(why));
    if (L->sites == NULL) {
        spk_log("edge", "%s", why);
        goto out;
    }
    for (i = 0; i < cfg->num_listen; i++) {
        if ((r = edge_listen_open(L, cfg->listen[i], why, sizeof(why))) != 0) {
            spk_log("edge", "%s", why);
            goto out;
        }
    }
    L->listening = true;
    if (cfg->metrics[0] != '\0') {
        int fd = -1;
        if ((r = edge_listen_socket(cfg->metrics, &fd, why, sizeof(why))) != 0) {
            spk_log("edge", "metrics: %s", why);
            goto out;
        }
        L->metrics_ev = (struct edge_ev){EDGE_EV_METRICS_LISTEN, fd, 0, NULL};
        edge_ev_set(L, &L->metrics_ev, EPOLLIN);
    }
    if (!cfg->combiner_external && !edge_bench_active() && edge_combiner_start(L) != 0) {
        spk_log("edge", "cannot start the combiner: %s", strerror(errno));
        goto out;
    }
    if (!edge_bench_active() && edge_client_ping(L->client, 15000) != 0) {
        spk_log("edge", "the combiner at %s does not answer (see its messages above)",
                cfg->combiner_endpoint);
        goto out;
    }
    L->comb_ev = (struct edge_ev){EDGE_EV_COMBINER, edge_client_fd(L->client), 0, NULL};
    L->comb_gen = edge_client_conn_gen(L->client);
    edge_ev_set(L, &L->comb_ev, EPOLLIN);
    spk_log("edge", "serving %zu certificate(s) on %zu address(es); combiner at %s", L->sites->num,
            L->num_listen, cfg->combiner_endpoint);

    while (!L->stop) {
        struct epoll_event evs[EDGE_EVENTS_MAX];
        long wait = edge_client_timeout_ms(L->client);
        int n, k;

        if (wait < 0 || wait > EDGE_TICK_MS) {
            wait = EDGE_TICK_MS;
        }
        if (L->ready != NULL) {
            wait = 0; /* operations ended in edge_tick: resume their jobs first */
        }
        n = epoll_wait(L->epfd, evs, EDGE_EVENTS_MAX, (int)wait);
        if (n < 0 && errno != EINTR) {
            spk_log("edge", "epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (k = 0; k < n; k++) {
            struct edge_ev *ev = evs[k].data.ptr;
            struct edge_conn *c = ev->ptr;
            if (c != NULL && (ev->kind == EDGE_EV_CLIENT || ev->kind == EDGE_EV_UPSTREAM) &&
                c->dead) {
                continue;
            }
            switch (ev->kind) {
            case EDGE_EV_LISTEN:
                edge_accept(L, ev);
                break;
            case EDGE_EV_CLIENT:
            case EDGE_EV_UPSTREAM:
                edge_conn_event(c, ev);
                break;
            case EDGE_EV_COMBINER:
                edge_client_process(L->client);
                break;
            case EDGE_EV_METRICS_LISTEN:
                edge_metrics_accept(L);
                break;
            case EDGE_EV_METRICS:
                edge_mconn_run(L, ev->ptr);
                break;
            case EDGE_EV_SIGNAL: {
                struct signalfd_siginfo si;
                while (read(L->sig_ev.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                    if (si.ssi_signo == SIGCHLD) {
                        edge_reap(L);
                    } else if (si.ssi_signo == SIGHUP) {
                        edge_reload(L);
                    } else if (L->drain_deadline == 0) {
                        edge_drain_start(L);
                    } else {
                        L->stop = true; /* a second SIGTERM: now */
                    }
                }
                break;
            }
            default:
                break;
            }
        }
        /* Answers read above woke their jobs: resumed now, so that a job's
         * next request leaves with edge_tick's batch of this turn. */
        edge_conn_run_ready(L);
        edge_tick(L);
        edge_reap_dead(L);
        if (L->drain_deadline != 0 && (L->num_conns == 0 || spk_now_ms() >= L->drain_deadline)) {
            L->stop = true;
        }
    }
    spk_log("edge", "stopping: %llu connection(s), %llu handshake(s), %llu failed",
            (unsigned long long)L->num_accepted, (unsigned long long)L->num_handshakes,
            (unsigned long long)L->num_failed_handshakes);
    status = 0;
out:
    edge_loop_cleanup(L);
    return status;
}
