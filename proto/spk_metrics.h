#ifndef SPK_METRICS_H
#define SPK_METRICS_H

/*
 * spk_metrics: Prometheus text exposition shared by the daemons (the edge's
 * TLS process and the combiner): fixed-bucket latency histograms, a growing
 * text buffer, and the HTTP answer around it. Nothing here sees a secret.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPK_HIST_BUCKETS 14

/* A latency histogram with fixed bounds from 0.5 ms to 10 s (and +Inf). */
struct spk_hist {
    uint64_t buckets[SPK_HIST_BUCKETS];
    uint64_t count;
    double sum;
};

void spk_hist_observe(struct spk_hist *h, double seconds);

/* A growing text buffer; |failed| once an allocation failed. */
struct spk_text {
    char *buf;
    size_t len, cap;
    bool failed;
};

void spk_text_reset(struct spk_text *t);
void spk_text_free(struct spk_text *t);
void spk_text_printf(struct spk_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* spk_text_hist: |h| as a Prometheus histogram |name| with |labels| ("" or
 * `a="b",c="d"`). */
void spk_text_hist(struct spk_text *t, const char *name, const char *labels,
                   const struct spk_hist *h);
/*
 * spk_metrics_hostport_ok: |s| is a numeric loopback HOST:PORT for a plain
 * HTTP endpoint: 127.A.B.C:PORT (dotted decimal, as inet_pton reads it) or
 * [::1]:PORT, port 1..65535. Names are refused: "127.attacker.example" is
 * not an address, and a name is only as loopback as the resolver says.
 */
bool spk_metrics_hostport_ok(const char *s);

/* spk_http_answer: 0 while the request head in |req| is incomplete; 1 with
 * the whole HTTP response in |out| (|body| for GET /metrics). */
int spk_http_answer(const char *req, size_t len, const struct spk_text *body, struct spk_text *out);

#endif
