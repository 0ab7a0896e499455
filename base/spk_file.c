/*
 * Small file helpers with hard caps: read a whole file (into plain or secret
 * memory) and create a new file exclusively, durably, with an exact mode.
 */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "base/base.h"

/*
 * in_credentials_dir: |path| is a file systemd placed in the unit's
 * $CREDENTIALS_DIRECTORY (LoadCredential=, LoadCredentialEncrypted=). There
 * the file is root's, and the unit's user reads it through an ACL entry,
 * which shows as group bits in the mode; systemd itself restricts it to that
 * user on a read-only, non-swappable mount, so the mode test does not apply.
 */
static bool in_credentials_dir(const char *path)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    size_t n;

    if (dir == NULL || dir[0] != '/') {
        return false;
    }
    n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    return strncmp(path, dir, n) == 0 && path[n] == '/' && strchr(path + n + 1, '/') == NULL &&
           strstr(path, "/..") == NULL;
}

/*
 * read_all reads |path| into a buffer from |alloc| (released with |release|
 * on failure). Regular files are sized by fstat; others (pipes, devices) get
 * room for |max| + 1 bytes so that "too big" can still be seen.
 */
static int read_all(const char *path, size_t max, bool secret, bool private_only, uint8_t **out,
                    size_t *out_len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t cap = 0;
    size_t got = 0;
    int fd = -1;
    int r = SPK_ERR_INTERNAL;

    *out = NULL;
    *out_len = 0;
    if (max >= SIZE_MAX - 1) {
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        r = SPK_ERR_IO;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        r = SPK_ERR_IO;
        goto out;
    }
    if (private_only && ((st.st_mode & 077) != 0 || st.st_uid != geteuid()) &&
        !in_credentials_dir(path)) {
        r = SPK_ERR_PERMISSIONS;
        goto out;
    }
    if (S_ISREG(st.st_mode)) {
        if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
            r = SPK_ERR_MALFORMED;
            goto out;
        }
        cap = (size_t)st.st_size + 1;
    } else {
        cap = max + 1;
    }
    buf = secret ? spk_secret_new(cap) : OPENSSL_zalloc(cap);
    if (buf == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            r = SPK_ERR_IO;
            goto out;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    if (got == cap) {
        /* One byte more than fstat promised, or than |max|. */
        r = got > max ? SPK_ERR_MALFORMED : SPK_ERR_IO;
        goto out;
    }
    *out = buf;
    *out_len = got;
    buf = NULL;
    r = 0;
out:
    if (buf != NULL) {
        if (secret) {
            spk_secret_free(buf);
        } else {
            OPENSSL_clear_free(buf, cap);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    return r;
}

int spk_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len)
{
    return read_all(path, max, false, false, out, out_len);
}

int spk_file_read_secret(const char *path, size_t max, uint8_t **out, size_t *out_len)
{
    return read_all(path, max, true, false, out, out_len);
}

int spk_file_read_private(const char *path, size_t max, uint8_t **out, size_t *out_len)
{
    return read_all(path, max, true, true, out, out_len);
}

void spk_file_free(uint8_t *buf, size_t len)
{
    OPENSSL_clear_free(buf, len);
}

/*
 * sync_parent makes the new directory entry durable. Best effort: a failure
 * here does not undo a file whose own data is already on disk.
 */
static void sync_parent(const char *path)
{
    char copy[PATH_MAX];
    int fd;

    if (strlen(path) >= sizeof(copy)) {
        return;
    }
    memcpy(copy, path, strlen(path) + 1);
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int spk_file_write_new(const char *path, unsigned mode, const uint8_t *data, size_t len)
{
    size_t done = 0;
    bool created = false;
    int fd = -1;
    int r = SPK_ERR_INTERNAL;

    if (path == NULL || (data == NULL && len > 0) || (mode & ~07777u) != 0) {
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, (mode_t)mode);
    if (fd < 0) {
        r = errno == EEXIST ? SPK_ERR_EXISTS : SPK_ERR_IO;
        goto out;
    }
    created = true;
    /* The umask only ever removes bits; the caller asked for exactly |mode|. */
    if (fchmod(fd, (mode_t)mode) != 0) {
        r = SPK_ERR_IO;
        goto out;
    }
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            r = SPK_ERR_IO;
            goto out;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        r = SPK_ERR_IO;
        goto out;
    }
    r = close(fd) == 0 ? 0 : SPK_ERR_IO;
    fd = -1;
    if (r != 0) {
        goto out;
    }
    sync_parent(path);
    r = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (r != 0 && created) {
        (void)unlink(path);
    }
    return r;
}
