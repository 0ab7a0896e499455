/*
 * edge_metrics.c: the edge's metrics endpoint: a loopback listener whose
 * connections read one request head and get the counters in the Prometheus
 * text format.
 */

/* accept4 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edge/internal.h"

static void edge_metrics_render(struct edge_loop *L, struct spk_text *t)
{
    static const char *const kinds[2] = {"sign", "decrypt"};
    static const char *const results[EDGE_OPRES_NUM] = {"ok", "error", "timeout", "unavailable",
                                                        "too_few_shares"};
    struct edge_keyop_stats ks;
    uint64_t issued, accepted, unknown;
    int f, v, res, k;

    edge_client_stats(L->client, &ks);
    edge_tickets_stats(&issued, &accepted, &unknown);
    spk_text_reset(t);
    spk_text_printf(t,
                    "# HELP spk_edge_connections_accepted_total TCP connections accepted.\n"
                    "# TYPE spk_edge_connections_accepted_total counter\n"
                    "spk_edge_connections_accepted_total %llu\n"
                    "# HELP spk_edge_connections_open Client connections open now.\n"
                    "# TYPE spk_edge_connections_open gauge\n"
                    "spk_edge_connections_open %zu\n",
                    (unsigned long long)L->num_accepted, L->num_conns);
    spk_text_printf(t, "# HELP spk_edge_handshakes_total TLS handshakes by result, version and "
                       "whether the session was resumed.\n"
                       "# TYPE spk_edge_handshakes_total counter\n");
    for (f = 0; f < 2; f++) {
        for (v = 0; v < EDGE_VER_NUM; v++) {
            for (res = 0; res < 2; res++) {
                if (f == 1 && res == 1) {
                    continue;
                }
                spk_text_printf(t,
                                "spk_edge_handshakes_total{result=\"%s\",version=\"%s\","
                                "resumed=\"%s\"} %llu\n",
                                f == 0 ? "ok" : "failed", edge_ver_names[v],
                                res == 1 ? "yes" : "no", (unsigned long long)L->hs[f][v][res]);
            }
        }
    }
    spk_text_printf(t,
                    "# HELP spk_edge_handshake_timeouts_total Handshakes that ran out of "
                    "handshake-timeout-ms (counted as failed too).\n"
                    "# TYPE spk_edge_handshake_timeouts_total counter\n"
                    "spk_edge_handshake_timeouts_total %llu\n",
                    (unsigned long long)L->hs_timeouts);
    spk_text_printf(t, "# HELP spk_edge_key_operations_total Private-key operations sent to the "
                       "combiner, by kind and result.\n"
                       "# TYPE spk_edge_key_operations_total counter\n");
    for (k = 0; k < 2; k++) {
        for (res = 0; res < EDGE_OPRES_NUM; res++) {
            spk_text_printf(t, "spk_edge_key_operations_total{kind=\"%s\",result=\"%s\"} %llu\n",
                            kinds[k], results[res], (unsigned long long)ks.ops[k][res]);
        }
    }
    spk_text_printf(t, "# HELP spk_edge_key_operation_seconds Private-key operation latency "
                       "seen by the edge (answered operations).\n"
                       "# TYPE spk_edge_key_operation_seconds histogram\n");
    for (k = 0; k < 2; k++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "kind=\"%s\"", kinds[k]);
        spk_text_hist(t, "spk_edge_key_operation_seconds", labels, &ks.latency[k]);
    }
    spk_text_printf(t,
                    "# HELP spk_edge_key_operations_in_flight Operations waiting for the "
                    "combiner.\n"
                    "# TYPE spk_edge_key_operations_in_flight gauge\n"
                    "spk_edge_key_operations_in_flight %zu\n",
                    edge_client_pending(L->client));
    spk_text_printf(t,
                    "# HELP spk_edge_session_tickets_total Session tickets issued, opened, "
                    "refused for an unknown key, and opened but made for another server name.\n"
                    "# TYPE spk_edge_session_tickets_total counter\n"
                    "spk_edge_session_tickets_total{event=\"issued\"} %llu\n"
                    "spk_edge_session_tickets_total{event=\"opened\"} %llu\n"
                    "spk_edge_session_tickets_total{event=\"unknown_key\"} %llu\n"
                    "spk_edge_session_tickets_total{event=\"other_server_name\"} %llu\n"
                    "# HELP spk_edge_ticket_keys Session ticket keys loaded.\n"
                    "# TYPE spk_edge_ticket_keys gauge\n"
                    "spk_edge_ticket_keys %zu\n"
                    "# HELP spk_edge_ticket_key_rotations_total New random ticket keys made "
                    "(no ticket-key-file: every ticket-key-rotate-s).\n"
                    "# TYPE spk_edge_ticket_key_rotations_total counter\n"
                    "spk_edge_ticket_key_rotations_total %llu\n",
                    (unsigned long long)issued, (unsigned long long)accepted,
                    (unsigned long long)unknown, (unsigned long long)edge_sni_refused_count(),
                    edge_tickets_count(L->tickets), (unsigned long long)L->ticket_rotations);
    spk_text_printf(t,
                    "# HELP spk_edge_combiner_restarts_total Times the combiner process "
                    "died and was restarted.\n"
                    "# TYPE spk_edge_combiner_restarts_total counter\n"
                    "spk_edge_combiner_restarts_total %llu\n"
                    "# HELP spk_edge_upstream_failures_total Connections whose origin could "
                    "not be reached (answered as upstream-failure says).\n"
                    "# TYPE spk_edge_upstream_failures_total counter\n"
                    "spk_edge_upstream_failures_total %llu\n"
                    "# HELP spk_edge_certificates Certificates served.\n"
                    "# TYPE spk_edge_certificates gauge\n"
                    "spk_edge_certificates %zu\n",
                    (unsigned long long)L->comb_restarts, (unsigned long long)L->upstream_failures,
                    L->sites != NULL ? L->sites->num : 0);
    spk_text_printf(t,
                    "# HELP spk_edge_reloads_total Configuration reloads (SIGHUP).\n"
                    "# TYPE spk_edge_reloads_total counter\n"
                    "spk_edge_reloads_total{result=\"ok\"} %llu\n"
                    "spk_edge_reloads_total{result=\"failed\"} %llu\n",
                    (unsigned long long)L->reloads_ok, (unsigned long long)L->reloads_failed);
}

void edge_mconn_free(struct edge_loop *L, struct edge_mconn *m)
{
    edge_ev_set(L, &m->ev, 0);
    close(m->ev.fd);
    if (m->prev != NULL) {
        m->prev->next = m->next;
    } else {
        L->mconns = m->next;
    }
    if (m->next != NULL) {
        m->next->prev = m->prev;
    }
    L->num_mconns--;
    spk_text_free(&m->out);
    free(m);
}

void edge_mconn_run(struct edge_loop *L, struct edge_mconn *m)
{
    if (!m->answering) {
        ssize_t n = read(m->ev.fd, m->req + m->req_len, sizeof(m->req) - m->req_len);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            edge_mconn_free(L, m);
            return;
        }
        if (n > 0) {
            m->req_len += (size_t)n;
        }
        if (m->req_len == sizeof(m->req)) {
            edge_mconn_free(L, m); /* no scrape sends that much */
            return;
        }
        edge_metrics_render(L, &L->mtext);
        if (spk_http_answer(m->req, m->req_len, &L->mtext, &m->out) == 0) {
            return;
        }
        if (m->out.failed) {
            edge_mconn_free(L, m);
            return;
        }
        m->answering = true;
        edge_ev_set(L, &m->ev, EPOLLOUT);
    }
    while (m->off < m->out.len) {
        ssize_t n = write(m->ev.fd, m->out.buf + m->off, m->out.len - m->off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            break;
        }
        m->off += (size_t)n;
    }
    edge_mconn_free(L, m);
}

void edge_metrics_accept(struct edge_loop *L)
{
    for (;;) {
        struct edge_mconn *m;
        int fd = accept4(L->metrics_ev.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        if (L->num_mconns >= EDGE_MCONN_MAX || (m = calloc(1, sizeof(*m))) == NULL) {
            close(fd);
            continue;
        }
        m->ev = (struct edge_ev){EDGE_EV_METRICS, fd, 0, m};
        m->deadline_ms = spk_now_ms() + 5000;
        m->next = L->mconns;
        if (L->mconns != NULL) {
            L->mconns->prev = m;
        }
        L->mconns = m;
        L->num_mconns++;
        edge_ev_set(L, &m->ev, EPOLLIN);
    }
}
