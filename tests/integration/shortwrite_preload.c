/*
 * shortwrite_preload.c: libspk_shortwrite.so, an LD_PRELOAD shim for the
 * integration tests that makes every TCP peer of a server look slow. Of the
 * write() calls on TCP sockets, about one in three fails with EAGAIN and
 * one in three writes only its first 1 to 512 bytes, as a socket whose
 * buffer is nearly full would; the rest go through whole. test_edge.sh
 * preloads it into the edge, whose sockets are all non-blocking, so that
 * every path of its relay and of its client output buffer (the bytes an
 * SSL wrote that the socket did not take yet) runs, on every connection.
 *
 * Nothing but write() on AF_INET/AF_INET6 stream sockets changes: a log line
 * on stderr, a Unix socket or a ZeroMQ send() is left alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

static ssize_t (*shortwrite_next)(int fd, const void *buf, size_t len);

static int shortwrite_is_tcp(int fd)
{
    struct sockaddr_storage sa;
    socklen_t sa_len = sizeof(sa);
    int type = 0;
    socklen_t type_len = sizeof(type);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM ||
        getsockname(fd, (struct sockaddr *)&sa, &sa_len) != 0) {
        return 0;
    }
    return sa.ss_family == AF_INET || sa.ss_family == AF_INET6;
}

/* A fixed sequence, so that a failure is the same on the next run. */
static uint32_t shortwrite_next_random(void)
{
    static uint32_t state = 0x9e3779b9u;

    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

ssize_t write(int fd, const void *buf, size_t len)
{
    if (shortwrite_next == NULL) {
        shortwrite_next = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
        if (shortwrite_next == NULL) {
            errno = ENOSYS;
            return -1;
        }
    }
    if (len > 1 && shortwrite_is_tcp(fd)) {
        uint32_t r = shortwrite_next_random();

        switch (r % 3) {
        case 0:
            errno = EAGAIN;
            return -1;
        case 1: {
            size_t cap = len - 1 < 512 ? len - 1 : 512;
            len = 1 + (r >> 8) % cap;
            break;
        }
        default:
            break;
        }
    }
    return shortwrite_next(fd, buf, len);
}
