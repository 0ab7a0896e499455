/*
 * The metrics endpoint's HTTP request head (spk_http_answer), as a client
 * on the loopback sends it: not NUL-terminated, any bytes. It must wait for
 * exactly as long as no "\r\n\r\n" has come, and then answer with a
 * response whose Content-Length is the length of the body that follows:
 * the metrics for GET /metrics (or /), a short text otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_metrics[] = "# TYPE spk_fuzz counter\nspk_fuzz_total 1\n";

static bool has_head_end(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i + 4 <= size; i++) {
        if (memcmp(data + i, "\r\n\r\n", 4) == 0) {
            return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct spk_text body;
    static struct spk_text out;
    uint8_t *req;
    const char *sep;
    const char *field;
    unsigned long content_len;
    size_t head_len;
    int r;

    if (body.len == 0) {
        spk_text_printf(&body, "%s", fuzz_metrics);
        if (body.failed) {
            abort();
        }
    }
    /* a copy of exactly |size| bytes, so ASan sees any read past the end */
    req = malloc(size > 0 ? size : 1);
    if (req == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(req, data, size);
    }
    r = spk_http_answer((const char *)req, size, &body, &out);
    if (r != (has_head_end(req, size) ? 1 : 0)) {
        abort();
    }
    free(req);
    if (r == 0) {
        return 0;
    }
    if (out.failed || out.buf == NULL || out.len != strlen(out.buf) ||
        strncmp(out.buf, "HTTP/1.1 ", 9) != 0) {
        abort();
    }
    sep = strstr(out.buf, "\r\n\r\n");
    field = strstr(out.buf, "\r\nContent-Length: ");
    if (sep == NULL || field == NULL || field > sep ||
        sscanf(field + 18, "%lu", &content_len) != 1) {
        abort();
    }
    head_len = (size_t)(sep - out.buf) + 4;
    if (out.len - head_len != content_len) {
        abort();
    }
    if (strncmp(out.buf + 9, "200 ", 4) == 0 &&
        (content_len != body.len || memcmp(out.buf + head_len, body.buf, body.len) != 0)) {
        abort();
    }
    return 0;
}
