/*
 * bench_tls_client: a TLS load client that never resumes a session, for
 * tools/bench-edge (its latency at 1 in flight; h2load makes the load),
 * tools/bench-threshold and tests/integration/test_edge_faults.sh and
 * test_combiner_door.sh.
 *
 *   bench_tls_client load HOST PORT SERVERNAME CAFILE VERSION SECONDS CONC [EVENTS]
 *       Full handshakes (a new connection and no session reuse each time)
 *       for SECONDS, with CONC connections in flight at once, all driven by
 *       one epoll loop with non-blocking sockets. VERSION is 1.3 (RSA-PSS
 *       CertificateVerify) or 1.2 (ECDHE-RSA-AES128-GCM-SHA256). The chain is
 *       verified against CAFILE. After the handshake the client sends
 *       close_notify and closes. Connections come from source addresses
 *       127.0.0.2 to 127.0.0.201 in turn, so that TIME_WAIT sockets do not
 *       exhaust the ephemeral ports. Prints one line:
 *         ok=N failed=N seconds=S rate=R p50_ms=X p90_ms=X p99_ms=X max_ms=X
 *         alert=N eof=N timeout=N other=N
 *       (failures by kind: an alert from the server, the server closed, no
 *       answer within 10 s, anything else). With EVENTS, writes one line per
 *       finished connection: "END_MS OK LATENCY_US KIND", END_MS the
 *       CLOCK_REALTIME milliseconds of the end, KIND ok/alert:N/eof/timeout/
 *       other, so a test can line failures up with the faults it made.
 *
 *   bench_tls_client delay-proxy LISTEN_PORT TARGET_PORT DELAY_MS
 *       A TCP proxy on 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT. After
 *       SIGUSR1 it holds every byte coming back from the target for DELAY_MS
 *       before it passes it on (a slow share-holder, whatever the bytes are:
 *       CURVE traffic is opaque to it); after SIGUSR2 it passes them at once
 *       again (the start). Runs until killed.
 *
 * SERVERNAME "-" sends no SNI.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define BT_TIMEOUT_MS 10000
#define BT_SRC_ADDRS 200
#define BT_EVENTS 256

enum bt_kind {
    BT_OK = 0,
    BT_ALERT,
    BT_EOF,
    BT_TIMEOUT,
    BT_OTHER,
    BT_KINDS,
};

struct bt_conn {
    int fd;
    SSL *ssl;
    uint64_t start_us;
    bool connected;
    bool in_use;
    int alert; /* the server's alert, -1 if none */
};

static uint64_t bt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t bt_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int bt_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void bt_info_cb(const SSL *ssl, int where, int ret)
{
    struct bt_conn *c = SSL_get_app_data(ssl);
    if (c != NULL && (where & SSL_CB_READ_ALERT) != 0) {
        c->alert = ret & 0xff;
    }
}

struct bt_load {
    SSL_CTX *ctx;
    char *servername; /* not const: SSL_set_tlsext_host_name casts it to void * */
    struct sockaddr_in dst;
    int epfd;
    unsigned src_next;
    uint64_t *lat_us;
    size_t num_lat, cap_lat;
    uint64_t count[BT_KINDS];
    FILE *events;
};

static int bt_conn_start(struct bt_load *B, struct bt_conn *c)
{
    struct sockaddr_in src;
    struct epoll_event ev;
    int one = 1;

    memset(c, 0, sizeof(*c));
    c->alert = -1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef IP_BIND_ADDRESS_NO_PORT
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000002u + B->src_next);
    B->src_next = (B->src_next + 1) % BT_SRC_ADDRS;
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
        close(c->fd);
        return -1;
    }
    c->start_us = bt_now_us();
    if (connect(c->fd, (struct sockaddr *)&B->dst, sizeof(B->dst)) != 0 && errno != EINPROGRESS) {
        close(c->fd);
        return -1;
    }
    c->ssl = SSL_new(B->ctx);
    if (c->ssl == NULL) {
        close(c->fd);
        return -1;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_app_data(c->ssl, c);
    if (B->servername != NULL) {
        SSL_set_tlsext_host_name(c->ssl, B->servername);
        SSL_set1_host(c->ssl, B->servername);
    }
    SSL_set_connect_state(c->ssl);
    c->in_use = true;
    ev.events = EPOLLOUT;
    ev.data.ptr = c;
    epoll_ctl(B->epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void bt_conn_end(struct bt_load *B, struct bt_conn *c, enum bt_kind kind)
{
    uint64_t lat = bt_now_us() - c->start_us;

    B->count[kind]++;
    if (kind == BT_OK) {
        if (B->num_lat == B->cap_lat) {
            size_t cap = B->cap_lat == 0 ? 4096 : B->cap_lat * 2;
            uint64_t *p = realloc(B->lat_us, cap * sizeof(*p));
            if (p != NULL) {
                B->lat_us = p;
                B->cap_lat = cap;
            }
        }
        if (B->num_lat < B->cap_lat) {
            B->lat_us[B->num_lat++] = lat;
        }
        SSL_shutdown(c->ssl); /* close_notify, not waiting for the peer's */
    }
    if (B->events != NULL) {
        char kbuf[32];
        const char *k = kind == BT_OK        ? "ok"
                        : kind == BT_EOF     ? "eof"
                        : kind == BT_TIMEOUT ? "timeout"
                                             : "other";
        if (kind == BT_ALERT) {
            snprintf(kbuf, sizeof(kbuf), "alert:%d", c->alert);
            k = kbuf;
        }
        fprintf(B->events, "%llu %d %llu %s\n", (unsigned long long)bt_wall_ms(), kind == BT_OK,
                (unsigned long long)lat, k);
    }
    epoll_ctl(B->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
    c->in_use = false;
}

static void bt_conn_step(struct bt_load *B, struct bt_conn *c)
{
    struct epoll_event ev;
    int rc, err;

    if (!c->connected) {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr != 0) {
            bt_conn_end(B, c, BT_OTHER);
            return;
        }
        c->connected = true;
    }
    ERR_clear_error();
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        bt_conn_end(B, c, BT_OK);
        return;
    }
    err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        ev.events = err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
        ev.data.ptr = c;
        epoll_ctl(B->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    if (c->alert >= 0) {
        bt_conn_end(B, c, BT_ALERT);
    } else if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL) {
        bt_conn_end(B, c, BT_EOF);
    } else {
        bt_conn_end(B, c, BT_OTHER);
    }
}

static double bt_pct_ms(const uint64_t *v, size_t n, double p)
{
    size_t i;
    if (n == 0) {
        return 0.0;
    }
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static int bt_load_run(int argc, char **argv)
{
    struct bt_load B;
    struct bt_conn *conns = NULL;
    const char *version, *cafile;
    double seconds;
    long conc;
    uint64_t t0, end, last_fill = 0;
    size_t i;
    bool draining = false;
    int rc = 1;

    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: bench_tls_client load HOST PORT SERVERNAME CAFILE VERSION "
                        "SECONDS CONC [EVENTS]\n");
        return 2;
    }
    memset(&B, 0, sizeof(B));
    B.epfd = -1;
    B.dst.sin_family = AF_INET;
    B.dst.sin_port = htons((uint16_t)atol(argv[3]));
    if (inet_pton(AF_INET, argv[2], &B.dst.sin_addr) != 1) {
        fprintf(stderr, "bench_tls_client: bad host %s\n", argv[2]);
        return 2;
    }
    B.servername = strcmp(argv[4], "-") == 0 ? NULL : argv[4];
    cafile = argv[5];
    version = argv[6];
    seconds = atof(argv[7]);
    conc = atol(argv[8]);
    if (seconds <= 0 || conc < 1 || conc > 10000) {
        fprintf(stderr, "bench_tls_client: bad SECONDS or CONC\n");
        return 2;
    }
    if (argc == 10) {
        B.events = fopen(argv[9], "w");
        if (B.events == NULL) {
            perror(argv[9]);
            return 2;
        }
    }
    B.ctx = SSL_CTX_new(TLS_client_method());
    if (B.ctx == NULL || SSL_CTX_load_verify_locations(B.ctx, cafile, NULL) != 1) {
        fprintf(stderr, "bench_tls_client: cannot load %s\n", cafile);
        goto out;
    }
    SSL_CTX_set_verify(B.ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(B.ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(B.ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_info_callback(B.ctx, bt_info_cb);
    if (strcmp(version, "1.3") == 0) {
        SSL_CTX_set_min_proto_version(B.ctx, TLS1_3_VERSION);
        SSL_CTX_set_max_proto_version(B.ctx, TLS1_3_VERSION);
    } else if (strcmp(version, "1.2") == 0) {
        SSL_CTX_set_min_proto_version(B.ctx, TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(B.ctx, TLS1_2_VERSION);
        if (SSL_CTX_set_cipher_list(B.ctx, "ECDHE-RSA-AES128-GCM-SHA256") != 1) {
            goto out;
        }
    } else {
        fprintf(stderr, "bench_tls_client: VERSION is 1.3 or 1.2\n");
        goto out;
    }
    B.epfd = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)conc, sizeof(*conns));
    if (B.epfd < 0 || conns == NULL) {
        goto out;
    }
    t0 = bt_now_us();
    end = t0 + (uint64_t)(seconds * 1e6);
    for (;;) {
        struct epoll_event evs[BT_EVENTS];
        uint64_t now = bt_now_us();
        size_t busy = 0;
        int n, k;

        if (now >= end) {
            draining = true;
        }
        /* Refill free slots (at most every millisecond when connecting fails). */
        for (i = 0; i < (size_t)conc; i++) {
            if (!conns[i].in_use && !draining && now - last_fill >= 1000) {
                if (bt_conn_start(&B, &conns[i]) != 0) {
                    B.count[BT_OTHER]++;
                    last_fill = now;
                }
            }
            if (conns[i].in_use) {
                busy++;
                if (now > conns[i].start_us &&
                    now - conns[i].start_us > (uint64_t)BT_TIMEOUT_MS * 1000u) {
                    bt_conn_end(&B, &conns[i], BT_TIMEOUT);
                }
            }
        }
        if (draining && busy == 0) {
            break;
        }
        n = epoll_wait(B.epfd, evs, BT_EVENTS, 10);
        for (k = 0; k < n; k++) {
            struct bt_conn *c = evs[k].data.ptr;
            if (c->in_use) {
                bt_conn_step(&B, c);
            }
        }
    }
    {
        double secs = (double)(bt_now_us() - t0) / 1e6;
        uint64_t failed =
            B.count[BT_ALERT] + B.count[BT_EOF] + B.count[BT_TIMEOUT] + B.count[BT_OTHER];
        if (B.num_lat > 0) {
            qsort(B.lat_us, B.num_lat, sizeof(*B.lat_us), bt_cmp_u64);
        }
        printf("ok=%llu failed=%llu seconds=%.2f rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
               "max_ms=%.3f alert=%llu eof=%llu timeout=%llu other=%llu\n",
               (unsigned long long)B.count[BT_OK], (unsigned long long)failed, secs,
               (double)B.count[BT_OK] / secs, bt_pct_ms(B.lat_us, B.num_lat, 0.50),
               bt_pct_ms(B.lat_us, B.num_lat, 0.90), bt_pct_ms(B.lat_us, B.num_lat, 0.99),
               B.num_lat > 0 ? (double)B.lat_us[B.num_lat - 1] / 1000.0 : 0.0,
               (unsigned long long)B.count[BT_ALERT], (unsigned long long)B.count[BT_EOF],
               (unsigned long long)B.count[BT_TIMEOUT], (unsigned long long)B.count[BT_OTHER]);
    }
    rc = 0;
out:
    if (conns != NULL) {
        for (i = 0; i < (size_t)conc; i++) {
            if (conns[i].in_use) {
                SSL_free(conns[i].ssl);
                close(conns[i].fd);
            }
        }
    }
    free(conns);
    free(B.lat_us);
    if (B.events != NULL) {
        fclose(B.events);
    }
    if (B.epfd >= 0) {
        close(B.epfd);
    }
    SSL_CTX_free(B.ctx);
    return rc;
}

/* ---- delay proxy -------------------------------------------------------------- */

#define DP_CHUNKS 256
#define DP_CHUNK 16384

/* Bytes from the target waiting for their release time. */
struct dp_chunk {
    uint64_t due_us;
    size_t len, off;
    uint8_t data[DP_CHUNK];
};

struct dp_pair {
    int cfd, tfd; /* client side, target side */
    struct dp_chunk *q;
    size_t head, num;
    bool live;
};

#define DP_PAIRS 16

static void dp_close(struct dp_pair *p)
{
    close(p->cfd);
    close(p->tfd);
    free(p->q);
    memset(p, 0, sizeof(*p));
}

static bool dp_write_all(int fd, const uint8_t *b, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, b, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        b += w;
        len -= (size_t)w;
    }
    return true;
}

static volatile sig_atomic_t g_dp_slow;

static void dp_on_signal(int sig)
{
    g_dp_slow = sig == SIGUSR1;
}

static int dp_run(int argc, char **argv)
{
    struct dp_pair pairs[DP_PAIRS];
    struct sockaddr_in la, ta;
    uint64_t delay_us;
    int lfd, one = 1;

    if (argc != 5) {
        fprintf(stderr, "usage: bench_tls_client delay-proxy LISTEN_PORT TARGET_PORT DELAY_MS\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, dp_on_signal);
    signal(SIGUSR2, dp_on_signal);
    memset(pairs, 0, sizeof(pairs));
    delay_us = (uint64_t)atol(argv[4]) * 1000u;
    memset(&la, 0, sizeof(la));
    la.sin_family = AF_INET;
    la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    la.sin_port = htons((uint16_t)atol(argv[2]));
    ta = la;
    ta.sin_port = htons((uint16_t)atol(argv[3]));
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof(la)) != 0 || listen(lfd, 16) != 0) {
        perror("delay-proxy: listen");
        return 1;
    }
    for (;;) {
        fd_set rd;
        struct timeval tv;
        uint64_t now = bt_now_us(), next = UINT64_MAX;
        int maxfd = lfd;
        size_t i;

        /* Release what is due; find the next due time. */
        for (i = 0; i < DP_PAIRS; i++) {
            struct dp_pair *p = &pairs[i];
            while (p->live && p->num > 0) {
                struct dp_chunk *ch = &p->q[p->head];
                if (ch->due_us > now) {
                    if (ch->due_us < next) {
                        next = ch->due_us;
                    }
                    break;
                }
                if (!dp_write_all(p->cfd, ch->data, ch->len)) {
                    dp_close(p);
                    break;
                }
                p->head = (p->head + 1) % DP_CHUNKS;
                p->num--;
            }
        }
        FD_ZERO(&rd);
        FD_SET(lfd, &rd);
        for (i = 0; i < DP_PAIRS; i++) {
            if (pairs[i].live) {
                FD_SET(pairs[i].cfd, &rd);
                if (pairs[i].num < DP_CHUNKS) {
                    FD_SET(pairs[i].tfd, &rd);
                }
                maxfd = pairs[i].cfd > maxfd ? pairs[i].cfd : maxfd;
                maxfd = pairs[i].tfd > maxfd ? pairs[i].tfd : maxfd;
            }
        }
        tv.tv_sec = 0;
        tv.tv_usec = 100000;
        if (next != UINT64_MAX) {
            uint64_t wait = next > now ? next - now : 0;
            if (wait < 100000) {
                tv.tv_usec = (suseconds_t)wait;
            }
        }
        if (select(maxfd + 1, &rd, NULL, NULL, &tv) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return 1;
        }
        if (FD_ISSET(lfd, &rd)) {
            int cfd = accept(lfd, NULL, NULL);
            int tfd = socket(AF_INET, SOCK_STREAM, 0);
            for (i = 0; i < DP_PAIRS && pairs[i].live; i++) {
            }
            if (cfd >= 0 && tfd >= 0 && i < DP_PAIRS && cfd < FD_SETSIZE && tfd < FD_SETSIZE &&
                connect(tfd, (struct sockaddr *)&ta, sizeof(ta)) == 0) {
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                setsockopt(tfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                pairs[i].q = calloc(DP_CHUNKS, sizeof(struct dp_chunk));
                if (pairs[i].q != NULL) {
                    pairs[i].cfd = cfd;
                    pairs[i].tfd = tfd;
                    pairs[i].live = true;
                    continue;
                }
            }
            if (cfd >= 0) {
                close(cfd);
            }
            if (tfd >= 0) {
                close(tfd);
            }
            continue;
        }
        for (i = 0; i < DP_PAIRS; i++) {
            struct dp_pair *p = &pairs[i];
            uint8_t buf[DP_CHUNK];
            ssize_t n;
            if (!p->live) {
                continue;
            }
            if (FD_ISSET(p->cfd, &rd)) {
                /* Towards the target: at once. */
                n = read(p->cfd, buf, sizeof(buf));
                if (n <= 0 || !dp_write_all(p->tfd, buf, (size_t)n)) {
                    dp_close(p);
                    continue;
                }
            }
            if (FD_ISSET(p->tfd, &rd) && p->num < DP_CHUNKS) {
                struct dp_chunk *ch = &p->q[(p->head + p->num) % DP_CHUNKS];
                n = read(p->tfd, ch->data, sizeof(ch->data));
                if (n <= 0) {
                    dp_close(p);
                    continue;
                }
                ch->len = (size_t)n;
                ch->off = 0;
                ch->due_us = bt_now_us() + (g_dp_slow ? delay_us : 0);
                p->num++;
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "load") == 0) {
        return bt_load_run(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "delay-proxy") == 0) {
        return dp_run(argc, argv);
    }
    fprintf(stderr, "usage: bench_tls_client load HOST PORT SERVERNAME CAFILE VERSION SECONDS "
                    "CONC [EVENTS]\n"
                    "       bench_tls_client delay-proxy LISTEN_PORT TARGET_PORT DELAY_MS\n");
    return 2;
}
