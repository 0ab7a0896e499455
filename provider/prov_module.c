/*
 * prov_module.c: splitkey.so, the provider any OpenSSL 3 program loads from
 * openssl.cnf. Its parameters (the provider section of openssl.cnf):
 *
 *   combiner-endpoint  unix://PATH, ipc://PATH or tcp://HOST:PORT: overrides the endpoint
 *                      of every key reference (default: each reference's own)
 *   timeout-ms         how long one private-key operation may take
 *                      (default 5000, 1..600000)
 *
 * README ("Use split keys from nginx, HAProxy, Apache, curl") shows the
 * whole openssl.cnf.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <sodium.h>

#include "provider/internal.h"

#define PROV_MODULE_NAME "splitkey"
#define PROV_TIMEOUT_DEFAULT_MS 5000
#define PROV_TIMEOUT_MAX_MS 600000

static int prov_module_route(void *arg, const struct proto_keyref *ref)
{
    return prov_client_route(arg, ref);
}

static void prov_module_teardown(struct prov_ctx *ctx)
{
    prov_client_free(ctx->keyop_arg);
    OSSL_LIB_CTX_free(ctx->libctx);
}

/* prov_module_timeout: "timeout-ms" as a number in range, or -1. */
static int prov_module_timeout(const char *s)
{
    char *end = NULL;
    long v;

    if (s == NULL || *s == '\0') {
        return PROV_TIMEOUT_DEFAULT_MS;
    }
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < 1 || v > PROV_TIMEOUT_MAX_MS) {
        return -1;
    }
    return (int)v;
}

__attribute__((visibility("default"))) int OSSL_provider_init(const OSSL_CORE_HANDLE *handle,
                                                              const OSSL_DISPATCH *in,
                                                              const OSSL_DISPATCH **out,
                                                              void **provctx)
{
    OSSL_FUNC_core_get_params_fn *get_params = NULL;
    const OSSL_DISPATCH *fn;
    char *endpoint = NULL;
    char *timeout = NULL;
    OSSL_PARAM params[3];
    struct prov_ctx *ctx = NULL;
    int timeout_ms;

    for (fn = in; fn != NULL && fn->function_id != 0; fn++) {
        if (fn->function_id == OSSL_FUNC_CORE_GET_PARAMS) {
            get_params = OSSL_FUNC_core_get_params(fn);
        }
    }
    params[0] = OSSL_PARAM_construct_utf8_ptr("combiner-endpoint", &endpoint, 0);
    params[1] = OSSL_PARAM_construct_utf8_ptr("timeout-ms", &timeout, 0);
    params[2] = OSSL_PARAM_construct_end();
    if (get_params == NULL || !get_params(handle, params)) {
        return 0;
    }
    if ((timeout_ms = prov_module_timeout(timeout)) < 0) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
                       "splitkey: timeout-ms must be 1..%d", PROV_TIMEOUT_MAX_MS);
        return 0;
    }
    if (endpoint != NULL && *endpoint != '\0' && !proto_endpoint_valid(endpoint)) {
        ERR_raise_data(
            ERR_LIB_PROV, ERR_R_PASSED_INVALID_ARGUMENT,
            "splitkey: combiner-endpoint must be unix://PATH, ipc://PATH or tcp://HOST:PORT");
        return 0;
    }
    /* The client's key file is read into sodium_malloc memory, which needs
     * libsodium initialised (idempotent, thread-safe). */
    if (sodium_init() < 0) {
        ERR_raise_data(ERR_LIB_PROV, ERR_R_INIT_FAIL, "splitkey: libsodium failed to initialise");
        return 0;
    }
    if ((ctx = OPENSSL_zalloc(sizeof(*ctx))) == NULL) {
        return 0;
    }
    ctx->handle = handle;
    ctx->name = PROV_MODULE_NAME;
    /* Digests and public keys come from the application's other providers,
     * never from this one. */
    ctx->md_propq = "provider!=" PROV_MODULE_NAME;
    ctx->module = true;
    ctx->keyop = prov_client_keyop;
    ctx->route = prov_module_route;
    ctx->teardown = prov_module_teardown;
    ctx->libctx = OSSL_LIB_CTX_new_child(handle, in);
    ctx->keyop_arg =
        prov_client_new(endpoint != NULL && *endpoint != '\0' ? endpoint : NULL, timeout_ms);
    if (ctx->libctx == NULL || ctx->keyop_arg == NULL) {
        prov_teardown(ctx);
        return 0;
    }
    *out = prov_base_fns;
    *provctx = ctx;
    return 1;
}
