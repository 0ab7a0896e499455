/*
 * bench_holder: the combiner with remote share-holders, as a benchmark
 * (tools/bench-holder) and as the driver of
 * tests/integration/test_combiner_remote.sh.
 *
 *   bench_holder sign --config F --alg ALG --digest HEX --out FILE
 *   bench_holder decrypt --config F --alg ALG --in FILE --out FILE [--tls-version V]
 *       one operation through comb_open_config (what `combiner ... --config`
 *       does), result to a file.
 *   bench_holder run --config F --count N [--inflight M] [--interval-ms I]
 *                    [--kill PID@N] [--timeline]
 *       N pkcs1-sha256 signatures, M in flight (default 1), I ms apart when
 *       given; --kill sends SIGKILL to PID after N completed operations;
 *       --timeline prints one line per operation (wall-clock ms, status,
 *       elapsed ms, detail). Prints a summary and the per-source counters.
 *       Exits 0 when no operation failed.
 *   bench_holder bench --config F --pem KEY.pem [--quick] [--holder-pid PID]
 *       share-fetch round trips to the first holder of F next to a bare
 *       ZeroMQ CURVE DEALER/ROUTER of the same sizes (a forked server), what
 *       of the difference the holder's audit log costs (an audit-sized line
 *       appended and fdatasync'd beside the holders' logs, as a holder does
 *       before a share leaves), and signatures through the combiner next to
 *       OpenSSL with |KEY.pem|. With the first holder's PID, also the CPU
 *       time and context switches per round trip at 1 in flight over every
 *       thread of the holder and of the bare server.
 *       Last line: ratio=<bare p50 / share-fetch p50>.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>
#include <zmq.h>

#include "combiner/comb_config.h"
#include "combiner/combiner.h"
#include "share-holder/share-holder.h"
#include "split/split.h"

#define BH_POLL_MAX 64
#define BH_FETCH_INFLIGHT_MAX 64

static double bh_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double bh_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int bh_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double bh_pct(double *v, size_t n, double p)
{
    size_t i;

    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof(v[0]), bh_cmp_double);
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/*
 * bh_audit_sync_p50: what the holder's audit log costs a release before the
 * share may leave: one line (about an audit line's length) appended and
 * made durable with fdatasync, |n| times in a scratch file of |dir| (where
 * the holders write theirs); p50 in us, or -1 if the file cannot be used.
 */
static double bh_audit_sync_p50(const char *dir, size_t n, double *lat_us)
{
    char path[4096];
    char line[192];
    int fd;
    size_t i;

    if (snprintf(path, sizeof(path), "%s/bench-audit-sync.tmp", dir) >= (int)sizeof(path)) {
        return -1;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\n';
    for (i = 0; i < n; i++) {
        double t0 = bh_now_us();

        if (write(fd, line, sizeof(line)) != (ssize_t)sizeof(line) || fdatasync(fd) != 0) {
            break;
        }
        lat_us[i] = bh_now_us() - t0;
    }
    close(fd);
    unlink(path);
    return i == n ? bh_pct(lat_us, n, 0.5) : -1;
}

static int bh_hex(const char *hex, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = strlen(hex);

    if (n % 2 != 0 || n / 2 > cap) {
        return -1;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;

        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    *out_len = n / 2;
    return 0;
}

static int bh_write(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");

    if (fp == NULL || fwrite(p, 1, n, fp) != n) {
        if (fp != NULL) {
            fclose(fp);
        }
        return -1;
    }
    return fclose(fp) == 0 ? 0 : -1;
}

static int bh_open(const char *config, struct comb_ctx **c, struct comb_conf *conf)
{
    char why[COMB_CONF_WHY_MAX];
    int r;

    if ((r = comb_open_config(c, conf, config, why, sizeof(why))) != 0) {
        fprintf(stderr, "bench_holder: %s\n", why);
        return r;
    }
    return 0;
}

static void bh_print_sources(const struct comb_ctx *c)
{
    struct comb_source_stats st;

    for (size_t i = 0; i < comb_num_sources(c); i++) {
        if (comb_source_stats(c, i, &st) != 0) {
            continue;
        }
        printf("source %s requests=%llu good=%llu bad=%llu errors=%llu cancelled=%llu "
               "last_error=%s hedged=%llu hedge_won=%llu probes=%llu mean_ms=%.3f p95_ms=%.3f "
               "passed_over=%d\n",
               st.name, (unsigned long long)st.requests, (unsigned long long)st.good,
               (unsigned long long)st.bad, (unsigned long long)st.errors,
               (unsigned long long)st.cancelled,
               st.last_error != 0 ? spk_strerror(st.last_error) : "none",
               (unsigned long long)st.hedged, (unsigned long long)st.hedge_won,
               (unsigned long long)st.probes, (double)st.latency_mean_ns / 1e6,
               (double)st.latency_p95_ns / 1e6, st.passed_over ? 1 : 0);
    }
}

/* ---- one operation --------------------------------------------------------------------- */

static int bh_one(int argc, char *argv[], bool sign)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"alg", required_argument, NULL, 'a'},
        {"digest", required_argument, NULL, 'd'},
        {"in", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},
        {"tls-version", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *alg_name = NULL, *digest_hex = NULL, *in_path = NULL;
    const char *out_path = NULL;
    unsigned tls_version = 0;
    struct comb_ctx *c = NULL;
    struct comb_conf conf;
    struct comb_decrypt_params params;
    uint8_t in[PROTO_BN_MAX];
    size_t in_len = 0;
    uint8_t *out = NULL;
    size_t out_len = 0;
    enum comb_alg alg;
    double t0;
    int ch, r = 1;

    memset(&conf, 0, sizeof(conf));
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'a':
            alg_name = optarg;
            break;
        case 'd':
            digest_hex = optarg;
            break;
        case 'i':
            in_path = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 't':
            tls_version = (unsigned)strtoul(optarg, NULL, 0);
            break;
        default:
            return 2;
        }
    }
    if (config == NULL || alg_name == NULL || out_path == NULL ||
        (alg = comb_alg_from_name(alg_name)) == COMB_ALG_NONE || comb_alg_is_sign(alg) != sign) {
        fprintf(stderr, "bench_holder: bad arguments\n");
        return 2;
    }
    if (sign) {
        if (digest_hex == NULL || bh_hex(digest_hex, in, sizeof(in), &in_len) != 0) {
            fprintf(stderr, "bench_holder: --digest HEX needed\n");
            return 2;
        }
    } else {
        FILE *fp = in_path != NULL ? fopen(in_path, "rb") : NULL;

        if (fp == NULL) {
            fprintf(stderr, "bench_holder: --in FILE needed\n");
            return 2;
        }
        in_len = fread(in, 1, sizeof(in), fp);
        fclose(fp);
    }
    if (bh_open(config, &c, &conf) != 0) {
        return 1;
    }
    if ((out = spk_secret_new(PROTO_BN_MAX)) == NULL) {
        goto out;
    }
    t0 = bh_now_us();
    if (sign) {
        r = comb_sign_sync(c, out, PROTO_BN_MAX, &out_len, conf.keys[0].key_id, alg, in, in_len);
    } else {
        memset(&params, 0, sizeof(params));
        params.tls_version = (uint16_t)tls_version;
        r = comb_decrypt_sync(c, out, PROTO_BN_MAX, &out_len, conf.keys[0].key_id, alg, in, in_len,
                              &params);
    }
    if (r != 0) {
        fprintf(stderr, "bench_holder: %s failed after %.1f ms: %s: %s\n", alg_name,
                (bh_now_us() - t0) / 1000, spk_strerror(r), comb_last_error(c));
        r = 1;
        goto out;
    }
    if (bh_write(out_path, out, out_len) != 0) {
        fprintf(stderr, "bench_holder: cannot write %s\n", out_path);
        r = 1;
        goto out;
    }
    r = 0;
out:
    spk_secret_free(out);
    comb_free(c);
    comb_conf_cleanup(&conf);
    return r;
}

/* ---- many operations -------------------------------------------------------------------- */

struct bh_run {
    struct comb_ctx *c;
    size_t done, ok, failed;
    double *lat_ms;
    bool timeline;
    uint8_t expected[PROTO_BN_MAX];
    size_t expected_len;
    char first_error[COMB_DETAIL_MAX];
};

struct bh_op {
    struct bh_run *run;
    double t0;
};

static void bh_run_done(void *arg, const struct comb_result *res)
{
    struct bh_op *op = arg;
    struct bh_run *run = op->run;
    double ms = (bh_now_us() - op->t0) / 1000;
    int status = res->status;

    if (status == 0) {
        if (run->expected_len == 0) {
            memcpy(run->expected, res->out, res->out_len);
            run->expected_len = res->out_len;
        } else if (res->out_len != run->expected_len ||
                   sodium_memcmp(res->out, run->expected, res->out_len) != 0) {
            status = SPK_ERR_FAULT; /* PKCS#1 v1.5 is deterministic */
        }
    }
    if (status == 0) {
        run->ok++;
    } else {
        run->failed++;
        if (run->first_error[0] == '\0') {
            snprintf(run->first_error, sizeof(run->first_error), "%s: %s", spk_strerror(status),
                     res->detail);
        }
    }
    run->lat_ms[run->done++] = ms;
    if (run->timeline) {
        printf("op %zu wall_ms=%.0f status=%d elapsed_ms=%.2f detail=%s\n", run->done, bh_wall_ms(),
               status, ms, status == 0 ? "" : res->detail);
        fflush(stdout);
    }
    free(op);
}

static int bh_loop_once(struct comb_ctx *c, long max_wait)
{
    zmq_pollitem_t items[BH_POLL_MAX];
    size_t n = comb_poll_items(c, items, BH_POLL_MAX);
    long t = comb_timeout_ms(c);

    if (t < 0 || (max_wait >= 0 && t > max_wait)) {
        t = max_wait;
    }
    if (t != 0) {
        (void)zmq_poll(items, (int)n, t);
    }
    return comb_process(c);
}

static int bh_run(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"count", required_argument, NULL, 'n'},
        {"inflight", required_argument, NULL, 'm'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"kill", required_argument, NULL, 'k'},
        {"timeline", no_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    size_t count = 0, inflight = 1, submitted = 0;
    long interval_ms = 0;
    long kill_pid = 0;
    size_t kill_at = 0;
    bool killed = false;
    struct bh_run run;
    struct comb_conf conf;
    uint8_t digest[32];
    double t_start, next_submit = 0;
    int ch, r;

    memset(&run, 0, sizeof(run));
    memset(&conf, 0, sizeof(conf));
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            count = strtoul(optarg, NULL, 10);
            break;
        case 'm':
            inflight = strtoul(optarg, NULL, 10);
            break;
        case 'i':
            interval_ms = strtol(optarg, NULL, 10);
            break;
        case 'k':
            if (sscanf(optarg, "%ld@%zu", &kill_pid, &kill_at) != 2) {
                return 2;
            }
            break;
        case 't':
            run.timeline = true;
            break;
        default:
            return 2;
        }
    }
    if (config == NULL || count == 0 || inflight == 0 || inflight > 512) {
        fprintf(stderr, "bench_holder run: --config F --count N [--inflight M]\n");
        return 2;
    }
    if ((run.lat_ms = calloc(count, sizeof(double))) == NULL) {
        return 1;
    }
    if (bh_open(config, &run.c, &conf) != 0) {
        free(run.lat_ms);
        return 1;
    }
    memset(digest, 0x5a, sizeof(digest));
    t_start = bh_now_us();
    while (run.done < count) {
        double now = bh_now_us();

        while (submitted < count && submitted - run.done < inflight &&
               (interval_ms == 0 || now >= next_submit)) {
            struct bh_op *op = calloc(1, sizeof(*op));

            if (op == NULL) {
                return 1;
            }
            op->run = &run;
            op->t0 = bh_now_us();
            r = comb_sign(run.c, NULL, conf.keys[0].key_id, COMB_ALG_PKCS1_SHA256, digest,
                          sizeof(digest), bh_run_done, op);
            submitted++;
            if (r != 0) {
                struct comb_result res;

                memset(&res, 0, sizeof(res));
                res.status = r;
                res.detail = comb_last_error(run.c);
                bh_run_done(op, &res);
            }
            next_submit = now + (double)interval_ms * 1000;
        }
        if (kill_pid > 0 && !killed && run.done >= kill_at) {
            printf("killing pid %ld after %zu operations\n", kill_pid, run.done);
            fflush(stdout);
            (void)kill((pid_t)kill_pid, SIGKILL);
            killed = true;
        }
        if (run.done >= count) {
            break;
        }
        if ((r = bh_loop_once(run.c, interval_ms > 0 ? 1 : -1)) != 0) {
            fprintf(stderr, "bench_holder: comb_process: %s\n", spk_strerror(r));
            break;
        }
    }
    {
        double secs = (bh_now_us() - t_start) / 1e6;
        double max = 0;
        double p50;

        for (size_t i = 0; i < run.done; i++) {
            max = run.lat_ms[i] > max ? run.lat_ms[i] : max;
        }
        p50 = bh_pct(run.lat_ms, run.done, 0.5);
        printf("ops=%zu ok=%zu failed=%zu seconds=%.2f rate=%.0f/s p50_ms=%.2f max_ms=%.2f\n",
               run.done, run.ok, run.failed, secs, (double)run.done / secs, p50, max);
        if (run.first_error[0] != '\0') {
            printf("first_error=%s\n", run.first_error);
        }
    }
    bh_print_sources(run.c);
    r = run.failed == 0 && run.done == count ? 0 : 1;
    comb_free(run.c);
    comb_conf_cleanup(&conf);
    free(run.lat_ms);
    return r;
}

/* ---- the benchmark ---------------------------------------------------------------------- */

/* What a server process has used so far, summed over its threads. */
struct bh_usage {
    double cpu_us; /* on a CPU (schedstat) */
    double ctxsw;  /* voluntary and involuntary context switches */
};

/* bh_usage_get: |pid|'s usage from /proc/PID/task/<tid>/{schedstat,status};
 * -1 if it cannot be read (a kernel without schedstat gives no CPU time). */
static int bh_usage_get(pid_t pid, struct bh_usage *out)
{
    char path[64];
    DIR *d;
    struct dirent *de;
    bool have_cpu = false;

    memset(out, 0, sizeof(*out));
    (void)snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    if ((d = opendir(path)) == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char line[256];
        unsigned long long ns = 0;
        unsigned long n = 0;
        FILE *fp;

        if (de->d_name[0] == '.') {
            continue;
        }
        (void)snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, de->d_name);
        if ((fp = fopen(path, "r")) != NULL) {
            if (fscanf(fp, "%llu", &ns) == 1) {
                out->cpu_us += (double)ns / 1e3;
                have_cpu = true;
            }
            fclose(fp);
        }
        (void)snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", (int)pid, de->d_name);
        if ((fp = fopen(path, "r")) != NULL) {
            while (fgets(line, sizeof(line), fp) != NULL) {
                if (sscanf(line, "voluntary_ctxt_switches: %lu", &n) == 1 ||
                    sscanf(line, "nonvoluntary_ctxt_switches: %lu", &n) == 1) {
                    out->ctxsw += (double)n;
                }
            }
            fclose(fp);
        }
    }
    closedir(d);
    return have_cpu ? 0 : -1;
}

struct bh_fetch {
    struct sh_client *cl;
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t *ys[BH_FETCH_INFLIGHT_MAX];
    size_t y_cap;
    size_t target, issued, done, errors;
    double *lat_us;
};

static int bh_fetch_issue(struct bh_fetch *f, size_t slot)
{
    uint8_t digest[PROTO_SHA256_LEN] = {0};
    uint64_t id;

    f->issued++;
    return sh_client_request(f->cl, &id, 0, f->key_id, PROTO_OP_SIGN_PKCS1_SHA256, 1, digest,
                             f->ys[slot], f->y_cap, 5000, (void *)(uintptr_t)(slot + 1));
}

static void bh_fetch_cb(void *ctx, const struct sh_result *res)
{
    struct bh_fetch *f = ctx;
    size_t slot = (size_t)(uintptr_t)res->user - 1;

    if (res->status != 0) {
        f->errors++;
    }
    f->lat_us[f->done++] = (double)res->latency_us;
    if (f->issued < f->target && bh_fetch_issue(f, slot) != 0) {
        f->errors++;
    }
}

/* bh_fetch_run: |total| share fetches with |inflight| in flight; p50, p99 and rate. */
static int bh_fetch_run(struct bh_fetch *f, size_t inflight, size_t total, double *p50, double *p99,
                        double *rate)
{
    double t0;

    f->target = total;
    f->issued = f->done = f->errors = 0;
    t0 = bh_now_us();
    for (size_t i = 0; i < inflight && f->issued < total; i++) {
        if (bh_fetch_issue(f, i) != 0) {
            return -1;
        }
    }
    while (f->done < f->issued) {
        if (sh_client_wait(f->cl, 10000) != 0) {
            return -1;
        }
    }
    *rate = (double)f->done / ((bh_now_us() - t0) / 1e6);
    *p50 = bh_pct(f->lat_us, f->done, 0.5);
    *p99 = bh_pct(f->lat_us, f->done, 0.99);
    return f->errors == 0 ? 0 : -1;
}

/* The bare server: a forked process with a CURVE ROUTER answering every
 * frame with |reply_len| bytes. */
static void bh_bare_server(int fd, const char *secret_z85, size_t reply_len)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1;
    char ep[256];
    size_t ep_len = sizeof(ep);
    uint8_t id[256], buf[PROTO_MSG_MAX];
    static uint8_t reply[PROTO_MSG_MAX];

    memset(reply, 0xab, sizeof(reply));
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, secret_z85, 40) != 0 ||
        zmq_bind(s, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &ep_len) != 0) {
        _exit(1);
    }
    if (write(fd, ep, strlen(ep) + 1) < 0) {
        _exit(1);
    }
    close(fd);
    for (;;) {
        int n = zmq_recv(s, id, sizeof(id), 0);
        int m;

        if (n < 0) {
            continue;
        }
        m = zmq_recv(s, buf, sizeof(buf), 0);
        if (m == 4 && memcmp(buf, "quit", 4) == 0) {
            break;
        }
        zmq_send(s, id, (size_t)n, ZMQ_SNDMORE);
        zmq_send(s, reply, reply_len, 0);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
}

/* bh_bare_run: the same pattern as bh_fetch_run over the bare DEALER. */
static int bh_bare_run(void *dealer, size_t req_len, size_t inflight, size_t total, double *lat_us,
                       double *p50, double *p99, double *rate)
{
    static uint8_t req[PROTO_MSG_MAX], buf[PROTO_MSG_MAX];
    double sent[BH_FETCH_INFLIGHT_MAX];
    size_t issued = 0, done = 0, head = 0;
    double t0 = bh_now_us();

    memset(req, 0x11, sizeof(req));
    /* Replies come back in order on one DEALER: a ring of send times. */
    for (; issued < inflight && issued < total; issued++) {
        sent[issued % BH_FETCH_INFLIGHT_MAX] = bh_now_us();
        if (zmq_send(dealer, req, req_len, 0) < 0) {
            return -1;
        }
    }
    while (done < total) {
        if (zmq_recv(dealer, buf, sizeof(buf), 0) < 0) {
            return -1;
        }
        lat_us[done++] = bh_now_us() - sent[head];
        head = (head + 1) % BH_FETCH_INFLIGHT_MAX;
        if (issued < total) {
            sent[issued % BH_FETCH_INFLIGHT_MAX] = bh_now_us();
            if (zmq_send(dealer, req, req_len, 0) < 0) {
                return -1;
            }
            issued++;
        }
    }
    *rate = (double)done / ((bh_now_us() - t0) / 1e6);
    *p50 = bh_pct(lat_us, done, 0.5);
    *p99 = bh_pct(lat_us, done, 0.99);
    return 0;
}

/* bh_msg_sizes: the encoded sizes of a SHARE_REQUEST and of its SHARE_RESPONSE. */
static int bh_msg_sizes(unsigned field_bits, size_t *req_len, size_t *resp_len)
{
    static struct proto_msg m;
    static uint8_t buf[PROTO_MSG_MAX];
    int r;

    memset(&m, 0, sizeof(m));
    m.type = PROTO_MSG_SHARE_REQUEST;
    m.req_id = 1;
    m.u.share_req.op = PROTO_OP_SIGN_PKCS1_SHA256;
    m.u.share_req.op_count = 1;
    if ((r = proto_msg_encode(buf, sizeof(buf), req_len, &m)) != 0) {
        return r;
    }
    memset(&m, 0, sizeof(m));
    m.type = PROTO_MSG_SHARE_RESPONSE;
    m.req_id = 1;
    m.u.share_resp.index = 1;
    m.u.share_resp.field_bits = (uint16_t)field_bits;
    m.u.share_resp.sealed_len = 5 * proto_field_y_len(field_bits) + PROTO_AEAD_TAG_LEN;
    m.u.share_resp.key_id[0] = 1;
    return proto_msg_encode(buf, sizeof(buf), resp_len, &m);
}

struct bh_sign {
    size_t done, failed;
};

static void bh_sign_done(void *arg, const struct comb_result *res)
{
    struct bh_sign *s = arg;

    s->done++;
    if (res->status != 0) {
        s->failed++;
    }
}

/* bh_sign_rate: signatures per second through the combiner with |inflight| in flight. */
static double bh_sign_rate(struct comb_ctx *c, const uint8_t *key_id, size_t inflight, size_t total,
                           size_t *failed)
{
    struct bh_sign s;
    uint8_t digest[32];
    size_t submitted = 0;
    double t0 = bh_now_us();

    memset(&s, 0, sizeof(s));
    randombytes_buf(digest, sizeof(digest));
    while (s.done < total) {
        while (submitted < total && submitted - s.done < inflight) {
            if (comb_sign(c, NULL, key_id, COMB_ALG_PKCS1_SHA256, digest, sizeof(digest),
                          bh_sign_done, &s) != 0) {
                s.done++;
                s.failed++;
            }
            submitted++;
        }
        if (bh_loop_once(c, -1) != 0) {
            break;
        }
    }
    *failed = s.failed;
    return (double)s.done / ((bh_now_us() - t0) / 1e6);
}

static double bh_openssl_rate(const char *pem, size_t total)
{
    FILE *fp = fopen(pem, "r");
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t digest[32], sig[1024];
    size_t sig_len;
    double t0, rate = 0;

    if (fp == NULL) {
        return 0;
    }
    pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    if (pkey == NULL || (pctx = EVP_PKEY_CTX_new(pkey, NULL)) == NULL ||
        EVP_PKEY_sign_init(pctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) != 1) {
        goto out;
    }
    randombytes_buf(digest, sizeof(digest));
    /* warm up: the first operation builds the blinding */
    sig_len = sizeof(sig);
    if (EVP_PKEY_sign(pctx, sig, &sig_len, digest, sizeof(digest)) != 1) {
        goto out;
    }
    t0 = bh_now_us();
    for (size_t i = 0; i < total; i++) {
        sig_len = sizeof(sig);
        if (EVP_PKEY_sign(pctx, sig, &sig_len, digest, sizeof(digest)) != 1) {
            goto out;
        }
    }
    rate = (double)total / ((bh_now_us() - t0) / 1e6);
out:
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pkey);
    return rate;
}

static int bh_bench(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"pem", required_argument, NULL, 'p'},
        {"quick", no_argument, NULL, 'q'},
        {"holder-pid", required_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *pem = NULL;
    bool quick = false;
    pid_t holder_pid = 0;
    struct bh_usage bare0, bare1, holder0, holder1;
    bool usage_ok = false;
    char server_pk[41], server_sk[41];
    char ep[256];
    int pipefd[2];
    pid_t child = -1;
    struct comb_ctx *c = NULL;
    struct comb_conf conf;
    struct proto_holder_secret *me = NULL;
    struct bh_fetch f;
    size_t req_len = 0, resp_len = 0, idx = 0;
    void *zctx = NULL, *dealer = NULL;
    double fp50[2], fp99[2], frate[2], bp50[2], bp99[2], brate[2];
    const size_t inflights[2] = {1, 64};
    size_t n1 = 3000, n64 = 30000, nsign = 2000;
    double ssl_rate, comb1, comb16;
    double sync_p50 = -1;
    size_t failed1 = 0, failed16 = 0;
    int ch, r = 1;

    memset(&conf, 0, sizeof(conf));
    memset(&f, 0, sizeof(f));
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'p':
            pem = optarg;
            break;
        case 'q':
            quick = true;
            break;
        case 'h':
            holder_pid = (pid_t)atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (config == NULL || pem == NULL) {
        fprintf(stderr,
                "bench_holder bench --config F --pem KEY.pem [--quick] [--holder-pid PID]\n");
        return 2;
    }
    if (quick) {
        n1 = 500;
        n64 = 3000;
        nsign = 300;
    }
    /* The bare server is forked before any ZeroMQ thread exists. */
    if (zmq_curve_keypair(server_pk, server_sk) != 0 || pipe(pipefd) != 0) {
        return 1;
    }
    {
        char why[COMB_CONF_WHY_MAX];

        if (comb_conf_load(&conf, config, NULL, NULL, why, sizeof(why)) != 0) {
            fprintf(stderr, "bench_holder: %s\n", why);
            return 1;
        }
    }
    if (conf.num_holders == 0) {
        fprintf(stderr, "bench_holder: the config names no holder\n");
        goto out;
    }
    if (bh_msg_sizes(1279, &req_len, &resp_len) != 0) {
        fprintf(stderr, "bench_holder: cannot encode the messages the bare server mimics\n");
        goto out;
    }
    child = fork();
    if (child < 0) {
        perror("bench_holder: fork");
        goto out;
    }
    if (child == 0) {
        close(pipefd[0]);
        bh_bare_server(pipefd[1], server_sk, resp_len);
    }
    close(pipefd[1]);
    if (read(pipefd[0], ep, sizeof(ep)) <= 0) {
        fprintf(stderr, "bench_holder: the bare CURVE server did not start\n");
        goto out;
    }
    close(pipefd[0]);

    comb_conf_cleanup(&conf);
    if (bh_open(config, &c, &conf) != 0) {
        goto out;
    }
    /* ---- share fetch vs bare ---- */
    if (split_holder_secret_load(&me, conf.key_path) != 0 || (zctx = zmq_ctx_new()) == NULL ||
        (f.cl = sh_client_new(zctx, me, bh_fetch_cb, &f)) == NULL ||
        sh_client_add_holder(f.cl, &idx, conf.holders[0].name, conf.holders[0].endpoint,
                             conf.holders[0].curve_pk) != 0) {
        fprintf(stderr, "bench_holder: cannot set up the holder client\n");
        goto out;
    }
    memcpy(f.key_id, conf.keys[0].key_id, PROTO_KEY_ID_LEN);
    f.y_cap = PROTO_SHARE_Y_MAX;
    f.lat_us = calloc(n64, sizeof(double));
    for (size_t i = 0; i < BH_FETCH_INFLIGHT_MAX; i++) {
        if ((f.ys[i] = spk_secret_new(f.y_cap)) == NULL) {
            fprintf(stderr, "bench_holder: out of locked memory\n");
            goto out;
        }
    }
    {
        int one = 1;
        char cpk[41], csk[41];

        dealer = zmq_socket(zctx, ZMQ_DEALER);
        if (dealer == NULL || zmq_curve_keypair(cpk, csk) != 0 ||
            zmq_setsockopt(dealer, ZMQ_CURVE_SERVERKEY, server_pk, 40) != 0 ||
            zmq_setsockopt(dealer, ZMQ_CURVE_PUBLICKEY, cpk, 40) != 0 ||
            zmq_setsockopt(dealer, ZMQ_CURVE_SECRETKEY, csk, 40) != 0 ||
            zmq_setsockopt(dealer, ZMQ_IMMEDIATE, &one, sizeof(one)) != 0 ||
            zmq_connect(dealer, ep) != 0) {
            fprintf(stderr, "bench_holder: cannot connect to the bare server: %s\n",
                    zmq_strerror(errno));
            goto out;
        }
    }
    /* wait for both connections */
    for (int i = 0; i < 500; i++) {
        uint64_t id;

        if (sh_client_ping(f.cl, &id, 0, 1000, NULL) == 0) {
            sh_client_cancel(f.cl, id);
            break;
        }
        usleep(2000);
    }
    printf("message sizes: request %zu bytes, response %zu bytes (RSA-2048 share)\n", req_len,
           resp_len);
    /* warm-up */
    if (bh_fetch_run(&f, 1, 200, &fp50[0], &fp99[0], &frate[0]) != 0 ||
        bh_bare_run(dealer, req_len, 1, 200, f.lat_us, &bp50[0], &bp99[0], &brate[0]) != 0) {
        fprintf(stderr, "bench_holder: warm-up failed (holder rate limit? start it with a high "
                        "--rate)\n");
        goto out;
    }
    {
        /* The holders' audit logs are beside the combiner's file. */
        char dir[4096];

        if (snprintf(dir, sizeof(dir), "%s", config) < (int)sizeof(dir)) {
            sync_p50 = bh_audit_sync_p50(dirname(dir), quick ? 200 : 1000, f.lat_us);
        }
    }
    for (size_t k = 0; k < 2; k++) {
        size_t total = inflights[k] == 1 ? n1 : n64;

        /* alternate the two so that drift hits both alike */
        usage_ok = k == 0 && holder_pid > 0 && bh_usage_get(child, &bare0) == 0;
        if (bh_bare_run(dealer, req_len, inflights[k], total, f.lat_us, &bp50[k], &bp99[k],
                        &brate[k]) != 0) {
            fprintf(stderr, "bench_holder: round trips failed\n");
            goto out;
        }
        usage_ok =
            usage_ok && bh_usage_get(child, &bare1) == 0 && bh_usage_get(holder_pid, &holder0) == 0;
        if (bh_fetch_run(&f, inflights[k], total, &fp50[k], &fp99[k], &frate[k]) != 0) {
            fprintf(stderr, "bench_holder: round trips failed\n");
            goto out;
        }
        usage_ok = usage_ok && bh_usage_get(holder_pid, &holder1) == 0;
        printf("share-fetch  inflight=%-3zu p50=%7.1f us  p99=%7.1f us  rate=%8.0f/s\n",
               inflights[k], fp50[k], fp99[k], frate[k]);
        printf("bare-curve   inflight=%-3zu p50=%7.1f us  p99=%7.1f us  rate=%8.0f/s\n",
               inflights[k], bp50[k], bp99[k], brate[k]);
        printf("  share-fetch / bare p50: %.2fx (target <= 1.3x)\n", fp50[k] / bp50[k]);
        if (k == 0 && sync_p50 > 0) {
            printf("  of it, the holder's audit line written and fdatasync'd before the share "
                   "leaves: p50 %.1f us here;\n  share-fetch p50 less that: %.1f us, %.2fx "
                   "bare\n",
                   sync_p50, fp50[k] - sync_p50, (fp50[k] - sync_p50) / bp50[k]);
        }
        if (usage_ok) {
            printf("  server CPU per round trip, every thread: share-holder %.1f us and %.2f "
                   "context switches, bare server %.1f us and %.2f\n",
                   (holder1.cpu_us - holder0.cpu_us) / (double)total,
                   (holder1.ctxsw - holder0.ctxsw) / (double)total,
                   (bare1.cpu_us - bare0.cpu_us) / (double)total,
                   (bare1.ctxsw - bare0.ctxsw) / (double)total);
        }
    }
    /* ---- full signatures ---- */
    ssl_rate = bh_openssl_rate(pem, nsign);
    (void)bh_sign_rate(c, conf.keys[0].key_id, 1, 50, &failed1); /* warm-up */
    comb1 = bh_sign_rate(c, conf.keys[0].key_id, 1, nsign / 2, &failed1);
    comb16 = bh_sign_rate(c, conf.keys[0].key_id, 16, nsign, &failed16);
    printf("sign RSA-2048 openssl (loaded key)      rate=%8.0f/s\n", ssl_rate);
    printf("sign RSA-2048 combiner k=%u, inflight=1  rate=%8.0f/s  (%.2f of openssl) failed=%zu\n",
           conf.keys[0].threshold, comb1, comb1 / ssl_rate, failed1);
    printf("sign RSA-2048 combiner k=%u, inflight=16 rate=%8.0f/s  (%.2f of openssl, target >= "
           "0.8) failed=%zu\n",
           conf.keys[0].threshold, comb16, comb16 / ssl_rate, failed16);
    {
        struct comb_stats st;

        comb_stats_get(c, &st);
        printf("combiner: batches=%llu batched_ops=%llu gather p50=%.0f us op p50=%.0f us\n",
               (unsigned long long)st.batches, (unsigned long long)st.batched_ops, st.gather.p50_us,
               st.op.p50_us);
    }
    printf("ratio=%.2f\n", bp50[0] / fp50[0]);
    r = failed1 == 0 && failed16 == 0 ? 0 : 1;
out:
    if (dealer != NULL) {
        zmq_send(dealer, "quit", 4, ZMQ_DONTWAIT);
        usleep(20000);
        zmq_close(dealer);
    }
    for (size_t i = 0; i < BH_FETCH_INFLIGHT_MAX; i++) {
        spk_secret_free(f.ys[i]);
    }
    free(f.lat_us);
    sh_client_free(f.cl);
    if (zctx != NULL) {
        zmq_ctx_term(zctx);
    }
    spk_secret_free(me);
    comb_free(c);
    comb_conf_cleanup(&conf);
    if (child > 0) {
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
    }
    return r;
}

int main(int argc, char *argv[])
{
    char why[256];

    if (spk_mem_init() != 0 || spk_process_harden(true, why, sizeof(why)) != 0) {
        fprintf(stderr, "bench_holder: cannot set up secret memory\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_holder sign|decrypt|run|bench ...\n");
        return 2;
    }
    if (strcmp(argv[1], "sign") == 0) {
        return bh_one(argc - 1, argv + 1, true);
    }
    if (strcmp(argv[1], "decrypt") == 0) {
        return bh_one(argc - 1, argv + 1, false);
    }
    if (strcmp(argv[1], "run") == 0) {
        return bh_run(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "bench") == 0) {
        return bh_bench(argc - 1, argv + 1);
    }
    fprintf(stderr, "bench_holder: unknown mode '%s'\n", argv[1]);
    return 2;
}
