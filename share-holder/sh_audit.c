#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "share-holder/internal.h"

/*
 * The holder's audit log (PROTOCOL.md 7.5). A release is one line, written
 * before the share leaves: the lines of a batch of answers go out with one
 * write() and are made durable with one fdatasync. Everything refused is
 * only counted, per client, and written as one summary line per client per
 * interval: a flood of refused or
 * rate-limited requests costs a few lines, not one each, so it can neither
 * fill the disk nor, with the disk full, stop the releases of everyone else.
 */

static const char *const kind_names[SH_AUDIT_NUM_KINDS] = {
    "not-allowed", "unknown-key", "rate-limited", "error", "refused",
};

int sh_audit_open(struct sh_audit *a, const char *path, unsigned interval_s, char *why,
                  size_t why_len)
{
    struct stat st;
    int fd;

    if (path == NULL || path[0] == '\0') {
        (void)snprintf(why, why_len,
                       "--audit-log FILE is required (--audit-log stderr writes it to stderr)");
        return SPK_ERR_INVALID_ARG;
    }
    if (strcmp(path, "stderr") == 0) {
        fd = STDERR_FILENO;
    } else {
        /* O_NOFOLLOW: a link planted where the log goes is refused, not followed */
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0) {
            (void)snprintf(why, why_len, "cannot open the audit log %s: %s", path,
                           errno == ELOOP ? "it is a symbolic link" : strerror(errno));
            return SPK_ERR_IO;
        }
    }
    if (a->fd > STDERR_FILENO) {
        /* what is pending belongs to the old file (reload writes its
         * summaries first; releases never wait across a reload) */
        (void)sh_audit_write(a);
        close(a->fd);
    }
    a->fd = fd;
    /* fdatasync means something for a file; a pipe or terminal has no disk */
    a->is_file = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    a->interval_ms = (uint64_t)(interval_s == 0 ? SH_AUDIT_INTERVAL_DEFAULT : interval_s) * 1000u;
    return 0;
}

void sh_audit_close(struct sh_audit *a)
{
    if (a->fd > STDERR_FILENO) {
        close(a->fd);
    }
    a->fd = -1;
    a->pending_len = 0;
}

/* iso_time: the UTC time to the millisecond; the calendar part is only
 * reformatted when the second changes. */
static void iso_time(struct sh_audit *a, char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != a->sec || a->base[0] == '\0') {
        gmtime_r(&ts.tv_sec, &tm);
        strftime(a->base, sizeof(a->base), "%Y-%m-%dT%H:%M:%S", &tm);
        a->sec = ts.tv_sec;
    }
    (void)snprintf(out, cap, "%s.%03ldZ", a->base, ts.tv_nsec / 1000000);
}

int sh_audit_line(struct sh_audit *a, const char *fmt, ...)
{
    char line[1024];
    int n;
    int m;
    va_list ap;

    iso_time(a, line, sizeof(line));
    n = (int)strlen(line);
    line[n++] = ' ';
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)m >= sizeof(line) - (size_t)n - 1) {
        return SPK_ERR_INTERNAL;
    }
    n += m;
    line[n++] = '\n';
    if (sizeof(a->pending) - a->pending_len < (size_t)n) {
        (void)sh_audit_write(a); /* empties it; a failure fails the next sync */
    }
    memcpy(a->pending + a->pending_len, line, (size_t)n);
    a->pending_len += (size_t)n;
    return 0;
}

int sh_audit_write(struct sh_audit *a)
{
    size_t len = a->pending_len;

    if (len == 0) {
        return 0;
    }
    a->pending_len = 0;
    /* one write() on an O_APPEND file: the lines are whole and in order */
    if (a->fd < 0 || write(a->fd, a->pending, len) != (ssize_t)len) {
        spk_log("share-holder", "cannot write the audit log: %s",
                a->fd < 0 ? "not open" : strerror(errno));
        a->write_lost = true;
        return SPK_ERR_IO;
    }
    a->unsynced = true;
    return 0;
}

int sh_audit_sync(struct sh_audit *a)
{
    if (a->write_lost) {
        /* lines of this batch are not in the file: none of it may count */
        a->pending_len = 0;
        a->write_lost = false;
        return SPK_ERR_IO;
    }
    if (sh_audit_write(a) != 0) {
        a->write_lost = false;
        return SPK_ERR_IO;
    }
    if (!a->unsynced) {
        return 0;
    }
    if (a->is_file && fdatasync(a->fd) != 0) {
        spk_log("share-holder", "cannot sync the audit log: %s", strerror(errno));
        return SPK_ERR_IO;
    }
    a->unsynced = false;
    return 0;
}

bool sh_audit_count(struct sh_audit *a, const char *who, const char *addr, enum sh_audit_kind kind,
                    uint64_t now_ms)
{
    struct sh_audit_sum *e = NULL;
    bool fresh = false;

    for (size_t i = 0; i < a->num_sums; i++) {
        if (strcmp(a->sums[i].who, who) == 0) {
            e = &a->sums[i];
            break;
        }
    }
    if (e == NULL && a->num_sums < SH_AUDIT_SUMS_MAX) {
        e = &a->sums[a->num_sums++];
        fresh = true;
    } else if (e == NULL) {
        /* a flood of distinct keys: the last entry takes every newcomer */
        e = &a->sums[SH_AUDIT_SUMS_MAX - 1];
        (void)snprintf(e->who, sizeof(e->who), "%s", "others");
    }
    if (fresh) {
        memset(e, 0, sizeof(*e));
        (void)snprintf(e->who, sizeof(e->who), "%s", who);
        e->first_ms = now_ms;
    }
    (void)snprintf(e->addr, sizeof(e->addr), "%s", addr != NULL && addr[0] ? addr : "-");
    e->counts[kind]++;
    return fresh;
}

long sh_audit_due_in_ms(const struct sh_audit *a, uint64_t now_ms)
{
    long wait = -1;

    for (size_t i = 0; i < a->num_sums; i++) {
        uint64_t due = a->sums[i].first_ms + a->interval_ms;
        long w = due <= now_ms ? 0 : (long)(due - now_ms);

        if (wait < 0 || w < wait) {
            wait = w;
        }
    }
    return wait;
}

void sh_audit_summaries_write(struct sh_audit *a, uint64_t now_ms, bool all)
{
    size_t i = 0;
    size_t num_written = 0;
    /* Called between batches, when no release line is pending: a summary
     * that cannot be written is counted lost and must not fail the next
     * batch's sync. */
    bool write_lost = a->write_lost;

    while (i < a->num_sums) {
        struct sh_audit_sum *e = &a->sums[i];
        char counts[SH_AUDIT_NUM_KINDS * 40] = "";
        size_t used = 0;

        if (!all && now_ms < e->first_ms + a->interval_ms) {
            i++;
            continue;
        }
        for (size_t k = 0; k < SH_AUDIT_NUM_KINDS; k++) {
            int n = snprintf(counts + used, sizeof(counts) - used, " %s=%llu", kind_names[k],
                             (unsigned long long)e->counts[k]);

            if (n > 0 && (size_t)n < sizeof(counts) - used) {
                used += (size_t)n;
            }
        }
        if (sh_audit_line(a, "summary client=%s addr=%s seconds=%llu%s", e->who, e->addr,
                          (unsigned long long)((now_ms - e->first_ms + 999) / 1000), counts) != 0) {
            a->num_lost++; /* the counts are not kept */
        } else {
            num_written++;
        }
        /* the last entry takes this one's place */
        a->sums[i] = a->sums[--a->num_sums];
    }
    /* summaries are not synced: they go out now, not with the next release */
    if (sh_audit_write(a) != 0) {
        a->num_lost += num_written;
    }
    a->write_lost = write_lost;
}
