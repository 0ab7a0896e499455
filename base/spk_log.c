/* One log line format for every daemon and tool. */

#include <stdio.h>
#include <unistd.h>

#include "base/base.h"

/* A prefix, a message cut at 1 KiB, and the newline. */
#define SPK_LOG_LINE_MAX (64 + 1024 + 1)

void spk_log_v(const char *who, const char *fmt, va_list ap)
{
    char line[SPK_LOG_LINE_MAX];
    size_t cap = sizeof(line) - 1; /* the newline always fits */
    size_t used = 0;
    int n;

    n = snprintf(line, cap, "%s: ", who);
    if (n > 0) {
        used = (size_t)n < cap ? (size_t)n : cap - 1;
    }
    n = vsnprintf(line + used, cap - used, fmt, ap);
    if (n > 0) {
        used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
    }
    line[used++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, used);
    (void)w; /* a log line that cannot be written has nowhere else to go */
}

void spk_log(const char *who, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    spk_log_v(who, fmt, ap);
    va_end(ap);
}
