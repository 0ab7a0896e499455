#ifndef SPK_PROVIDER_INTERNAL_H
#define SPK_PROVIDER_INTERNAL_H

/*
 * provider/internal.h: the parts of the provider. prov_core.c holds the
 * provider itself (query, init, the built-in's loader), the keyop call and
 * the padding and digest parameters signature and cipher share;
 * prov_keymgmt.c, prov_signature.c and prov_cipher.c are the three RSA
 * operations every host gets; prov_coder.c the key reference decoder and
 * public-key encoders, prov_store.c the splitkey: URI loader, which only
 * the module offers; prov_module.c and
 * prov_client.c the loadable module and its combiner client.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include "provider/provider.h"

#define PROV_RSA_NAMES "RSA:rsaEncryption:1.2.840.113549.1.1.1"
#define PROV_MDNAME_MAX 32
/* The key id travels into EVP_PKEY_fromdata under this octet-string name. */
#define PROV_PARAM_KEY_ID "spk-key-id"
/* The PEM label of a key reference file (proto_keyref). */
#define PROV_KEYREF_PEM_LABEL "SPLITKEY KEY REFERENCE"
/* The decoder structure name of its body (between our two decoders). */
#define PROV_KEYREF_STRUCTURE "splitkey-key-reference"

/* One per loaded provider (the built-in, or each load of the module). */
struct prov_ctx {
    const OSSL_CORE_HANDLE *handle;
    /* Where digests and public keys are fetched: NULL (the application's
     * default context) for the built-in, a child context for the module. */
    OSSL_LIB_CTX *libctx;
    const char *md_propq;
    const char *name; /* "provider=NAME" of our algorithms */
    prov_keyop_fn keyop;
    void *keyop_arg;
    /* The module: where a decoded reference's operations go (keyop_arg). */
    int (*route)(void *keyop_arg, const struct proto_keyref *ref);
    bool module; /* offer the decoder and the encoders */
    void (*teardown)(struct prov_ctx *ctx);
};

/* An RSA key: public half, key id, and for the encoders its SPKI DER. */
struct prov_key {
    struct prov_ctx *prov;
    atomic_int refs;
    BIGNUM *n;
    BIGNUM *e;
    uint8_t key_id[PROTO_KEY_ID_LEN];
    bool has_id;
    uint8_t *spki; /* OPENSSL_malloc'd, or NULL */
    size_t spki_len;
};

/* ---- prov_core.c ------------------------------------------------------------ */

/*
 * prov_keyop sends one operation of |key| to the provider's keyop function;
 * on failure raises an OpenSSL error that says why ("splitkey: combiner
 * unreachable" ...). 0 or SPK_ERR_*.
 */
SPK_WUR int prov_keyop(const struct prov_key *key, uint8_t op, const uint8_t *in, size_t in_len,
                       uint16_t client_version, uint8_t *out, size_t out_cap, size_t *out_len);
size_t prov_key_size(const struct prov_key *key);

/* prov_pad_from_param: an RSA padding mode given as a name or an int. */
int prov_pad_from_param(const OSSL_PARAM *p, int *out);
int prov_mdname_param(const OSSL_PARAM *p, char out[PROV_MDNAME_MAX]);
/* prov_md_fetch: a digest the host's other providers compute; only the
 * digest goes to the combiner. Caller frees. */
EVP_MD *prov_md_fetch(const struct prov_ctx *prov, const char *mdname);
/* prov_sign_op: the proto_op for a digest and padding, or 0 when the
 * combiner does not offer that combination. */
uint8_t prov_sign_op(const EVP_MD *md, int pad, int saltlen, const EVP_MD *mgf1);
/* prov_pkey_public: the key's n, e as an EVP_PKEY of the host's other
 * providers (for what they do with a public key). Caller frees. */
EVP_PKEY *prov_pkey_public(const struct prov_key *key);

/* prov_query: the algorithms of |provctx| (a struct prov_ctx). */
const OSSL_ALGORITHM *prov_query(void *provctx, int operation_id, int *no_cache);
void prov_teardown(void *provctx);
extern const OSSL_DISPATCH prov_base_fns[];

/* ---- prov_keymgmt.c ------------------------------------------------------------ */

struct prov_key *prov_key_alloc(struct prov_ctx *prov);
/* prov_key_free drops one reference (the keymgmt's free). */
void prov_key_free(struct prov_key *key);
struct prov_key *prov_key_up_ref(struct prov_key *key);
extern const OSSL_DISPATCH prov_keymgmt_fns[];

/* ---- prov_signature.c / prov_cipher.c ------------------------------------------ */

extern const OSSL_DISPATCH prov_signature_fns[];
extern const OSSL_DISPATCH prov_cipher_fns[];

/* ---- prov_coder.c (module only) ------------------------------------------------ */

/*
 * prov_key_from_ref makes a key of |prov| from a decoded reference: n and e
 * from its SubjectPublicKeyInfo, which must be an RSA key whose SHA-256 is
 * the stated key id. NULL (with an OpenSSL error raised) otherwise.
 */
struct prov_key *prov_key_from_ref(struct prov_ctx *prov, const struct proto_keyref *ref);
extern const OSSL_DISPATCH prov_decoder_fns[];
extern const OSSL_DISPATCH prov_decoder_body_fns[];
extern const OSSL_DISPATCH prov_encoder_der_fns[];
extern const OSSL_DISPATCH prov_encoder_pem_fns[];

/* ---- prov_store.c (module only) ------------------------------------------------ */

/* The longest file path a splitkey: URI may name. */
#define PROV_STORE_PATH_MAX 4095

/*
 * prov_store_uri_path writes the file path of the |uri_len| bytes of |uri|
 * ("splitkey:PATH" or "splitkey:///PATH"; the scheme in any case; PATH
 * 1..PROV_STORE_PATH_MAX bytes, no control character, taken literally) as a
 * string into |out|. 0, or SPK_ERR_MALFORMED with |out| empty.
 */
SPK_WUR int prov_store_uri_path(char *out, size_t out_cap, const char *uri, size_t uri_len);
extern const OSSL_DISPATCH prov_store_fns[];

/* ---- prov_client.c (module only) ------------------------------------------------ */

struct prov_client;

/*
 * prov_client_new makes the module's combiner client: |endpoint| overrides
 * every key reference's combiner when not NULL; each operation waits at most
 * |timeout_ms|. Nothing is connected yet: ZeroMQ state is made per process on
 * the first operation, so a process may load keys and then fork. NULL on
 * failure.
 */
struct prov_client *prov_client_new(const char *endpoint, int timeout_ms);
void prov_client_free(struct prov_client *c);

/*
 * prov_client_route says where operations on |ref|'s key go (its combiner
 * endpoint, and for tcp:// the combiner's CURVE key and the client key
 * file). The last reference loaded for a key id wins. 0 or SPK_ERR_*.
 */
SPK_WUR int prov_client_route(struct prov_client *c, const struct proto_keyref *ref);

/*
 * prov_client_keyop is a prov_keyop_fn (|arg| is the struct prov_client).
 * Thread-safe. Inside an ASYNC job it pauses the job until the answer (the
 * job's wait fd becomes readable); elsewhere it blocks. Never longer than
 * the timeout.
 */
int prov_client_keyop(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                      const uint8_t *in, size_t in_len, uint16_t client_version, uint8_t *out,
                      size_t out_cap, size_t *out_len);

#endif
