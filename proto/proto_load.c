/* The one loader of key record files and the one loader of share files. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

/*
 * load_read reads |path| for a loader, or says why it cannot into |why|. With
 * |private| (a share file) it reads as a secret file: spk_file_read_private
 * refuses one that group or others may read, and the buffer is secret memory
 * (spk_secret_free); otherwise spk_file_read (spk_file_free).
 */
static int load_read(const char *path, const char *what, bool private, uint8_t **buf, size_t *len,
                     char *why, size_t why_len)
{
    int r;

    errno = 0;
    r = private ? spk_file_read_private(path, PROTO_FILE_MAX, buf, len)
                : spk_file_read(path, PROTO_FILE_MAX, buf, len);
    if (r != 0 && why != NULL) {
        (void)snprintf(why, why_len, "cannot read %s '%s': %s", what, path,
                       r == SPK_ERR_IO && errno != 0 ? strerror(errno) : spk_strerror(r));
    }
    return r;
}

static void load_why_decode(const char *path, const char *what, int r, char *why, size_t why_len)
{
    if (r != 0 && why != NULL) {
        (void)snprintf(why, why_len, "'%s' is not a %s: %s", path, what, spk_strerror(r));
    }
}

int proto_record_load(struct proto_record *out, const char *path, char *why, size_t why_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    if ((r = load_read(path, "record", false, &buf, &len, why, why_len)) != 0) {
        return r;
    }
    r = proto_record_decode(out, buf, len);
    spk_file_free(buf, len);
    load_why_decode(path, "key record", r, why, why_len);
    return r;
}

int proto_share_file_load(struct proto_share_file *out, const char *path, char *why, size_t why_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    if ((r = load_read(path, "share file", true, &buf, &len, why, why_len)) != 0) {
        return r;
    }
    r = proto_share_file_decode(out, buf, len);
    spk_secret_free(buf);
    load_why_decode(path, "share file", r, why, why_len);
    return r;
}
