/*
 * zmqeof_preload.c: libspk_zmqeof.so, an LD_PRELOAD shim for
 * test_combiner_door.sh. When a ZeroMQ I/O thread reads the end of a
 * connection (recv() returns 0, or fails with ECONNRESET), it pauses for
 * 50 ms right after its next mailbox signal (an 8-byte eventfd write). That
 * signal is the socket monitor's DISCONNECTED event: ZeroMQ reports the
 * disconnect before it detaches the dead connection from the socket, and a
 * message sent in between goes into the dead connection and is lost. On a
 * loaded host the I/O thread can be kept from the detach for milliseconds;
 * the pause makes that window wide enough for a test to land in it every
 * time.
 *
 * With SPK_ZMQEOF_PAIR_CLOSE_MS=N set, it also pauses N ms after each
 * zmq_close() of a PAIR socket: the reading end of a socket monitor. A
 * monitored socket whose connection ends in that pause must not have its
 * monitor still on (ZeroMQ's I/O thread would block for good sending the
 * DISCONNECTED event to a reader that is gone, and so would zmq_ctx_term):
 * a process stopping while its peer stops too lands in that pause.
 *
 * Nothing else changes: other threads, and an I/O thread that did not just
 * see a connection end, run as they would.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static __thread bool zmqeof_pending;

static bool zmqeof_in_io_thread(void)
{
    char name[16] = "";

    return pthread_getname_np(pthread_self(), name, sizeof(name)) == 0 &&
           strncmp(name, "ZMQbg/IO", 8) == 0;
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    static ssize_t (*next)(int, void *, size_t, int);
    ssize_t r;

    if (next == NULL) {
        next = (ssize_t(*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
    }
    r = next(fd, buf, len, flags);
    /* The end: a FIN, or a reset (a peer killed with bytes unread). */
    if (((r == 0 && len > 0) || (r < 0 && errno == ECONNRESET)) && zmqeof_in_io_thread()) {
        zmqeof_pending = true;
    }
    return r;
}

ssize_t write(int fd, const void *buf, size_t len)
{
    static ssize_t (*next)(int, const void *, size_t);
    ssize_t r;

    if (next == NULL) {
        next = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    }
    r = next(fd, buf, len);
    if (zmqeof_pending && len == sizeof(uint64_t)) {
        struct timespec pause = {0, 50 * 1000 * 1000};

        zmqeof_pending = false;
        nanosleep(&pause, NULL);
    }
    return r;
}

int zmq_close(void *sock)
{
    static int (*next)(void *);
    static int (*getsockopt_next)(void *, int, void *, size_t *);
    const char *pause_ms = getenv("SPK_ZMQEOF_PAIR_CLOSE_MS");
    int type = 0;
    size_t type_len = sizeof(type);
    bool pair;
    int r;

    if (next == NULL) {
        next = (int (*)(void *))dlsym(RTLD_NEXT, "zmq_close");
        getsockopt_next =
            (int (*)(void *, int, void *, size_t *))dlsym(RTLD_NEXT, "zmq_getsockopt");
    }
    pair = pause_ms != NULL && getsockopt_next(sock, ZMQ_TYPE, &type, &type_len) == 0 &&
           type == ZMQ_PAIR;
    r = next(sock);
    if (pair) {
        long ms = strtol(pause_ms, NULL, 10);
        struct timespec pause = {ms / 1000, (ms % 1000) * 1000 * 1000};

        nanosleep(&pause, NULL);
    }
    return r;
}
