/*
 * edge_sni.c: the server name a client asks for, read from its ClientHello
 * before OpenSSL looks for a session to resume, and the session id context
 * that binds every session (ids and tickets, TLS 1.2 and 1.3) to that name.
 *
 * RFC 6066 section 3: a server must not resume a session made for another
 * name. OpenSSL keeps one session cache and one ticket key for all of our
 * SSL_CTXs and does not compare names by itself, so a www session would
 * resume on api and be relayed to api's upstream. The edge gives each
 * connection a session id context derived from its name: OpenSSL refuses a
 * cached session id made under another context, and the ticket callback here
 * refuses a ticket whose session carries another one (a full handshake
 * follows, with the right certificate and upstream).
 */

#include <string.h>

#include <openssl/ssl.h>
#include <sodium.h>

#include "edge/internal.h"

static uint64_t g_sni_refused;

int edge_sni_parse(char out[EDGE_SNI_NAME_MAX + 1], const uint8_t *ext, size_t ext_len)
{
    struct proto_rd rd, list, name;
    uint8_t type;
    size_t i, len;

    out[0] = '\0';
    proto_rd_init(&rd, ext, ext_len);
    /* ServerNameList: u16 length, then entries of type u8 and u16-prefixed
     * bytes. Only host_name (0) is defined; RFC 6066 allows one per type. */
    if (!proto_rd_u16_prefixed(&rd, &list) || proto_rd_len(&rd) != 0 || proto_rd_len(&list) == 0) {
        return SPK_ERR_MALFORMED;
    }
    while (proto_rd_len(&list) > 0) {
        if (!proto_rd_u8(&list, &type) || !proto_rd_u16_prefixed(&list, &name)) {
            return SPK_ERR_MALFORMED;
        }
        if (type != TLSEXT_NAMETYPE_host_name) {
            continue;
        }
        len = proto_rd_len(&name);
        if (out[0] != '\0' || len == 0 || len > EDGE_SNI_NAME_MAX) {
            return SPK_ERR_MALFORMED;
        }
        if (!proto_rd_copy(&name, (uint8_t *)out, len)) {
            return SPK_ERR_MALFORMED;
        }
        out[len] = '\0';
        for (i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)out[i];
            if (ch == '\0' || ch < 0x21 || ch > 0x7e) {
                out[0] = '\0';
                return SPK_ERR_MALFORMED; /* OpenSSL refuses these too */
            }
            if (ch >= 'A' && ch <= 'Z') {
                out[i] = (char)(ch - 'A' + 'a');
            }
        }
        /* "api.example." is the fully qualified spelling of "api.example". */
        if (out[len - 1] == '.') {
            out[--len] = '\0';
            if (len == 0 || out[len - 1] == '.') {
                return SPK_ERR_MALFORMED;
            }
        }
    }
    return 0;
}

void edge_sni_session_context(uint8_t out[EDGE_SNI_CTX_LEN], const char *name)
{
    static const char label[] = "splitkey edge session for server name";
    crypto_hash_sha256_state st;
    uint8_t digest[crypto_hash_sha256_BYTES];

    /* The label keeps these apart from any other use of the hash; the name
     * includes its NUL so "" (no SNI) differs from every real name. */
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)label, sizeof(label));
    crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name) + 1);
    crypto_hash_sha256_final(&st, digest);
    memcpy(out, digest, EDGE_SNI_CTX_LEN);
}

/*
 * edge_sni_ticket_cb: OpenSSL's decrypt-ticket callback, after the ticket key
 * callback opened a ticket. A session made under another session id context
 * (another server name) is not resumed; a new ticket is issued instead.
 */
static SSL_TICKET_RETURN edge_sni_ticket_cb(SSL *ssl, SSL_SESSION *sess,
                                            const unsigned char *keyname, size_t keyname_len,
                                            SSL_TICKET_STATUS status, void *arg)
{
    const uint8_t *want = NULL;
    const unsigned char *have;
    unsigned int have_len = 0;

    (void)keyname;
    (void)keyname_len;
    (void)arg;
    switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
        want = edge_conn_session_context(ssl);
        have = SSL_SESSION_get0_id_context(sess, &have_len);
        if (want == NULL || have == NULL || have_len != EDGE_SNI_CTX_LEN ||
            sodium_memcmp(have, want, EDGE_SNI_CTX_LEN) != 0) {
            g_sni_refused++;
            return SSL_TICKET_RETURN_IGNORE_RENEW;
        }
        return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
    case SSL_TICKET_NONE:
    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT:
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER:
    default:
        return SSL_TICKET_RETURN_ABORT;
    }
}

uint64_t edge_sni_refused_count(void)
{
    return g_sni_refused;
}

int edge_sni_install(SSL_CTX *ctx)
{
    return SSL_CTX_set_session_ticket_cb(ctx, NULL, edge_sni_ticket_cb, NULL) == 1 ? 0
                                                                                   : SPK_ERR_CRYPTO;
}
