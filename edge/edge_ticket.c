/*
 * edge_ticket.c: session ticket keys. A resumed session (TLS 1.3 PSK or a
 * TLS 1.2 ticket) needs no private-key operation, so every resumption is a
 * handshake the holders never see. Tickets are sealed with keys from a file
 * that several edges may share, so a client resumes at any of them:
 *
 *   one key per line, 160 hex digits = 80 bytes:
 *     16 bytes key name | 32 bytes HMAC-SHA256 key | 32 bytes AES-256-CBC key
 *   newest first: new tickets are sealed with the first key; tickets sealed
 *   with any listed key are accepted (and renewed when not the first).
 *   '#' at the start of a line is a comment. Make a key: openssl rand -hex 80
 *
 * Without a file the edge makes its own random key and replaces it every
 * ticket-key-rotate-s, keeping the previous one to open tickets with: a
 * ticket resumes for at most two periods, and a key stolen from memory opens
 * no ticket older than that. Reloads keep the set. Keys live in
 * spk_secret_new memory; the file buffer and retired keys are wiped.
 */

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "edge/internal.h"
#include "base/base.h"

#define EDGE_TICKET_NAME_LEN 16
#define EDGE_TICKET_HMAC_LEN 32
#define EDGE_TICKET_AES_LEN 32
#define EDGE_TICKET_KEY_LEN (EDGE_TICKET_NAME_LEN + EDGE_TICKET_HMAC_LEN + EDGE_TICKET_AES_LEN)
#define EDGE_TICKET_FILE_MAX (64 * 1024)

struct edge_ticket_key {
    uint8_t name[EDGE_TICKET_NAME_LEN];
    uint8_t hmac[EDGE_TICKET_HMAC_LEN];
    uint8_t aes[EDGE_TICKET_AES_LEN];
};

struct edge_tickets {
    size_t num;
    struct edge_ticket_key keys[EDGE_TICKET_KEYS_MAX];
};

/* The set the callback uses: the loop swaps it on reload, between handshake
 * steps (the callback never keeps a pointer across a pause). */
static const struct edge_tickets *g_tickets;
static uint64_t g_tickets_issued, g_tickets_accepted, g_tickets_unknown;

static void edge_ticket_key_set(struct edge_ticket_key *k, const uint8_t *raw)
{
    memcpy(k->name, raw, EDGE_TICKET_NAME_LEN);
    memcpy(k->hmac, raw + EDGE_TICKET_NAME_LEN, EDGE_TICKET_HMAC_LEN);
    memcpy(k->aes, raw + EDGE_TICKET_NAME_LEN + EDGE_TICKET_HMAC_LEN, EDGE_TICKET_AES_LEN);
}

static int edge_ticket_key_random(struct edge_ticket_key *k)
{
    uint8_t raw[EDGE_TICKET_KEY_LEN];
    int ok = RAND_priv_bytes(raw, sizeof(raw));

    if (ok == 1) {
        edge_ticket_key_set(k, raw);
    }
    sodium_memzero(raw, sizeof(raw));
    return ok == 1 ? 0 : SPK_ERR_CRYPTO;
}

int edge_tickets_load(struct edge_tickets **out, const char *path, char *why, size_t why_len)
{
    struct edge_tickets *t = NULL;
    uint8_t *buf = NULL;
    uint8_t raw[EDGE_TICKET_KEY_LEN];
    size_t len = 0, pos = 0;
    unsigned line = 0;
    int r;

    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(why, why_len, "ticket keys: libsodium does not initialise");
        return SPK_ERR_INTERNAL;
    }
    t = spk_secret_new(sizeof(*t));
    if (t == NULL) {
        snprintf(why, why_len, "ticket keys: cannot allocate locked memory");
        return SPK_ERR_NOMEM;
    }
    if (path == NULL || path[0] == '\0') {
        if (edge_ticket_key_random(&t->keys[0]) != 0) {
            spk_secret_free(t);
            snprintf(why, why_len, "ticket keys: no randomness");
            return SPK_ERR_CRYPTO;
        }
        t->num = 1;
        *out = t;
        return 0;
    }
    if ((r = spk_file_read_private(path, EDGE_TICKET_FILE_MAX, &buf, &len)) != 0) {
        spk_secret_free(t);
        snprintf(why, why_len, "ticket-key-file %s: %s", path, spk_strerror(r));
        return r;
    }
    r = SPK_ERR_MALFORMED;
    while (pos < len) {
        size_t start = pos, end, a, b;
        size_t bin_len = 0;
        while (pos < len && buf[pos] != '\n') {
            pos++;
        }
        end = pos;
        pos++;
        line++;
        a = start;
        b = end;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t')) {
            a++;
        }
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r')) {
            b--;
        }
        if (a == b || buf[a] == '#') {
            continue;
        }
        if (t->num == EDGE_TICKET_KEYS_MAX) {
            snprintf(why, why_len, "ticket-key-file %s:%u: more than %d keys", path, line,
                     EDGE_TICKET_KEYS_MAX);
            goto out;
        }
        if (b - a != 2 * EDGE_TICKET_KEY_LEN ||
            sodium_hex2bin(raw, sizeof(raw), (const char *)buf + a, b - a, NULL, &bin_len, NULL) !=
                0 ||
            bin_len != EDGE_TICKET_KEY_LEN) {
            snprintf(why, why_len,
                     "ticket-key-file %s:%u: not a key (%d hex digits expected, e.g. from "
                     "`openssl rand -hex %d`)",
                     path, line, 2 * EDGE_TICKET_KEY_LEN, EDGE_TICKET_KEY_LEN);
            goto out;
        }
        edge_ticket_key_set(&t->keys[t->num++], raw);
    }
    if (t->num == 0) {
        snprintf(why, why_len, "ticket-key-file %s: no key", path);
        goto out;
    }
    r = 0;
    *out = t;
    t = NULL;
out:
    sodium_memzero(raw, sizeof(raw));
    spk_secret_free(buf);
    if (t != NULL) {
        spk_secret_free(t);
    }
    return r;
}

int edge_tickets_rotate(struct edge_tickets *t)
{
    struct edge_ticket_key fresh;

    if (edge_ticket_key_random(&fresh) != 0) {
        return SPK_ERR_CRYPTO;
    }
    /* Only the newest and the one before it stay: older ones are wiped. */
    memcpy(&t->keys[1], &t->keys[0], sizeof(t->keys[0]));
    memcpy(&t->keys[0], &fresh, sizeof(fresh));
    sodium_memzero(&t->keys[2], sizeof(t->keys) - 2 * sizeof(t->keys[0]));
    sodium_memzero(&fresh, sizeof(fresh));
    t->num = 2;
    return 0;
}

void edge_tickets_free(struct edge_tickets *t)
{
    if (t == NULL) {
        return;
    }
    if (g_tickets == t) {
        g_tickets = NULL;
    }
    spk_secret_free(t);
}

size_t edge_tickets_count(const struct edge_tickets *t)
{
    return t == NULL ? 0 : t->num;
}

void edge_tickets_use(const struct edge_tickets *t)
{
    g_tickets = t;
}

void edge_tickets_stats(uint64_t *issued, uint64_t *accepted, uint64_t *unknown)
{
    *issued = g_tickets_issued;
    *accepted = g_tickets_accepted;
    *unknown = g_tickets_unknown;
}

static int edge_ticket_mac_init(EVP_MAC_CTX *hctx, const struct edge_ticket_key *k)
{
    OSSL_PARAM params[2];
    char digest[] = "SHA256";

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    return EVP_MAC_init(hctx, k->hmac, sizeof(k->hmac), params);
}

/*
 * edge_ticket_cb: OpenSSL's ticket key callback. Sealing: the first key, a
 * fresh IV. Opening: the key named in the ticket; 2 asks OpenSSL to issue a
 * new ticket under the newest key, 0 means "unknown key: full handshake".
 */
static int edge_ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *ctx,
                          EVP_MAC_CTX *hctx, int enc)
{
    const struct edge_tickets *t = g_tickets;
    const EVP_CIPHER *cipher = EVP_aes_256_cbc();
    size_t i;

    (void)ssl;
    if (t == NULL || t->num == 0) {
        return enc ? -1 : 0;
    }
    if (enc) {
        const struct edge_ticket_key *k = &t->keys[0];
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1) {
            return -1;
        }
        memcpy(key_name, k->name, EDGE_TICKET_NAME_LEN);
        if (EVP_EncryptInit_ex(ctx, cipher, NULL, k->aes, iv) != 1 ||
            edge_ticket_mac_init(hctx, k) != 1) {
            return -1;
        }
        g_tickets_issued++;
        return 1;
    }
    for (i = 0; i < t->num; i++) {
        if (sodium_memcmp(key_name, t->keys[i].name, EDGE_TICKET_NAME_LEN) == 0) {
            break;
        }
    }
    if (i == t->num) {
        g_tickets_unknown++;
        return 0;
    }
    if (edge_ticket_mac_init(hctx, &t->keys[i]) != 1 ||
        EVP_DecryptInit_ex(ctx, cipher, NULL, t->keys[i].aes, iv) != 1) {
        return -1;
    }
    g_tickets_accepted++;
    return i == 0 ? 1 : 2;
}

int edge_tickets_install(SSL_CTX *ctx)
{
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, edge_ticket_cb) == 1 ? 0 : SPK_ERR_CRYPTO;
}
