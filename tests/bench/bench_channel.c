/*
 * bench_channel: what one edge<->combiner operation costs in messaging
 * alone, for three local channels (issue 13 item 1), with an echo server in
 * a forked process standing in for the combiner:
 *   zmq     ZeroMQ DEALER -> ROUTER over ipc:// (the framing of today's
 *           door: identity frame + body; the client drains ZMQ_FD in an
 *           epoll loop as the edge does, the server uses zmq_poll);
 *   seqpkt  a SOCK_SEQPACKET Unix socket, one datagram per message, the
 *           server reading up to 32 with recvmmsg and answering them with
 *           one sendmmsg, the client likewise per loop turn;
 *   shm     a shared-memory ring each way (memfd, single producer, single
 *           consumer) with an eventfd written only when the other side
 *           said it is going to sleep.
 * Each runs with 1 and 16 operations in flight for SECONDS seconds (request
 * 120 bytes, answer 280: an OP_REQUEST with a SHA-256 digest, an
 * OP_RESPONSE with an RSA-2048 signature). Printed per operation: system
 * calls (perf_event_open on raw_syscalls:sys_enter, every thread of the
 * side; "-" when perf events are not allowed), context switches (getrusage,
 * voluntary + involuntary), CPU microseconds, for the client (the edge's
 * side) and the server (the combiner's side), and round-trip p50/p99.
 *
 *   bench_channel [SECONDS]
 * Last line: ratio=<zmq client CPU per op / seqpkt client CPU per op, 1 in
 * flight: the unloaded case, where the difference is stable>.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#define BC_REQ_LEN 120
#define BC_RESP_LEN 280
#define BC_SLOT_LEN 512
#define BC_RING_SLOTS 64
#define BC_BATCH 32
#define BC_INFLIGHT_MAX 16
#define BC_LAT_MAX (4u << 20)

enum bc_mode { BC_ZMQ, BC_SEQPKT, BC_SHM };
static const char *const bc_mode_names[] = {"zmq", "seqpkt", "shm"};

struct bc_side {
    double syscalls; /* < 0: not counted */
    double csw;
    double cpu_us;
};

struct bc_result {
    double ops;
    double secs;
    double p50_us, p99_us;
    struct bc_side client, server;
};

static double bc_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---- counting ------------------------------------------------------------- */

/* bc_syscall_counter: a counter of this process's system calls, its later
 * threads included (they are summed in when they exit), or -1. */
static int bc_syscall_counter(void)
{
    struct perf_event_attr a;
    FILE *fp = fopen("/sys/kernel/tracing/events/raw_syscalls/sys_enter/id", "r");
    unsigned long long id = 0;

    if (fp == NULL) {
        fp = fopen("/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id", "r");
    }
    if (fp == NULL) {
        return -1;
    }
    if (fscanf(fp, "%llu", &id) != 1) {
        fclose(fp);
        return -1;
    }
    fclose(fp);
    memset(&a, 0, sizeof(a));
    a.type = PERF_TYPE_TRACEPOINT;
    a.size = sizeof(a);
    a.config = id;
    a.disabled = 1;
    a.inherit = 1;
    a.exclude_kernel = 0;
    return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

struct bc_mark {
    struct rusage ru;
    int fd;
};

static void bc_mark_start(struct bc_mark *m)
{
    if (m->fd >= 0) {
        ioctl(m->fd, PERF_EVENT_IOC_RESET, 0);
        ioctl(m->fd, PERF_EVENT_IOC_ENABLE, 0);
    }
    getrusage(RUSAGE_SELF, &m->ru);
}

static double bc_tv_us(const struct timeval *tv)
{
    return (double)tv->tv_sec * 1e6 + (double)tv->tv_usec;
}

/* bc_mark_stop: totals since bc_mark_start (not yet divided per op). */
static void bc_mark_stop(const struct bc_mark *m, struct bc_side *out)
{
    struct rusage ru;
    uint64_t n = 0;

    getrusage(RUSAGE_SELF, &ru);
    out->syscalls = -1;
    if (m->fd >= 0) {
        ioctl(m->fd, PERF_EVENT_IOC_DISABLE, 0);
        if (read(m->fd, &n, sizeof(n)) == (ssize_t)sizeof(n)) {
            out->syscalls = (double)n;
        }
    }
    out->csw = (double)(ru.ru_nvcsw - m->ru.ru_nvcsw + ru.ru_nivcsw - m->ru.ru_nivcsw);
    out->cpu_us = bc_tv_us(&ru.ru_utime) - bc_tv_us(&m->ru.ru_utime) + bc_tv_us(&ru.ru_stime) -
                  bc_tv_us(&m->ru.ru_stime);
}

/* ---- the shared-memory ring ------------------------------------------------ */

struct bc_ring {
    _Atomic uint32_t head; /* next slot the producer writes */
    char pad1[60];
    _Atomic uint32_t tail; /* next slot the consumer reads */
    char pad2[60];
    _Atomic uint32_t sleeping; /* the consumer waits on the eventfd */
    char pad3[60];
    uint32_t len[BC_RING_SLOTS];
    uint8_t slot[BC_RING_SLOTS][BC_SLOT_LEN];
};

struct bc_shm {
    struct bc_ring req, resp;
};

static bool bc_ring_push(struct bc_ring *r, int efd, const uint8_t *p, uint32_t len)
{
    uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t one = 1;

    if (h - atomic_load_explicit(&r->tail, memory_order_acquire) >= BC_RING_SLOTS) {
        return false;
    }
    memcpy(r->slot[h % BC_RING_SLOTS], p, len);
    r->len[h % BC_RING_SLOTS] = len;
    atomic_store_explicit(&r->head, h + 1, memory_order_seq_cst);
    if (atomic_exchange_explicit(&r->sleeping, 0, memory_order_seq_cst) != 0) {
        if (write(efd, &one, sizeof(one)) < 0) {
            return false;
        }
    }
    return true;
}

static bool bc_ring_pop(struct bc_ring *r, uint8_t *p, uint32_t *len)
{
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

    if (atomic_load_explicit(&r->head, memory_order_acquire) == t) {
        return false;
    }
    *len = r->len[t % BC_RING_SLOTS];
    memcpy(p, r->slot[t % BC_RING_SLOTS], *len);
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return true;
}

/* bc_ring_sleep_ok: announce a sleep; false when something arrived meanwhile. */
static bool bc_ring_sleep_ok(struct bc_ring *r)
{
    atomic_store_explicit(&r->sleeping, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&r->head, memory_order_seq_cst) !=
        atomic_load_explicit(&r->tail, memory_order_relaxed)) {
        atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

/* ---- servers (the combiner's side) ------------------------------------------ */

struct bc_chan {
    enum bc_mode mode;
    char path[108];
    struct bc_shm *shm;
    int efd_req, efd_resp; /* shm: wake the server / the client */
    int stop_fd;           /* eventfd: the client is done */
};

static void bc_server_zmq(const struct bc_chan *ch, struct bc_mark *m, struct bc_side *out)
{
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    char ep[128];
    uint8_t id[256], body[BC_SLOT_LEN], answer[BC_RESP_LEN];
    int zero = 0;

    memset(answer, 0x5a, sizeof(answer));
    snprintf(ep, sizeof(ep), "ipc://%s", ch->path);
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_bind(router, ep) != 0) {
        fprintf(stderr, "bench_channel: bind %s: %s\n", ep, zmq_strerror(zmq_errno()));
        _exit(1);
    }
    bc_mark_start(m);
    for (;;) {
        zmq_pollitem_t items[2] = {{router, 0, ZMQ_POLLIN, 0}, {NULL, ch->stop_fd, ZMQ_POLLIN, 0}};

        if (zmq_poll(items, 2, -1) < 0 && errno != EINTR) {
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            break;
        }
        for (;;) {
            int id_len = zmq_recv(router, id, sizeof(id), ZMQ_DONTWAIT);
            if (id_len < 0 || zmq_recv(router, body, sizeof(body), ZMQ_DONTWAIT) < 0) {
                break;
            }
            memcpy(answer, body, 8); /* the request id */
            zmq_send(router, id, (size_t)id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(router, answer, sizeof(answer), ZMQ_DONTWAIT);
        }
    }
    zmq_close(router);
    zmq_ctx_term(ctx); /* joins the I/O thread: its calls are counted */
    bc_mark_stop(m, out);
}

static void bc_server_seqpkt(const struct bc_chan *ch, int lfd, struct bc_mark *m,
                             struct bc_side *out)
{
    static uint8_t in[BC_BATCH][BC_SLOT_LEN], answer[BC_BATCH][BC_RESP_LEN];
    struct mmsghdr rm[BC_BATCH], sm[BC_BATCH];
    struct iovec riov[BC_BATCH], siov[BC_BATCH];
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};

    if (fd < 0) {
        _exit(1);
    }
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    ev.data.fd = ch->stop_fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, ch->stop_fd, &ev);
    memset(answer, 0x5a, sizeof(answer));
    bc_mark_start(m);
    for (;;) {
        struct epoll_event got[2];
        int n = epoll_wait(ep, got, 2, -1);
        bool stop = false;

        for (int i = 0; i < n; i++) {
            stop |= got[i].data.fd == ch->stop_fd;
        }
        if (stop) {
            break;
        }
        for (;;) {
            int k;

            for (int i = 0; i < BC_BATCH; i++) {
                riov[i] = (struct iovec){in[i], BC_SLOT_LEN};
                rm[i].msg_hdr = (struct msghdr){.msg_iov = &riov[i], .msg_iovlen = 1};
            }
            k = recvmmsg(fd, rm, BC_BATCH, MSG_DONTWAIT, NULL);
            if (k <= 0) {
                break;
            }
            for (int i = 0; i < k; i++) {
                memcpy(answer[i], in[i], 8);
                siov[i] = (struct iovec){answer[i], BC_RESP_LEN};
                sm[i].msg_hdr = (struct msghdr){.msg_iov = &siov[i], .msg_iovlen = 1};
            }
            if (sendmmsg(fd, sm, (unsigned)k, MSG_DONTWAIT) != k) {
                break;
            }
            if (k < BC_BATCH) {
                break; /* drained: the next recvmmsg would only say EAGAIN */
            }
        }
    }
    bc_mark_stop(m, out);
    close(fd);
    close(ep);
}

static void bc_server_shm(const struct bc_chan *ch, struct bc_mark *m, struct bc_side *out)
{
    uint8_t in[BC_SLOT_LEN], answer[BC_RESP_LEN];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};

    ev.data.fd = ch->efd_req;
    epoll_ctl(ep, EPOLL_CTL_ADD, ch->efd_req, &ev);
    ev.data.fd = ch->stop_fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, ch->stop_fd, &ev);
    memset(answer, 0x5a, sizeof(answer));
    bc_mark_start(m);
    for (;;) {
        uint32_t len;
        bool any = false;

        while (bc_ring_pop(&ch->shm->req, in, &len)) {
            memcpy(answer, in, 8);
            while (!bc_ring_push(&ch->shm->resp, ch->efd_resp, answer, sizeof(answer))) {
            }
            any = true;
        }
        if (!any && bc_ring_sleep_ok(&ch->shm->req)) {
            struct epoll_event got[2];
            int n = epoll_wait(ep, got, 2, -1);
            bool stop = false;
            uint64_t v;

            for (int i = 0; i < n; i++) {
                stop |= got[i].data.fd == ch->stop_fd;
            }
            if (stop) {
                break;
            }
            if (read(ch->efd_req, &v, sizeof(v)) < 0) {
                (void)errno;
            }
        }
    }
    bc_mark_stop(m, out);
    close(ep);
}

/* ---- the client (the edge's side) ------------------------------------------------ */

struct bc_client {
    const struct bc_chan *ch;
    void *zctx, *dealer;
    int fd; /* what epoll waits on */
    double sent_at[BC_INFLIGHT_MAX];
    double *lat;
    size_t num_lat;
    uint64_t ops;
    uint8_t req[BC_REQ_LEN];
    /* seqpkt: requests of this loop turn, sent at once */
    uint8_t out[BC_BATCH][BC_REQ_LEN];
    unsigned num_out;
};

static void bc_client_queue(struct bc_client *c, unsigned slot)
{
    uint64_t id = slot;

    memcpy(c->req, &id, sizeof(id));
    c->sent_at[slot] = bc_now_us();
    switch (c->ch->mode) {
    case BC_ZMQ:
        zmq_send(c->dealer, c->req, sizeof(c->req), ZMQ_DONTWAIT);
        break;
    case BC_SEQPKT:
        memcpy(c->out[c->num_out++], c->req, sizeof(c->req));
        break;
    case BC_SHM:
        while (!bc_ring_push(&c->ch->shm->req, c->ch->efd_req, c->req, sizeof(c->req))) {
        }
        break;
    default:
        abort();
    }
}

static void bc_client_flush(struct bc_client *c)
{
    struct mmsghdr sm[BC_BATCH];
    struct iovec iov[BC_BATCH];

    if (c->ch->mode != BC_SEQPKT || c->num_out == 0) {
        return;
    }
    for (unsigned i = 0; i < c->num_out; i++) {
        iov[i] = (struct iovec){c->out[i], BC_REQ_LEN};
        sm[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
    }
    if (sendmmsg(c->fd, sm, c->num_out, MSG_DONTWAIT) != (int)c->num_out) {
        fprintf(stderr, "bench_channel: sendmmsg: %s\n", strerror(errno));
        exit(1);
    }
    c->num_out = 0;
}

static void bc_client_answer(struct bc_client *c, const uint8_t *p, bool more)
{
    uint64_t id;

    memcpy(&id, p, sizeof(id));
    if (id >= BC_INFLIGHT_MAX) {
        abort();
    }
    if (c->num_lat < BC_LAT_MAX) {
        c->lat[c->num_lat++] = bc_now_us() - c->sent_at[id];
    }
    c->ops++;
    if (more) {
        bc_client_queue(c, (unsigned)id);
    }
}

/* bc_client_turn: one turn of the loop: wait, take every answer, send the
 * follow-ups. */
static void bc_client_turn(struct bc_client *c, int ep, bool more)
{
    static uint8_t in[BC_BATCH][BC_SLOT_LEN];
    struct epoll_event got[1];
    int k;

    switch (c->ch->mode) {
    case BC_ZMQ: {
        int events = 0;
        size_t len = sizeof(events);

        /* ZMQ_FD is edge-triggered: ask ZMQ_EVENTS before sleeping. */
        if (zmq_getsockopt(c->dealer, ZMQ_EVENTS, &events, &len) == 0 && !(events & ZMQ_POLLIN)) {
            (void)epoll_wait(ep, got, 1, 1000);
        }
        while ((k = zmq_recv(c->dealer, in[0], BC_SLOT_LEN, ZMQ_DONTWAIT)) >= 0) {
            bc_client_answer(c, in[0], more);
        }
        break;
    }
    case BC_SEQPKT: {
        struct mmsghdr rm[BC_BATCH];
        struct iovec iov[BC_BATCH];

        (void)epoll_wait(ep, got, 1, 1000);
        for (int i = 0; i < BC_BATCH; i++) {
            iov[i] = (struct iovec){in[i], BC_SLOT_LEN};
            rm[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
        }
        k = recvmmsg(c->fd, rm, BC_BATCH, MSG_DONTWAIT, NULL);
        for (int i = 0; i < k; i++) {
            bc_client_answer(c, in[i], more);
        }
        bc_client_flush(c);
        break;
    }
    case BC_SHM: {
        uint32_t len;
        bool any = false;

        while (bc_ring_pop(&c->ch->shm->resp, in[0], &len)) {
            bc_client_answer(c, in[0], more);
            any = true;
        }
        if (!any && bc_ring_sleep_ok(&c->ch->shm->resp)) {
            uint64_t v;
            if (epoll_wait(ep, got, 1, 1000) > 0 && read(c->fd, &v, sizeof(v)) < 0) {
                (void)errno;
            }
        }
        break;
    }
    default:
        abort();
    }
}

static int bc_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void bc_run(enum bc_mode mode, unsigned inflight, double secs, struct bc_result *res)
{
    struct bc_chan ch;
    struct bc_client c;
    struct bc_mark m = {.fd = -1};
    int lfd = -1, ep, pipefd[2];
    pid_t pid;
    struct epoll_event ev = {.events = EPOLLIN};
    double t0, until;
    int st;

    memset(&ch, 0, sizeof(ch));
    memset(&c, 0, sizeof(c));
    memset(res, 0, sizeof(*res));
    ch.mode = mode;
    snprintf(ch.path, sizeof(ch.path), "/tmp/bench-channel-%d.sock", (int)getpid());
    unlink(ch.path);
    ch.stop_fd = eventfd(0, EFD_CLOEXEC);
    if (mode == BC_SHM) {
        int mfd = memfd_create("bench-channel", MFD_CLOEXEC);
        if (mfd < 0 || ftruncate(mfd, sizeof(struct bc_shm)) != 0) {
            perror("memfd");
            exit(1);
        }
        ch.shm = mmap(NULL, sizeof(struct bc_shm), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        close(mfd);
        if (ch.shm == MAP_FAILED) {
            perror("mmap");
            exit(1);
        }
        memset(ch.shm, 0, sizeof(*ch.shm));
        ch.efd_req = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ch.efd_resp = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    if (mode == BC_SEQPKT) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ch.path);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0) {
            perror("seqpacket");
            exit(1);
        }
    }
    if (pipe(pipefd) != 0) {
        exit(1);
    }
    pid = fork();
    if (pid == 0) {
        struct bc_side side;

        close(pipefd[0]);
        m.fd = bc_syscall_counter();
        if (mode == BC_ZMQ) {
            bc_server_zmq(&ch, &m, &side);
        } else if (mode == BC_SEQPKT) {
            bc_server_seqpkt(&ch, lfd, &m, &side);
        } else {
            bc_server_shm(&ch, &m, &side);
        }
        if (write(pipefd[1], &side, sizeof(side)) != (ssize_t)sizeof(side)) {
            _exit(1);
        }
        _exit(0);
    }
    close(pipefd[1]);
    c.ch = &ch;
    c.lat = malloc(BC_LAT_MAX * sizeof(double));
    ep = epoll_create1(EPOLL_CLOEXEC);
    m.fd = bc_syscall_counter();
    if (mode == BC_ZMQ) {
        char zep[128];
        size_t len = sizeof(c.fd);
        int zero = 0;

        c.zctx = zmq_ctx_new();
        c.dealer = zmq_socket(c.zctx, ZMQ_DEALER);
        snprintf(zep, sizeof(zep), "ipc://%s", ch.path);
        zmq_setsockopt(c.dealer, ZMQ_LINGER, &zero, sizeof(zero));
        for (int i = 0; i < 200 && access(ch.path, F_OK) != 0; i++) {
            usleep(5000);
        }
        zmq_connect(c.dealer, zep);
        zmq_getsockopt(c.dealer, ZMQ_FD, &c.fd, &len);
        usleep(50000); /* connected before the clock starts */
    } else if (mode == BC_SEQPKT) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ch.path);
        c.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            perror("connect");
            exit(1);
        }
    } else {
        c.fd = ch.efd_resp;
    }
    ev.data.fd = c.fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    usleep(20000);
    bc_mark_start(&m);
    t0 = bc_now_us();
    until = t0 + secs * 1e6;
    for (unsigned i = 0; i < inflight; i++) {
        bc_client_queue(&c, i);
    }
    bc_client_flush(&c);
    while (bc_now_us() < until) {
        bc_client_turn(&c, ep, true);
    }
    res->secs = (bc_now_us() - t0) / 1e6;
    {
        /* The last answers, sending nothing new. */
        for (double stop = bc_now_us() + 1e6; bc_now_us() < stop;) {
            uint64_t before = c.ops;
            bc_client_turn(&c, ep, false);
            if (c.ops == before && c.ops > 0) {
                break;
            }
        }
    }
    if (mode == BC_ZMQ) {
        zmq_close(c.dealer);
        zmq_ctx_term(c.zctx);
    }
    bc_mark_stop(&m, &res->client);
    {
        uint64_t one = 1;
        if (write(ch.stop_fd, &one, sizeof(one)) < 0) {
            exit(1);
        }
    }
    if (read(pipefd[0], &res->server, sizeof(res->server)) != (ssize_t)sizeof(res->server)) {
        fprintf(stderr, "bench_channel: the %s server did not report\n", bc_mode_names[mode]);
        exit(1);
    }
    waitpid(pid, &st, 0);
    res->ops = (double)c.ops;
    qsort(c.lat, c.num_lat, sizeof(double), bc_cmp);
    res->p50_us = c.num_lat ? c.lat[c.num_lat / 2] : 0;
    res->p99_us = c.num_lat ? c.lat[(size_t)((double)(c.num_lat - 1) * 0.99)] : 0;
    free(c.lat);
    close(ep);
    close(pipefd[0]);
    close(ch.stop_fd);
    if (mode == BC_SEQPKT) {
        close(c.fd);
        close(lfd);
    }
    if (mode == BC_SHM) {
        close(ch.efd_req);
        close(ch.efd_resp);
        munmap(ch.shm, sizeof(*ch.shm));
    }
    if (m.fd >= 0) {
        close(m.fd);
    }
    unlink(ch.path);
}

static void bc_print_side(double v, double ops)
{
    if (v < 0) {
        printf(" %8s", "-");
    } else {
        printf(" %8.2f", v / ops);
    }
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    static const unsigned inflights[] = {1, 16};
    double cpu1[3] = {0};

    if (secs <= 0 || secs > 600) {
        fprintf(stderr, "usage: bench_channel [SECONDS]\n");
        return 2;
    }
    printf("%-7s %3s %9s %8s %8s | %-26s | %-26s\n", "channel", "in", "ops/s", "p50_us", "p99_us",
           "client (edge) per op", "server (combiner) per op");
    printf("%-7s %3s %9s %8s %8s | %8s %8s %8s | %8s %8s %8s\n", "", "", "", "", "", "syscall",
           "ctxsw", "cpu_us", "syscall", "ctxsw", "cpu_us");
    for (size_t j = 0; j < sizeof(inflights) / sizeof(inflights[0]); j++) {
        for (int mode = BC_ZMQ; mode <= BC_SHM; mode++) {
            struct bc_result r;

            bc_run((enum bc_mode)mode, inflights[j], secs, &r);
            if (r.ops == 0) {
                fprintf(stderr, "bench_channel: %s: no operation completed\n", bc_mode_names[mode]);
                return 1;
            }
            printf("%-7s %3u %9.0f %8.1f %8.1f |", bc_mode_names[mode], inflights[j],
                   r.ops / r.secs, r.p50_us, r.p99_us);
            bc_print_side(r.client.syscalls, r.ops);
            printf(" %8.3f %8.2f |", r.client.csw / r.ops, r.client.cpu_us / r.ops);
            bc_print_side(r.server.syscalls, r.ops);
            printf(" %8.3f %8.2f\n", r.server.csw / r.ops, r.server.cpu_us / r.ops);
            fflush(stdout);
            if (inflights[j] == 1) {
                cpu1[mode] = r.client.cpu_us / r.ops;
            }
        }
    }
    printf("ratio=%.2f\n", cpu1[BC_SEQPKT] > 0 ? cpu1[BC_ZMQ] / cpu1[BC_SEQPKT] : 0.0);
    return 0;
}
