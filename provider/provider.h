#ifndef SPK_PROVIDER_H
#define SPK_PROVIDER_H

/*
 * provider: splitkey's OpenSSL 3 provider. Its RSA keys hold only the public
 * key (n, e) and a key id; their private operations (one-shot EVP_DigestSign,
 * streaming digest-sign, EVP_PKEY_sign of a digest, EVP_PKEY_decrypt with the
 * TLS padding, PKCS#1 or OAEP) are hashed here and handed to a keyop function
 * that asks the combiner. One implementation serves two hosts:
 *
 *   - the edge, which loads it as a built-in provider (prov_builtin_load) with
 *     its own combiner connection as the keyop function;
 *   - splitkey.so, a loadable module (prov_module.c) that any OpenSSL 3
 *     program loads from openssl.cnf; it adds a decoder for the PEM key
 *     reference file (proto_keyref) and its own combiner client.
 *
 * No private key material ever enters a process that uses it: imports of
 * private components are ignored and the keymgmt has no export, so OpenSSL
 * never copies a key of ours into another provider (it would try to sign
 * there with a public key).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/proto.h"

/* The built-in provider's name, as the edge loads it. */
#define PROV_BUILTIN_NAME "spkedge"

/*
 * prov_keyop_fn performs one private-key operation: |op| is an enum
 * proto_op, |in| the digest or ciphertext, |client_version| the TLS client
 * version for PROTO_OP_DECRYPT_TLS_PREMASTER. Writes the result into |out|
 * (|out_cap| bytes) and its length to *out_len. Returns 0 or SPK_ERR_*.
 * Called on the thread that runs the operation, possibly inside an ASYNC
 * job that it may pause.
 */
typedef int (*prov_keyop_fn)(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                             const uint8_t *in, size_t in_len, uint16_t client_version,
                             uint8_t *out, size_t out_cap, size_t *out_len);

/*
 * prov_builtin_load loads OpenSSL's "default" provider and then the built-in
 * provider PROV_BUILTIN_NAME into the default library context (once per
 * process) and sets the function private-key operations go to. 0 or
 * SPK_ERR_CRYPTO.
 */
SPK_WUR int prov_builtin_load(prov_keyop_fn fn, void *arg);

/*
 * prov_key_new makes an EVP_PKEY of the built-in provider holding the public
 * key |pub| (from the certificate) and its key id (SHA-256 of the DER
 * SubjectPublicKeyInfo, computed here). *out is the caller's (EVP_PKEY_free).
 * SPK_ERR_KEY_UNSUPPORTED for a key that is not RSA.
 */
SPK_WUR int prov_key_new(EVP_PKEY **out, uint8_t out_key_id[PROTO_KEY_ID_LEN], const EVP_PKEY *pub);

/* prov_stats: private-key operations asked for and failed, in this process. */
void prov_stats(uint64_t *out_ops, uint64_t *out_failed);

#endif
