/*
 * spk_metrics.c: Prometheus text exposition helpers shared by the edge's TLS
 * process, the combiner and the share-holder: fixed-bucket latency
 * histograms, a growing text buffer, the HTTP answer around it, and the
 * ZMQ_STREAM endpoint the combiner and the share-holder serve it on. Nothing
 * here sees a secret; labels come from the configuration (holder names) or
 * constants.
 */

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "base/base.h"
#include "proto/spk_metrics.h"

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double spk_hist_bounds[SPK_HIST_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0,
};

void spk_hist_observe(struct spk_hist *h, double seconds)
{
    size_t i;

    for (i = 0; i < SPK_HIST_BUCKETS; i++) {
        if (seconds <= spk_hist_bounds[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

void spk_text_reset(struct spk_text *t)
{
    t->len = 0;
    t->failed = false;
    if (t->buf != NULL) {
        t->buf[0] = '\0';
    }
}

void spk_text_free(struct spk_text *t)
{
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

void spk_text_printf(struct spk_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed) {
        return;
    }
    for (;;) {
        size_t room = t->cap - t->len;
        va_start(ap, fmt);
        n = vsnprintf(t->buf == NULL ? NULL : t->buf + t->len, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        {
            size_t cap = t->cap == 0 ? 8192 : t->cap * 2;
            char *nb;
            while (cap - t->len <= (size_t)n) {
                cap *= 2;
            }
            nb = realloc(t->buf, cap);
            if (nb == NULL) {
                t->failed = true;
                return;
            }
            t->buf = nb;
            t->cap = cap;
        }
    }
}

void spk_text_hist(struct spk_text *t, const char *name, const char *labels,
                   const struct spk_hist *h)
{
    uint64_t cum = 0;
    size_t i;
    const char *sep = labels[0] != '\0' ? "," : "";

    for (i = 0; i < SPK_HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        spk_text_printf(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, spk_hist_bounds[i],
                        (unsigned long long)cum);
    }
    spk_text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                    (unsigned long long)h->count);
    if (labels[0] != '\0') {
        spk_text_printf(t, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name,
                        labels, (unsigned long long)h->count);
    } else {
        spk_text_printf(t, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
                        (unsigned long long)h->count);
    }
}

/*
 * spk_http_answer: |req| (|len| bytes so far) is an HTTP request head.
 * Returns 0 while the head is incomplete, else fills |out| with the whole
 * response (the metrics in |body| for GET /metrics, 404 or 405 otherwise)
 * and returns 1.
 */
int spk_http_answer(const char *req, size_t len, const struct spk_text *body, struct spk_text *out)
{
    const char *status = "200 OK";
    const char *text = body->buf != NULL ? body->buf : "";
    size_t text_len = body->len;
    bool found = false;
    size_t i;

    for (i = 0; i + 3 < len; i++) {
        if (strncmp(req + i, "\r\n\r\n", 4) == 0) {
            found = true;
            break;
        }
    }
    if (!found) {
        return 0;
    }
    if (len < 4 || strncmp(req, "GET ", 4) != 0) {
        status = "405 Method Not Allowed";
        text = "only GET\n";
        text_len = strlen(text);
    } else if (!(strncmp(req + 4, "/metrics ", 9) == 0 || strncmp(req + 4, "/metrics?", 9) == 0 ||
                 strncmp(req + 4, "/ ", 2) == 0)) {
        status = "404 Not Found";
        text = "try /metrics\n";
        text_len = strlen(text);
    }
    spk_text_reset(out);
    spk_text_printf(out,
                    "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n%.*s",
                    status, text_len, (int)text_len, text);
    return 1;
}

bool spk_metrics_hostport_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[INET6_ADDRSTRLEN + 2];
    uint8_t addr[16];
    size_t host_len;
    unsigned long port;
    char *end = NULL;

    if (colon == NULL || colon == s || colon[1] < '1' || colon[1] > '9') {
        return false;
    }
    port = strtoul(colon + 1, &end, 10);
    if (end == NULL || *end != '\0' || port > 65535) {
        return false;
    }
    host_len = (size_t)(colon - s);
    if (host_len >= sizeof(host)) {
        return false;
    }
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    if (strcmp(host, "[::1]") == 0) {
        return true;
    }
    return inet_pton(AF_INET, host, addr) == 1 && addr[0] == 127;
}

static void mserver_send(struct spk_mserver *m, const uint8_t *id, size_t id_len, const void *data,
                         size_t len)
{
    if (zmq_send(m->stream, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)id_len) {
        (void)zmq_send(m->stream, data, len, ZMQ_DONTWAIT);
    }
}

/* ZMQ_STREAM gives [peer id][bytes]; empty bytes mean a peer came or went.
 * A complete request head is answered and the peer disconnected (an empty
 * frame to its id). */
void spk_mserver_read(struct spk_mserver *m)
{
    uint8_t id[SPK_MSERVER_ID_MAX];
    char data[1024];

    for (;;) {
        struct spk_mslot *slot = NULL;
        int id_len = zmq_recv(m->stream, id, sizeof(id), ZMQ_DONTWAIT);
        int n;
        size_t i;

        if (id_len < 0) {
            return;
        }
        n = zmq_recv(m->stream, data, sizeof(data), ZMQ_DONTWAIT);
        if (n < 0 || (size_t)id_len > sizeof(id)) {
            continue;
        }
        for (i = 0; i < SPK_MSERVER_SLOTS; i++) {
            if (m->slots[i].used && m->slots[i].id_len == (size_t)id_len &&
                sodium_memcmp(m->slots[i].id, id, (size_t)id_len) == 0) {
                slot = &m->slots[i];
                break;
            }
        }
        if (n == 0) {
            if (slot != NULL) {
                slot->used = false; /* the peer went away */
            }
            continue;
        }
        if (slot == NULL) {
            for (i = 0; i < SPK_MSERVER_SLOTS && m->slots[i].used; i++) {
            }
            if (i == SPK_MSERVER_SLOTS) {
                mserver_send(m, id, (size_t)id_len, "", 0); /* busy: close */
                continue;
            }
            slot = &m->slots[i];
            memset(slot, 0, sizeof(*slot));
            slot->used = true;
            memcpy(slot->id, id, (size_t)id_len);
            slot->id_len = (size_t)id_len;
        }
        if ((size_t)n > sizeof(data)) {
            n = (int)sizeof(data);
        }
        if ((size_t)n > sizeof(slot->req) - slot->req_len) {
            slot->used = false;
            mserver_send(m, id, (size_t)id_len, "", 0);
            continue;
        }
        memcpy(slot->req + slot->req_len, data, (size_t)n);
        slot->req_len += (size_t)n;
        spk_text_reset(&m->text);
        m->render(m->arg, &m->text);
        if (spk_http_answer(slot->req, slot->req_len, &m->text, &m->out) == 1) {
            if (!m->out.failed) {
                mserver_send(m, id, (size_t)id_len, m->out.buf, m->out.len);
            }
            mserver_send(m, id, (size_t)id_len, "", 0);
            slot->used = false;
        }
    }
}

int spk_mserver_open(struct spk_mserver *m, void *zctx, const char *hostport, const char *who,
                     spk_mserver_render_fn *render, void *arg)
{
    char ep[INET6_ADDRSTRLEN + 16];
    int zero = 0;

    m->render = render;
    m->arg = arg;
    if (snprintf(ep, sizeof(ep), "tcp://%s", hostport) >= (int)sizeof(ep)) {
        spk_log(who, "metrics %s: address too long", hostport);
        return SPK_ERR_IO;
    }
    m->stream = zmq_socket(zctx, ZMQ_STREAM);
    if (m->stream == NULL || zmq_setsockopt(m->stream, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_bind(m->stream, ep) != 0) {
        spk_log(who, "metrics %s: %s", hostport, zmq_strerror(zmq_errno()));
        return SPK_ERR_IO;
    }
    return 0;
}

void spk_mserver_close(struct spk_mserver *m)
{
    if (m->stream != NULL) {
        zmq_close(m->stream);
        m->stream = NULL;
    }
    spk_text_free(&m->text);
    spk_text_free(&m->out);
}
