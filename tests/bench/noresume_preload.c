/*
 * noresume_preload.c: libspk_noresume.so, an LD_PRELOAD shim that makes a
 * TLS client built on OpenSSL 3 offer no session, so every connection is a
 * full handshake. The benchmarks (tools/bench-provider, tools/bench-edge)
 * preload it into h2load:
 *
 *   LD_PRELOAD=build/tests/libspk_noresume.so h2load --h1 ...
 *
 * Why: h2load 1.52 (Debian's nghttp2-client) keeps a connection's SSL object
 * after a clean close and reuses it for the next connection, and OpenSSL
 * keeps the session in it, so each reconnect offers the previous TLS 1.2
 * session id or TLS 1.3 ticket: against a server with tickets or a session
 * cache (a default nginx, the edge) it measures resumption, not the private-
 * key operation a new visitor costs. h2load has no option to turn that off.
 *
 * How: h2load calls SSL_set_connect_state before every handshake, on a new
 * or a reused SSL object; the shim calls OpenSSL's own and then drops the
 * session the object holds (OpenSSL's SSL_set_session with NULL frees it
 * and leaves none). SSL_set_session itself is made a no-op for
 * clients that install a saved session explicitly. Nothing else changes: the
 * client still accepts tickets, so the server does all a first visit costs.
 * The benchmarks check on the server side that no handshake resumed.
 *
 * With SPK_NORESUME_TLS_MAX=1.2 in the environment the shim also caps each
 * connection at TLS 1.2: h2load sets its own version range on its SSL_CTX,
 * over openssl.cnf's, and has no option for it, and the benchmarks measure
 * both versions against the same servers.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

static void (*noresume_next_set_connect_state)(SSL *ssl);
static int (*noresume_next_set_session)(SSL *ssl, SSL_SESSION *session);
static int noresume_max_version;

__attribute__((constructor)) static void noresume_init(void)
{
    *(void **)&noresume_next_set_connect_state = dlsym(RTLD_NEXT, "SSL_set_connect_state");
    *(void **)&noresume_next_set_session = dlsym(RTLD_NEXT, "SSL_set_session");
    if (noresume_next_set_connect_state == NULL || noresume_next_set_session == NULL) {
        fprintf(stderr, "libspk_noresume: OpenSSL's libssl is not loaded\n");
        abort();
    }
    const char *max = getenv("SPK_NORESUME_TLS_MAX");
    if (max != NULL && strcmp(max, "1.2") == 0) {
        noresume_max_version = TLS1_2_VERSION;
    } else if (max != NULL && max[0] != '\0') {
        fprintf(stderr, "libspk_noresume: SPK_NORESUME_TLS_MAX must be 1.2 or empty\n");
        abort();
    }
}

void SSL_set_connect_state(SSL *ssl)
{
    noresume_next_set_connect_state(ssl);
    (void)noresume_next_set_session(ssl, NULL);
    if (noresume_max_version != 0 && !SSL_set_max_proto_version(ssl, noresume_max_version)) {
        fprintf(stderr, "libspk_noresume: cannot cap the TLS version\n");
        abort();
    }
}

int SSL_set_session(SSL *ssl, SSL_SESSION *session)
{
    (void)session;
    return noresume_next_set_session(ssl, NULL);
}
