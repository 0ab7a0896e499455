/*
 * shortio_preload.c: libspk_shortio.so, an LD_PRELOAD shim for the
 * integration tests that makes every TCP peer of a server look slow. Of the
 * write() calls on TCP sockets, about one in three fails with EAGAIN and
 * one in three writes only its first 1 to 512 bytes, as a socket whose
 * buffer is nearly full would; the rest go through whole. With
 * SPK_SHORTIO_READS=1 in the environment, read() on TCP sockets does the
 * same: one in three fails with EAGAIN although bytes are waiting (a
 * readiness that turned out spurious), one in three returns only the first
 * 1 to 512 of them, as when a peer's segments arrive one by one.
 * test_edge.sh and test_edge_upstream.sh preload it into the edge, whose
 * sockets are all non-blocking, so that every path of its relay, of its
 * client output buffer (the bytes an SSL wrote that the socket did not take
 * yet) and of its reads runs, on every connection.
 *
 * With SPK_SHORTIO_HOLD=PATH in the environment it does none of that and
 * holds back TLS application data instead: while the file PATH exists, every
 * write() on a TCP socket of bytes that begin a TLS 1.2/1.3 application-data
 * record (17 03 03) fails with EAGAIN, as towards a client that stopped
 * reading, and everything else goes through. test_edge.sh fills the edge's
 * client output buffer that way to the last byte, so that the close_notify
 * that follows finds no room and has to wait for it.
 *
 * Nothing but write() and read() on non-blocking AF_INET/AF_INET6 stream
 * sockets changes: a log line on stderr, a Unix socket or a ZeroMQ send() is
 * left alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

static ssize_t (*shortio_write_next)(int fd, const void *buf, size_t len);
static ssize_t (*shortio_read_next)(int fd, void *buf, size_t len);
static bool shortio_reads;       /* SPK_SHORTIO_READS=1, looked up with read()'s next */
static const char *shortio_hold; /* SPK_SHORTIO_HOLD, looked up with write()'s next */

static int shortio_is_tcp(int fd)
{
    struct sockaddr_storage sa;
    socklen_t sa_len = sizeof(sa);
    int type = 0;
    socklen_t type_len = sizeof(type);
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || !(flags & O_NONBLOCK) ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM ||
        getsockname(fd, (struct sockaddr *)&sa, &sa_len) != 0) {
        return 0;
    }
    return sa.ss_family == AF_INET || sa.ss_family == AF_INET6;
}

/* A fixed sequence, so that a failure is the same on the next run. */
static uint32_t shortio_next_random(void)
{
    static uint32_t state = 0x9e3779b9u;

    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

/* shortio_limit: whether this call on |fd| goes on, and with how many of
 * its |*len| bytes; false (errno EAGAIN) when it is to fail instead. */
static bool shortio_limit(int fd, size_t *len)
{
    uint32_t r;

    if (*len <= 1 || !shortio_is_tcp(fd)) {
        return true;
    }
    r = shortio_next_random();
    switch (r % 3) {
    case 0:
        errno = EAGAIN;
        return false;
    case 1: {
        size_t cap = *len - 1 < 512 ? *len - 1 : 512;
        *len = 1 + (r >> 8) % cap;
        return true;
    }
    default:
        return true;
    }
}

/* shortio_held: SPK_SHORTIO_HOLD's check, true when this write is held back. */
static bool shortio_held(int fd, const void *buf, size_t len)
{
    const uint8_t *b = buf;

    return len >= 3 && b[0] == 0x17 && b[1] == 0x03 && b[2] == 0x03 && shortio_is_tcp(fd) &&
           access(shortio_hold, F_OK) == 0;
}

ssize_t write(int fd, const void *buf, size_t len)
{
    if (shortio_write_next == NULL) {
        const char *hold = getenv("SPK_SHORTIO_HOLD");

        shortio_hold = hold != NULL && hold[0] != '\0' ? hold : NULL;
        shortio_write_next = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
        if (shortio_write_next == NULL) {
            errno = ENOSYS;
            return -1;
        }
    }
    if (shortio_hold != NULL) {
        if (shortio_held(fd, buf, len)) {
            errno = EAGAIN;
            return -1;
        }
    } else if (!shortio_limit(fd, &len)) {
        return -1;
    }
    return shortio_write_next(fd, buf, len);
}

ssize_t read(int fd, void *buf, size_t len)
{
    if (shortio_read_next == NULL) {
        const char *reads = getenv("SPK_SHORTIO_READS");

        shortio_reads = reads != NULL && strcmp(reads, "1") == 0;
        shortio_read_next = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
        if (shortio_read_next == NULL) {
            errno = ENOSYS;
            return -1;
        }
    }
    if (shortio_reads && !shortio_limit(fd, &len)) {
        return -1;
    }
    return shortio_read_next(fd, buf, len);
}
