#ifndef SPK_METRICS_H
#define SPK_METRICS_H

/*
 * spk_metrics: Prometheus text exposition shared by the daemons (the edge's
 * TLS process, the combiner and the share-holder): fixed-bucket latency
 * histograms, a growing text buffer, the HTTP answer around it and the
 * ZMQ_STREAM endpoint that serves it. Nothing here sees a secret.
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

/* A scrape in progress over the ZMQ_STREAM socket: its peer id and request. */
#define SPK_MSERVER_SLOTS 8
#define SPK_MSERVER_ID_MAX 256 /* ZMQ_STREAM peer ids are at most 255 bytes */

struct spk_mslot {
    uint8_t id[SPK_MSERVER_ID_MAX];
    size_t id_len;
    char req[1024];
    size_t req_len;
    bool used;
};

/* spk_mserver_render_fn writes the daemon's metrics into |t| (reset). */
typedef void spk_mserver_render_fn(void *arg, struct spk_text *t);

/* A plain HTTP metrics endpoint on a ZMQ_STREAM socket (zeroed = closed). */
struct spk_mserver {
    void *stream;
    spk_mserver_render_fn *render;
    void *arg;
    struct spk_mslot slots[SPK_MSERVER_SLOTS];
    struct spk_text text, out;
};

/*
 * spk_mserver_open binds a ZMQ_STREAM socket of |zctx| at |hostport|
 * (checked by spk_metrics_hostport_ok before) and answers each scrape with
 * what |render| writes. On failure one line names |who| and the reason.
 * 0 or SPK_ERR_IO.
 */
int spk_mserver_open(struct spk_mserver *m, void *zctx, const char *hostport, const char *who,
                     spk_mserver_render_fn *render, void *arg) __attribute__((warn_unused_result));
/* spk_mserver_read answers every complete scrape waiting on the socket; it
 * reads until the socket has nothing, which re-arms its ZMQ_FD. */
void spk_mserver_read(struct spk_mserver *m);
/* spk_mserver_close closes the socket (before zmq_ctx_term) and frees the text. */
void spk_mserver_close(struct spk_mserver *m);

#endif
