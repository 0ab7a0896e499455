#include <string.h>

#include "proto/proto.h"

/* The only file, with proto_writer.c, that does pointer arithmetic on wire
 * bytes. Every read checks |rd->len| first. */

void proto_rd_init(struct proto_rd *rd, const uint8_t *p, size_t len)
{
    rd->p = p;
    rd->len = len;
}

size_t proto_rd_len(const struct proto_rd *rd)
{
    return rd->len;
}

size_t proto_rd_offset(const struct proto_rd *rd, const uint8_t *start)
{
    return (size_t)(rd->p - start);
}

bool proto_rd_skip(struct proto_rd *rd, size_t n)
{
    if (rd->len < n) {
        return false;
    }
    rd->p += n;
    rd->len -= n;
    return true;
}

static bool rd_uint(struct proto_rd *rd, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (rd->len < n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | rd->p[i];
    }
    *out = v;
    return proto_rd_skip(rd, n);
}

bool proto_rd_u8(struct proto_rd *rd, uint8_t *out)
{
    uint64_t v;

    if (!rd_uint(rd, 1, &v)) {
        return false;
    }
    *out = (uint8_t)v;
    return true;
}

bool proto_rd_u16(struct proto_rd *rd, uint16_t *out)
{
    uint64_t v;

    if (!rd_uint(rd, 2, &v)) {
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

bool proto_rd_u32(struct proto_rd *rd, uint32_t *out)
{
    uint64_t v;

    if (!rd_uint(rd, 4, &v)) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool proto_rd_u64(struct proto_rd *rd, uint64_t *out)
{
    return rd_uint(rd, 8, out);
}

bool proto_rd_copy(struct proto_rd *rd, uint8_t *out, size_t n)
{
    if (rd->len < n) {
        return false;
    }
    if (n > 0) {
        memcpy(out, rd->p, n);
    }
    return proto_rd_skip(rd, n);
}

bool proto_rd_sub(struct proto_rd *rd, struct proto_rd *child, size_t n)
{
    if (rd->len < n) {
        return false;
    }
    proto_rd_init(child, rd->p, n);
    return proto_rd_skip(rd, n);
}

bool proto_rd_u16_prefixed(struct proto_rd *rd, struct proto_rd *child)
{
    uint16_t n;
    struct proto_rd copy = *rd;

    if (!proto_rd_u16(&copy, &n) || !proto_rd_sub(&copy, child, n)) {
        return false;
    }
    *rd = copy;
    return true;
}

bool proto_rd_line(struct proto_rd *rd, struct proto_rd *line)
{
    const uint8_t *nl;
    size_t n;

    if (rd->len == 0) {
        return false;
    }
    nl = memchr(rd->p, '\n', rd->len);
    if (nl == NULL) {
        return false;
    }
    n = (size_t)(nl - rd->p);
    if (memchr(rd->p, '\r', n) != NULL || memchr(rd->p, '\0', n) != NULL) {
        return false;
    }
    proto_rd_init(line, rd->p, n);
    return proto_rd_skip(rd, n + 1);
}

bool proto_rd_word(struct proto_rd *rd, struct proto_rd *word)
{
    const uint8_t *sp;
    size_t n;

    if (rd->len == 0) {
        return false;
    }
    sp = memchr(rd->p, ' ', rd->len);
    n = sp == NULL ? rd->len : (size_t)(sp - rd->p);
    if (n == 0) {
        return false;
    }
    proto_rd_init(word, rd->p, n);
    return proto_rd_skip(rd, sp == NULL ? n : n + 1);
}

bool proto_rd_equals(const struct proto_rd *rd, const char *s)
{
    size_t n = strlen(s);

    if (rd->len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (rd->p[i] != (uint8_t)s[i]) {
            return false;
        }
    }
    return true;
}
