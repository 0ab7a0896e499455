#ifndef SPK_FUZZ_MEMFD_H
#define SPK_FUZZ_MEMFD_H

/*
 * For fuzz targets whose parser takes only a path: each input is written to
 * one memfd, made at the first call and named by |fuzz_path|
 * (/proc/self/fd/N). Header-only, as every target is built from one file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fuzz_fd = -1;
static char fuzz_path[64];

/* input_to_file makes the memfd hold exactly |data|. */
static void input_to_file(const uint8_t *data, size_t size)
{
    size_t done = 0;

    if (fuzz_fd < 0) {
        fuzz_fd = memfd_create("spk-fuzz-input", MFD_CLOEXEC);
        /* A memfd is made mode 0777; the secret-file loaders (ticket keys)
         * refuse a file others may read, as they must. */
        if (fuzz_fd < 0 || fchmod(fuzz_fd, 0600) != 0) {
            abort();
        }
        (void)snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
    }
    if (ftruncate(fuzz_fd, 0) != 0) {
        abort();
    }
    while (done < size) {
        ssize_t n = pwrite(fuzz_fd, data + done, size - done, (off_t)done);

        if (n <= 0) {
            abort();
        }
        done += (size_t)n;
    }
}

#endif
