/* The unix:// endpoint of the local edge-combiner channel (base.h). */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

bool spk_endpoint_is_unix(const char *endpoint)
{
    return strncmp(endpoint, SPK_UNIX_SCHEME, SPK_UNIX_SCHEME_LEN) == 0;
}

int spk_unix_addr(struct sockaddr_un *out, socklen_t *out_len, const char *endpoint)
{
    const char *path;
    size_t len;

    memset(out, 0, sizeof(*out));
    *out_len = 0;
    if (!spk_endpoint_is_unix(endpoint)) {
        return SPK_ERR_INVALID_ARG;
    }
    path = endpoint + SPK_UNIX_SCHEME_LEN;
    len = strlen(path);
    /* A pathname needs its terminating NUL inside sun_path; an abstract
     * name ('@' becomes the leading NUL) is counted by the length alone. */
    if (len == 0 || (path[0] == '@' && len == 1) || len >= sizeof(out->sun_path)) {
        return SPK_ERR_INVALID_ARG;
    }
    out->sun_family = AF_UNIX;
    memcpy(out->sun_path, path, len);
    if (path[0] == '@') {
        out->sun_path[0] = '\0';
        *out_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        *out_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    return 0;
}

int spk_unix_connect(int *out_fd, const char *endpoint)
{
    struct sockaddr_un sa;
    socklen_t sa_len = 0;
    int fd;
    int r;

    *out_fd = -1;
    if ((r = spk_unix_addr(&sa, &sa_len, endpoint)) != 0) {
        return r;
    }
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return SPK_ERR_IO;
    }
    /* A Unix connect completes or fails at once; EAGAIN is a full backlog.
     * EACCES: the socket (0600/0660) or its directory is closed to this uid,
     * the door refusing it as surely as a missing client line does. */
    if (connect(fd, (struct sockaddr *)&sa, sa_len) != 0) {
        int e = errno;

        close(fd);
        if (e == EACCES || e == EPERM) {
            return SPK_ERR_NOT_ALLOWED;
        }
        return e == ENOENT || e == ECONNREFUSED || e == EAGAIN ? SPK_ERR_UNAVAILABLE : SPK_ERR_IO;
    }
    *out_fd = fd;
    return 0;
}
