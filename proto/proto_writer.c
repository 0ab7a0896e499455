#include <string.h>

#include "proto/proto.h"

/* Writes into a caller-fixed buffer; a write that does not fit fails and
 * makes every later write fail too, so encoders may check once at the end. */

void proto_wr_init(struct proto_wr *wr, uint8_t *buf, size_t cap)
{
    wr->buf = buf;
    wr->cap = cap;
    wr->len = 0;
    wr->failed = false;
}

uint8_t *proto_wr_reserve(struct proto_wr *wr, size_t n)
{
    uint8_t *at;

    if (wr->failed || wr->cap - wr->len < n) {
        wr->failed = true;
        return NULL;
    }
    at = wr->buf + wr->len;
    wr->len += n;
    return at;
}

static bool wr_uint(struct proto_wr *wr, uint64_t v, size_t n)
{
    uint8_t *at = proto_wr_reserve(wr, n);

    if (at == NULL) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        at[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    return true;
}

bool proto_wr_u8(struct proto_wr *wr, uint8_t v)
{
    return wr_uint(wr, v, 1);
}

bool proto_wr_u16(struct proto_wr *wr, uint16_t v)
{
    return wr_uint(wr, v, 2);
}

bool proto_wr_u32(struct proto_wr *wr, uint32_t v)
{
    return wr_uint(wr, v, 4);
}

bool proto_wr_u64(struct proto_wr *wr, uint64_t v)
{
    return wr_uint(wr, v, 8);
}

bool proto_wr_bytes(struct proto_wr *wr, const uint8_t *p, size_t n)
{
    uint8_t *at = proto_wr_reserve(wr, n);

    if (at == NULL) {
        return false;
    }
    if (n > 0) {
        memcpy(at, p, n);
    }
    return true;
}

bool proto_wr_str(struct proto_wr *wr, const char *s)
{
    return proto_wr_bytes(wr, (const uint8_t *)s, strlen(s));
}

static bool wr_put_at(struct proto_wr *wr, size_t at, uint32_t v, size_t n)
{
    if (wr->failed || at > wr->len || wr->len - at < n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        wr->buf[at + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    return true;
}

bool proto_wr_put_u16_at(struct proto_wr *wr, size_t at, uint16_t v)
{
    return wr_put_at(wr, at, v, 2);
}

bool proto_wr_put_u32_at(struct proto_wr *wr, size_t at, uint32_t v)
{
    return wr_put_at(wr, at, v, 4);
}
