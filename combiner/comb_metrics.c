/*
 * comb_metrics.c: the `metrics HOST:PORT` endpoint of `combiner run`: the
 * server's and the serving generation's counters as Prometheus text, served
 * by spk_mserver (plain HTTP, loopback). Nothing here sees a secret.
 */

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "combiner/comb_server.h"

static void metrics_summary(struct spk_text *t, const char *name, const char *help,
                            const struct comb_timing *tm)
{
    spk_text_printf(t,
                    "# HELP %s %s The sum is estimated from the window's mean.\n# TYPE %s "
                    "summary\n%s{quantile=\"0.5\"} %.6f\n"
                    "%s{quantile=\"0.99\"} %.6f\n%s_sum %.6f\n%s_count %llu\n"
                    "# HELP %s_max The largest sample in the window.\n# TYPE %s_max gauge\n"
                    "%s_max %.6f\n",
                    name, help, name, name, tm->p50_us / 1e6, name, tm->p99_us / 1e6, name,
                    tm->mean_us * (double)tm->count / 1e6, name, (unsigned long long)tm->count,
                    name, name, name, tm->max_us / 1e6);
}

/* metrics_lifetime: every key lifetime since start or reload,
 * in the library's fixed buckets, as a Prometheus histogram. */
static void metrics_lifetime(struct spk_text *t, const struct comb_stats *st)
{
    static const unsigned bounds_us[COMB_LIFETIME_NUM_BOUNDS] = COMB_LIFETIME_BOUNDS_US;
    uint64_t cumulative = 0;
    size_t i;

    spk_text_printf(t, "# HELP spk_combiner_key_lifetime_seconds How long a whole key existed "
                       "in memory per reconstruction (reconstruction start to wipe end).\n"
                       "# TYPE spk_combiner_key_lifetime_seconds histogram\n");
    for (i = 0; i < COMB_LIFETIME_NUM_BOUNDS; i++) {
        cumulative += st->lifetime_buckets[i];
        spk_text_printf(t, "spk_combiner_key_lifetime_seconds_bucket{le=\"%g\"} %llu\n",
                        bounds_us[i] / 1e6, (unsigned long long)cumulative);
    }
    cumulative += st->lifetime_buckets[COMB_LIFETIME_NUM_BOUNDS];
    spk_text_printf(t,
                    "spk_combiner_key_lifetime_seconds_bucket{le=\"+Inf\"} %llu\n"
                    "spk_combiner_key_lifetime_seconds_sum %.6f\n"
                    "spk_combiner_key_lifetime_seconds_count %llu\n",
                    (unsigned long long)cumulative, (double)st->lifetime_ns_sum / 1e9,
                    (unsigned long long)cumulative);
}

static void metrics_holder(void *arg, const char *name, const char *endpoint, bool connected,
                           const struct spk_hist *latency)
{
    char labels[PROTO_NAME_MAX + 16];

    (void)endpoint;
    (void)connected;
    snprintf(labels, sizeof(labels), "holder=\"%s\"", name);
    spk_text_hist(arg, "spk_combiner_holder_share_seconds", labels, latency);
}

/* metrics_source_counter: one counter per source, the uint64_t at |field|
 * (offsetof) of its struct comb_source_stats. */
static void metrics_source_counter(struct spk_text *t, const struct comb_ctx *comb, size_t n,
                                   const char *name, const char *help, size_t field)
{
    size_t i;

    spk_text_printf(t, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (i = 0; i < n; i++) {
        struct comb_source_stats ss;
        uint64_t v;

        if (comb_source_stats(comb, i, &ss) == 0) {
            memcpy(&v, (const uint8_t *)&ss + field, sizeof(v));
            spk_text_printf(t, "%s{source=\"%s\"} %llu\n", name, ss.name, (unsigned long long)v);
        }
    }
}

/* metrics_fanout: holder-fanout needed's hedges and probes, and the latency
 * estimate that decides whom to ask first and when to hedge. */
static void metrics_fanout(struct spk_text *t, const struct comb_ctx *comb, size_t n)
{
    size_t i;

    metrics_source_counter(t, comb, n, "spk_combiner_source_hedges_total",
                           "Share requests sent as a hedge (holder-fanout needed): the holders "
                           "asked first were late or failed.",
                           offsetof(struct comb_source_stats, hedged));
    metrics_source_counter(t, comb, n, "spk_combiner_source_hedges_won_total",
                           "Hedge requests whose share was among the k a reconstruction used.",
                           offsetof(struct comb_source_stats, hedge_won));
    metrics_source_counter(t, comb, n, "spk_combiner_source_probes_total",
                           "Share requests to a passed-over (slow or late) holder on top of "
                           "those an operation needs, to notice its recovery.",
                           offsetof(struct comb_source_stats, probes));
    spk_text_printf(t, "# HELP spk_combiner_source_latency_estimate_seconds The recent share "
                       "latency estimate per source: mean and about p95 (mean + 3 mean "
                       "deviations), 0 before the first answer.\n"
                       "# TYPE spk_combiner_source_latency_estimate_seconds gauge\n");
    for (i = 0; i < n; i++) {
        struct comb_source_stats ss;

        if (comb_source_stats(comb, i, &ss) == 0) {
            spk_text_printf(t,
                            "spk_combiner_source_latency_estimate_seconds{source=\"%s\","
                            "stat=\"mean\"} %.6f\n"
                            "spk_combiner_source_latency_estimate_seconds{source=\"%s\","
                            "stat=\"p95\"} %.6f\n",
                            ss.name, (double)ss.latency_mean_ns / 1e9, ss.name,
                            (double)ss.latency_p95_ns / 1e9);
        }
    }
    spk_text_printf(t, "# HELP spk_combiner_source_passed_over 1 while holder-fanout needed "
                       "leaves the source out of first requests (slow or late; probed).\n"
                       "# TYPE spk_combiner_source_passed_over gauge\n");
    for (i = 0; i < n; i++) {
        struct comb_source_stats ss;

        if (comb_source_stats(comb, i, &ss) == 0) {
            spk_text_printf(t, "spk_combiner_source_passed_over{source=\"%s\"} %d\n", ss.name,
                            ss.passed_over ? 1 : 0);
        }
    }
}

/*
 * comb_metrics_render: the combiner's counters. The library's counters
 * and timings belong to the serving generation and start again at zero after
 * a reload (Prometheus treats that as a counter reset).
 */
void comb_metrics_render(void *arg, struct spk_text *t)
{
    const struct comb_server *s = arg;
    struct comb_gen *g = s->cur;
    struct comb_stats st;
    size_t i, n;

    comb_stats_get(g->comb, &st);
    spk_text_printf(t,
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
                    "or timeout instead of a share. A threshold-mode signature share is "
                    "accepted on arrival; one whose proof fails after a failed combination "
                    "is counted rejected as well.\n"
                    "# TYPE spk_combiner_shares_total counter\n"
                    "spk_combiner_shares_total{result=\"accepted\"} %llu\n"
                    "spk_combiner_shares_total{result=\"rejected\"} %llu\n"
                    "spk_combiner_shares_total{result=\"error\"} %llu\n"
                    "# HELP spk_combiner_reloads_total Configuration reloads (SIGHUP).\n"
                    "# TYPE spk_combiner_reloads_total counter\n"
                    "spk_combiner_reloads_total{result=\"ok\"} %llu\n"
                    "spk_combiner_reloads_total{result=\"failed\"} %llu\n",
                    (unsigned long long)s->num_ok, (unsigned long long)s->num_failed,
                    comb_pending(g->comb), (unsigned long long)st.batches,
                    (unsigned long long)st.shares_good, (unsigned long long)st.shares_bad,
                    (unsigned long long)st.shares_error, (unsigned long long)s->reloads_ok,
                    (unsigned long long)s->reloads_failed);
    spk_text_printf(t,
                    "# HELP spk_combiner_crt_two_threads_total Operations whose two CRT halves "
                    "ran on two threads (crt-threads 2, the combiner otherwise idle).\n"
                    "# TYPE spk_combiner_crt_two_threads_total counter\n"
                    "spk_combiner_crt_two_threads_total %llu\n"
                    "# HELP spk_combiner_crt_halves_taken_back_total Of those, operations whose "
                    "q half the combiner's thread took back and computed itself, the helper "
                    "thread not having started by the end of the p half (no CPU free for it).\n"
                    "# TYPE spk_combiner_crt_halves_taken_back_total counter\n"
                    "spk_combiner_crt_halves_taken_back_total %llu\n",
                    (unsigned long long)st.halves_apart, (unsigned long long)st.halves_taken_back);
    metrics_lifetime(t, &st);
    metrics_summary(t, "spk_combiner_key_lifetime_window_seconds",
                    "How long a whole key existed in memory per reconstruction "
                    "(reconstruction start to wipe end; recent window).",
                    &st.lifetime);
    metrics_summary(t, "spk_combiner_operation_seconds",
                    "Request to answer inside the combiner (recent window).", &st.total);
    metrics_summary(t, "spk_combiner_gather_seconds",
                    "First share request to k-th good share (recent window).", &st.gather);
    n = comb_num_sources(g->comb);
    metrics_source_counter(t, g->comb, n, "spk_combiner_source_requests_total",
                           "Share requests per source (holders, the local share, share files).",
                           offsetof(struct comb_source_stats, requests));
    metrics_source_counter(t, g->comb, n, "spk_combiner_source_shares_rejected_total",
                           "Shares from a source that failed the record's checks (commitment, "
                           "split id, index).",
                           offsetof(struct comb_source_stats, bad));
    metrics_source_counter(t, g->comb, n, "spk_combiner_source_errors_total",
                           "Errors and timeouts from a source instead of a share.",
                           offsetof(struct comb_source_stats, errors));
    spk_text_printf(t, "# HELP spk_combiner_bad_signature_shares_total Signature shares of "
                       "threshold-mode keys from a holder that were wrong (refused on arrival, "
                       "their proof failing after a failed combination, or left out of every k "
                       "of them that combine into a valid signature).\n"
                       "# TYPE spk_combiner_bad_signature_shares_total counter\n");
    for (i = 0; i < n; i++) {
        struct comb_source_stats ss;
        if (comb_source_stats(g->comb, i, &ss) == 0) {
            spk_text_printf(t, "spk_combiner_bad_signature_shares_total{holder=\"%s\"} %llu\n",
                            ss.name, (unsigned long long)ss.bad_sigshares);
        }
    }
    metrics_fanout(t, g->comb, n);
    spk_text_printf(t, "# HELP spk_combiner_holder_share_seconds Share request to share "
                       "answer, per share-holder.\n"
                       "# TYPE spk_combiner_holder_share_seconds histogram\n");
    (void)comb_remote_each(g->comb, metrics_holder, t);
    spk_text_printf(t,
                    "# HELP spk_combiner_refused_total Connections refused at the door "
                    "(peer), and requests for an operation the client may not ask for (op).\n"
                    "# TYPE spk_combiner_refused_total counter\n"
                    "spk_combiner_refused_total{what=\"peer\"} %llu\n"
                    "spk_combiner_refused_total{what=\"op\"} %llu\n",
                    (unsigned long long)s->num_refused_peers,
                    (unsigned long long)s->num_refused_ops);
}
