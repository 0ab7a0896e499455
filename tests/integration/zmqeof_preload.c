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
 * Nothing else changes: other threads, and an I/O thread that did not just
 * see a connection end, run as they would.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

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
