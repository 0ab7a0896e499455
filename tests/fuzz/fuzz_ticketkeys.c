/*
 * The edge's session ticket key file (edge_tickets_load). The loader takes
 * only a path, so each input is written to one memfd made at the first call
 * and read back through /proc/self/fd. There is no encoder; instead the
 * format (edge_ticket.c) is judged here on its own: lines trimmed of blanks
 * (and a '\r'), empty and '#' lines skipped, every other line 160 hex digits,
 * one to EDGE_TICKET_KEYS_MAX of them. The loader must agree on whether the
 * file is good and on how many keys it holds.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edge/internal.h"

#define FUZZ_KEY_HEX 160

#include "fuzz_memfd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* expected_keys: how many keys the file holds, or -1 if it is not a key file. */
static long expected_keys(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    long keys = 0;

    if (size > 64 * 1024) {
        return -1;
    }
    while (pos < size) {
        size_t a = pos, b;

        while (pos < size && data[pos] != '\n') {
            pos++;
        }
        b = pos;
        pos++;
        while (a < b && (data[a] == ' ' || data[a] == '\t')) {
            a++;
        }
        while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\r')) {
            b--;
        }
        if (a == b || data[a] == '#') {
            continue;
        }
        if (b - a != FUZZ_KEY_HEX || keys == EDGE_TICKET_KEYS_MAX) {
            return -1;
        }
        for (size_t i = a; i < b; i++) {
            if (!isxdigit(data[i])) {
                return -1;
            }
        }
        keys++;
    }
    return keys == 0 ? -1 : keys;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct edge_tickets *t = NULL;
    char why[512];
    long want = expected_keys(data, size);
    int r;

    input_to_file(data, size);
    why[0] = '\0';
    r = edge_tickets_load(&t, fuzz_path, why, sizeof(why));
    if (r != 0) {
        if (want >= 0 || t != NULL || why[0] == '\0') {
            abort();
        }
        return 0;
    }
    if (want < 0 || t == NULL || edge_tickets_count(t) != (size_t)want) {
        abort();
    }
    edge_tickets_free(t);
    return 0;
}
