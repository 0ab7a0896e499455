/*
 * comb_stats.c: timing windows for the combiner's statistics. Each series
 * keeps the last |cap| samples in a ring; percentiles are computed on demand
 * from a sorted copy, which is cheap next to an RSA operation and keeps the
 * hot path at one store.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "combiner/comb_private.h"

int comb_series_init(struct comb_series *s, size_t cap)
{
    memset(s, 0, sizeof(*s));
    if (cap == 0) {
        cap = 1;
    }
    s->samples = OPENSSL_zalloc(cap * sizeof(s->samples[0]));
    if (s->samples == NULL) {
        return SPK_ERR_NOMEM;
    }
    s->cap = cap;
    return 0;
}

void comb_series_cleanup(struct comb_series *s)
{
    OPENSSL_free(s->samples);
    memset(s, 0, sizeof(*s));
}

void comb_series_add(struct comb_series *s, uint64_t ns)
{
    double us = (double)ns / 1000.0;

    if (s->samples == NULL) {
        return;
    }
    s->samples[s->pos] = us;
    s->pos = (s->pos + 1) % s->cap;
    if (s->num < s->cap) {
        s->num++;
    }
    s->count++;
    if (us > s->max) {
        s->max = us;
    }
}

void comb_series_clear(struct comb_series *s)
{
    s->num = 0;
    s->pos = 0;
    s->count = 0;
    s->max = 0;
}

static int comb_double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The nearest-rank percentile |pct| of sorted |v| (|n| > 0). */
static double comb_percentile(const double *v, size_t n, unsigned pct)
{
    size_t rank = (n * pct + 99) / 100;

    if (rank == 0) {
        rank = 1;
    }
    return v[rank - 1];
}

void comb_series_get(const struct comb_series *s, struct comb_timing *out)
{
    double *sorted = NULL;
    double sum = 0;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->count = s->count;
    out->max_us = s->max;
    if (s->num == 0) {
        return;
    }
    for (i = 0; i < s->num; i++) {
        sum += s->samples[i];
    }
    out->mean_us = sum / (double)s->num;
    sorted = OPENSSL_malloc(s->num * sizeof(sorted[0]));
    if (sorted == NULL) {
        /* No percentiles without memory; the mean and max still hold. */
        out->p50_us = out->mean_us;
        out->p99_us = s->max;
        return;
    }
    memcpy(sorted, s->samples, s->num * sizeof(sorted[0]));
    qsort(sorted, s->num, sizeof(sorted[0]), comb_double_cmp);
    out->p50_us = comb_percentile(sorted, s->num, 50);
    out->p99_us = comb_percentile(sorted, s->num, 99);
    OPENSSL_free(sorted);
}

void comb_lifetime_observe(struct comb_stats *st, uint64_t ns)
{
    static const unsigned bounds_us[COMB_LIFETIME_NUM_BOUNDS] = COMB_LIFETIME_BOUNDS_US;
    size_t i = 0;

    while (i < COMB_LIFETIME_NUM_BOUNDS && ns > (uint64_t)bounds_us[i] * 1000u) {
        i++;
    }
    st->lifetime_buckets[i]++;
    st->lifetime_ns_sum += ns;
}

void comb_stats_get(const struct comb_ctx *c, struct comb_stats *out)
{
    *out = c->counters;
    comb_series_get(&c->s_gather, &out->gather);
    comb_series_get(&c->s_check, &out->check);
    comb_series_get(&c->s_interp, &out->interpolate);
    comb_series_get(&c->s_op, &out->op);
    comb_series_get(&c->s_wipe, &out->wipe);
    comb_series_get(&c->s_life, &out->lifetime);
    comb_series_get(&c->s_total, &out->total);
}

void comb_stats_reset(struct comb_ctx *c)
{
    size_t i;

    memset(&c->counters, 0, sizeof(c->counters));
    comb_series_clear(&c->s_gather);
    comb_series_clear(&c->s_check);
    comb_series_clear(&c->s_interp);
    comb_series_clear(&c->s_op);
    comb_series_clear(&c->s_wipe);
    comb_series_clear(&c->s_life);
    comb_series_clear(&c->s_total);
    for (i = 0; i < c->num_srcs; i++) {
        struct comb_source_stats *st = &c->srcs[i].st;

        st->requests = st->good = st->bad = st->errors = st->cancelled = 0;
        st->bad_sigshares = 0;
        st->hedged = st->hedge_won = st->probes = 0;
        st->last_error = 0;
    }
}

size_t comb_num_sources(const struct comb_ctx *c)
{
    return c->num_srcs;
}

int comb_source_stats(const struct comb_ctx *c, size_t id, struct comb_source_stats *out)
{
    if (id >= c->num_srcs) {
        return SPK_ERR_INVALID_ARG;
    }
    *out = c->srcs[id].st;
    out->latency_mean_ns = c->srcs[id].lat_mean_ns;
    out->latency_p95_ns = c->srcs[id].lat_mean_ns + 3 * c->srcs[id].lat_dev_ns;
    out->passed_over =
        (!c->have_local_src || id != c->local_src) && comb_src_passed_over(c, NULL, &c->srcs[id]);
    return 0;
}
