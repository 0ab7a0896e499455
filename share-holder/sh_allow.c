#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "share-holder/internal.h"
#include "base/base.h"

/*
 * The allow-list: which CURVE client keys may connect, which key ids each may
 * fetch, and from which addresses. Format in proto/PROTOCOL.md ("Allow-list
 * file"); parsed through the bounded reader like every other file.
 */

#define ALLOW_FILE_MAX (1024 * 1024)

static void why_set(char *why, size_t why_len, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void why_set(char *why, size_t why_len, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (why == NULL || why_len == 0) {
        return;
    }
    n = snprintf(why, why_len, "line %u: ", line);
    if (n < 0 || (size_t)n >= why_len) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(why + n, why_len - (size_t)n, fmt, ap);
    va_end(ap);
}

/* rd_list_item makes |item| the bytes before the next ',' (or the end) and
 * moves past that ','. Empty items and a trailing ',' fail. */
static bool rd_list_item(struct proto_rd *rd, struct proto_rd *item)
{
    struct proto_rd scan = *rd;
    size_t n = 0;
    uint8_t ch = 0;

    while (proto_rd_len(&scan) > 0) {
        if (!proto_rd_u8(&scan, &ch)) {
            return false;
        }
        if (ch == ',') {
            break;
        }
        n++;
    }
    if (n == 0 || !proto_rd_sub(rd, item, n)) {
        return false;
    }
    if (proto_rd_len(rd) > 0) {
        return proto_rd_skip(rd, 1) && proto_rd_len(rd) > 0;
    }
    return true;
}

/* rd_cstr copies |in| into |out| as a C string; false if it does not fit or
 * holds a NUL. */
static bool rd_cstr(const struct proto_rd *in, char *out, size_t cap)
{
    struct proto_rd copy = *in;
    size_t n = proto_rd_len(in);

    if (n >= cap || !proto_rd_copy(&copy, (uint8_t *)out, n)) {
        return false;
    }
    out[n] = '\0';
    return strlen(out) == n;
}

/* ip_parse: a textual IPv4 or IPv6 address into 16 bytes (IPv4 mapped). */
static bool ip_parse(const char *s, uint8_t out[16], bool *out_v4)
{
    uint8_t v4[4];

    if (inet_pton(AF_INET, s, v4) == 1) {
        memset(out, 0, 10);
        out[10] = 0xff;
        out[11] = 0xff;
        memcpy(out + 12, v4, 4);
        *out_v4 = true;
        return true;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        *out_v4 = sodium_memcmp(out, mapped, sizeof(mapped)) == 0;
        return true;
    }
    return false;
}

static bool prefix_match(const uint8_t a[16], const uint8_t b[16], unsigned prefix)
{
    unsigned full = prefix / 8;
    unsigned rest = prefix % 8;

    for (unsigned i = 0; i < full; i++) {
        if (a[i] != b[i]) {
            return false;
        }
    }
    if (rest == 0) {
        return true;
    }
    return ((a[full] ^ b[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

static bool cidr_parse(const struct proto_rd *in, struct sh_cidr *out)
{
    char text[64];
    char *slash;
    bool v4 = false;
    unsigned max;

    if (!rd_cstr(in, text, sizeof(text))) {
        return false;
    }
    slash = strchr(text, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    if (!ip_parse(text, out->addr, &v4)) {
        return false;
    }
    max = v4 ? 32 : 128;
    out->prefix = max;
    if (slash != NULL) {
        struct proto_rd num;
        uint32_t prefix;

        proto_rd_init(&num, (const uint8_t *)(slash + 1), strlen(slash + 1));
        if (!proto_dec_decode(&num, 0, max, &prefix)) {
            return false;
        }
        out->prefix = prefix;
    }
    if (v4) {
        out->prefix += 96;
    }
    /* host bits must be zero: "10.1.2.3/8" is a typo more often than not */
    {
        uint8_t masked[16];

        memcpy(masked, out->addr, 16);
        for (unsigned bit = out->prefix; bit < 128; bit++) {
            masked[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
        }
        if (sodium_memcmp(masked, out->addr, 16) != 0) {
            return false;
        }
    }
    return true;
}

static int client_parse(struct sh_allow_client *c, struct proto_rd *rest, unsigned lineno,
                        char *why, size_t why_len)
{
    struct proto_rd word;
    struct proto_rd list;
    struct proto_rd item;
    size_t n;

    if (!proto_rd_word(rest, &word) || !proto_name_copy(&word, c->name)) {
        why_set(why, why_len, lineno, "bad client name (want [A-Za-z0-9._-]{1,64})");
        return SPK_ERR_MALFORMED;
    }
    if (!proto_rd_word(rest, &word) || !proto_z85_decode_key(&word, c->curve_pk)) {
        why_set(why, why_len, lineno, "bad CURVE public key (want 40 Z85 characters)");
        return SPK_ERR_MALFORMED;
    }
    if (!proto_rd_word(rest, &list)) {
        why_set(why, why_len, lineno, "missing key ids (\"*\" or comma-separated hex)");
        return SPK_ERR_MALFORMED;
    }
    if (proto_rd_equals(&list, "*")) {
        c->all_keys = true;
    } else {
        struct proto_rd scan = list;

        for (n = 0; proto_rd_len(&scan) > 0; n++) {
            if (!rd_list_item(&scan, &item)) {
                why_set(why, why_len, lineno, "bad key id list");
                return SPK_ERR_MALFORMED;
            }
        }
        c->key_ids = calloc(n, sizeof(*c->key_ids));
        if (c->key_ids == NULL) {
            return SPK_ERR_NOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            if (!rd_list_item(&list, &item) ||
                !proto_hex_decode(&item, c->key_ids[i], PROTO_KEY_ID_LEN)) {
                why_set(why, why_len, lineno, "bad key id %zu (want 64 lowercase hex digits)",
                        i + 1);
                return SPK_ERR_MALFORMED;
            }
        }
        c->num_key_ids = n;
    }
    if (proto_rd_len(rest) == 0) {
        return 0;
    }
    if (!proto_rd_word(rest, &list) || proto_rd_len(rest) != 0) {
        why_set(why, why_len, lineno, "extra words after the address ranges");
        return SPK_ERR_MALFORMED;
    }
    {
        struct proto_rd scan = list;

        for (n = 0; proto_rd_len(&scan) > 0; n++) {
            if (!rd_list_item(&scan, &item)) {
                why_set(why, why_len, lineno, "bad address range list");
                return SPK_ERR_MALFORMED;
            }
        }
    }
    c->ranges = calloc(n, sizeof(*c->ranges));
    if (c->ranges == NULL) {
        return SPK_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (!rd_list_item(&list, &item) || !cidr_parse(&item, &c->ranges[i])) {
            why_set(why, why_len, lineno,
                    "bad address range %zu (want ADDRESS or ADDRESS/PREFIX, host bits zero)",
                    i + 1);
            return SPK_ERR_MALFORMED;
        }
    }
    c->num_ranges = n;
    return 0;
}

int sh_allow_parse(struct sh_allow *out, const uint8_t *in, size_t in_len, char *why,
                   size_t why_len)
{
    uint8_t *text = NULL;
    struct proto_rd rd;
    struct proto_rd line;
    struct proto_rd word;
    unsigned lineno = 0;
    int r = SPK_ERR_INTERNAL;

    memset(out, 0, sizeof(*out));
    if (in_len > ALLOW_FILE_MAX) {
        why_set(why, why_len, 0, "file larger than %d bytes", ALLOW_FILE_MAX);
        return SPK_ERR_MALFORMED;
    }
    /* a last line without '\n' is still a line */
    text = malloc(in_len + 1);
    if (text == NULL) {
        return SPK_ERR_NOMEM;
    }
    if (in_len > 0) {
        memcpy(text, in, in_len);
    }
    text[in_len] = '\n';
    proto_rd_init(&rd, text, in_len > 0 && in[in_len - 1] == '\n' ? in_len : in_len + 1);

    while (proto_rd_len(&rd) > 0) {
        struct sh_allow_client *grown;
        struct sh_allow_client *c;
        struct proto_rd first;
        uint8_t ch = 0;

        lineno++;
        if (!proto_rd_line(&rd, &line)) {
            why_set(why, why_len, lineno, "carriage return or NUL in the line");
            r = SPK_ERR_MALFORMED;
            goto out;
        }
        first = line;
        if (proto_rd_len(&line) == 0 || (proto_rd_u8(&first, &ch) && ch == '#')) {
            continue;
        }
        if (!proto_rd_word(&line, &word) || !proto_rd_equals(&word, "client")) {
            why_set(why, why_len, lineno, "expected \"client NAME KEY KEYIDS [RANGES]\"");
            r = SPK_ERR_MALFORMED;
            goto out;
        }
        grown = realloc(out->clients, (out->num_clients + 1) * sizeof(*out->clients));
        if (grown == NULL) {
            r = SPK_ERR_NOMEM;
            goto out;
        }
        out->clients = grown;
        c = &out->clients[out->num_clients++];
        memset(c, 0, sizeof(*c));
        if ((r = client_parse(c, &line, lineno, why, why_len)) != 0) {
            goto out;
        }
        for (size_t i = 0; i + 1 < out->num_clients; i++) {
            if (strcmp(out->clients[i].name, c->name) == 0) {
                why_set(why, why_len, lineno, "client %s listed twice", c->name);
                r = SPK_ERR_MALFORMED;
                goto out;
            }
            if (sodium_memcmp(out->clients[i].curve_pk, c->curve_pk, PROTO_X25519_LEN) == 0) {
                why_set(why, why_len, lineno, "client %s has the key of client %s", c->name,
                        out->clients[i].name);
                r = SPK_ERR_MALFORMED;
                goto out;
            }
        }
    }
    r = 0;
out:
    free(text);
    if (r != 0) {
        sh_allow_cleanup(out);
    }
    return r;
}

int sh_allow_load(struct sh_allow *out, const char *path, char *why, size_t why_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = spk_file_read(path, ALLOW_FILE_MAX, &buf, &len)) != 0) {
        if (why != NULL && why_len > 0) {
            (void)snprintf(why, why_len, "cannot read %s: %s", path, spk_strerror(r));
        }
        return r;
    }
    r = sh_allow_parse(out, buf, len, why, why_len);
    spk_file_free(buf, len);
    return r;
}

void sh_allow_cleanup(struct sh_allow *allow)
{
    for (size_t i = 0; i < allow->num_clients; i++) {
        free(allow->clients[i].key_ids);
        free(allow->clients[i].ranges);
    }
    free(allow->clients);
    memset(allow, 0, sizeof(*allow));
}

const struct sh_allow_client *sh_allow_find(const struct sh_allow *allow,
                                            const uint8_t pk[PROTO_X25519_LEN])
{
    for (size_t i = 0; i < allow->num_clients; i++) {
        if (sodium_memcmp(allow->clients[i].curve_pk, pk, PROTO_X25519_LEN) == 0) {
            return &allow->clients[i];
        }
    }
    return NULL;
}

bool sh_allow_key(const struct sh_allow_client *client, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    if (client->all_keys) {
        return true;
    }
    for (size_t i = 0; i < client->num_key_ids; i++) {
        if (sodium_memcmp(client->key_ids[i], key_id, PROTO_KEY_ID_LEN) == 0) {
            return true;
        }
    }
    return false;
}

bool sh_allow_address(const struct sh_allow_client *client, const char *address)
{
    uint8_t addr[16];
    bool v4 = false;

    if (client->num_ranges == 0) {
        return true;
    }
    if (address == NULL || !ip_parse(address, addr, &v4)) {
        return false;
    }
    for (size_t i = 0; i < client->num_ranges; i++) {
        if (prefix_match(addr, client->ranges[i].addr, client->ranges[i].prefix)) {
            return true;
        }
    }
    return false;
}

int sh_allow_check(const char *path)
{
    struct sh_allow allow;
    char why[PROTO_PATH_WHY_MAX] = "";
    int r;

    memset(&allow, 0, sizeof(allow));
    if ((r = sh_allow_load(&allow, path, why, sizeof(why))) != 0) {
        spk_log("share-holder", "check: allow-list %s refused: %s", path,
                why[0] != '\0' ? why : spk_strerror(r));
        sh_allow_cleanup(&allow);
        return 1;
    }
    printf("ok: %s: %zu client%s\n", path, allow.num_clients, allow.num_clients == 1 ? "" : "s");
    sh_allow_cleanup(&allow);
    return 0;
}
