#ifndef SPK_EDGE_INTERNAL_H
#define SPK_EDGE_INTERNAL_H

/*
 * edge/internal.h: the parts of the edge daemon. The TLS-facing process is
 * the provider (edge_provider.c: RSA keys that hold only n, e and a key id),
 * the combiner connection (edge_client.c: OP_REQUEST over a ZeroMQ DEALER,
 * the calling ASYNC job paused until the answer), the configuration
 * (edge_config.c) and the event loop (edge_loop.c). The combiner process side
 * is edge_combproc.c; it runs in its own process image and is the only code
 * here that ever touches a share.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "edge/edge.h"
#include "proto/proto.h"

/* ---- provider (edge_provider.c) ------------------------------------------ */

#define EDGE_PROV_NAME "spkedge"
#define EDGE_PROV_PROPQ "?provider=spkedge"
/* The key id travels into EVP_PKEY_fromdata under this octet-string name. */
#define EDGE_PARAM_KEY_ID "spk-key-id"

/*
 * edge_keyop_fn performs one private-key operation for the provider: |op| is
 * an enum proto_op, |in| the digest or ciphertext, |client_version| the TLS
 * client version for PROTO_OP_DECRYPT_TLS_PREMASTER. Writes the result into
 * |out| (|out_cap| bytes) and its length to *out_len. Returns 0 or SPK_ERR_*.
 * Called on the thread that runs the TLS handshake, possibly inside an
 * ASYNC job that it may pause.
 */
typedef int (*edge_keyop_fn)(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                             const uint8_t *in, size_t in_len, uint16_t client_version,
                             uint8_t *out, size_t out_cap, size_t *out_len);

/*
 * edge_provider_load loads OpenSSL's "default" provider and then the edge's
 * built-in provider into the default library context (once per process) and
 * sets the function private-key operations go to. 0 or SPK_ERR_CRYPTO.
 */
SPK_WUR int edge_provider_load(edge_keyop_fn fn, void *arg);

/*
 * edge_provider_key_new makes an EVP_PKEY of the edge provider holding the
 * public key |pub| (from the certificate) and its key id (SHA-256 of the DER
 * SubjectPublicKeyInfo, computed here). *out is the caller's (EVP_PKEY_free).
 * SPK_ERR_KEY_UNSUPPORTED for a key that is not RSA.
 */
SPK_WUR int edge_provider_key_new(EVP_PKEY **out, uint8_t out_key_id[PROTO_KEY_ID_LEN],
                                  const EVP_PKEY *pub);

/* edge_provider_stats: private-key operations asked for and failed. */
void edge_provider_stats(uint64_t *out_ops, uint64_t *out_failed);

/* ---- combiner connection (edge_client.c) ---------------------------------- */

struct edge_client;

/*
 * edge_client_new connects a DEALER to |endpoint| (ipc:// or tcp://). Each
 * operation waits at most |timeout_ms|. NULL on failure.
 */
struct edge_client *edge_client_new(void *zmq_ctx, const char *endpoint, int timeout_ms);
void edge_client_free(struct edge_client *c);

/*
 * edge_client_keyop is an edge_keyop_fn (|arg| is the struct edge_client).
 * Inside an ASYNC job it sends OP_REQUEST, and pauses the job until the
 * answer, an error, or the timeout, with an eventfd in the job's wait context
 * that becomes readable when the job can go on. Outside a job it blocks on
 * the DEALER socket (processing other answers as they come).
 */
int edge_client_keyop(void *arg, const uint8_t key_id[PROTO_KEY_ID_LEN], uint8_t op,
                      const uint8_t *in, size_t in_len, uint16_t client_version, uint8_t *out,
                      size_t out_cap, size_t *out_len);

/* edge_client_fd: the DEALER's ZMQ_FD for the event loop to watch. */
int edge_client_fd(const struct edge_client *c);

/*
 * edge_client_process reads every answer without blocking and expires
 * operations past their deadline, waking their jobs. Call when the fd is
 * readable and once per loop turn (ZMQ_FD is edge-triggered).
 */
void edge_client_process(struct edge_client *c);

/* edge_client_fail_all ends every operation in flight with |err| (the
 * combiner died: its answers will never come). */
void edge_client_fail_all(struct edge_client *c, int err);

/*
 * edge_client_cancel_fd ends the operation that waits on |wake_fd| (a job's
 * eventfd) with SPK_ERR_TIMEOUT, so its connection can be resumed and freed.
 * True if there was one.
 */
bool edge_client_cancel_fd(struct edge_client *c, int wake_fd);

/* edge_client_ping: PING/PONG with the combiner, blocking up to |timeout_ms|. */
SPK_WUR int edge_client_ping(struct edge_client *c, int timeout_ms);

/* edge_client_timeout_ms: ms to the earliest deadline, or -1. */
long edge_client_timeout_ms(const struct edge_client *c);

/* edge_client_pending: operations in flight. */
size_t edge_client_pending(const struct edge_client *c);

/* ---- time ------------------------------------------------------------------ */

/* edge_now_ms: CLOCK_MONOTONIC in milliseconds. */
uint64_t edge_now_ms(void);

/* ---- the combiner process (edge_combproc.c) --------------------------------- */

/*
 * edge_combproc_run serves OP_REQUEST on a ROUTER bound at cfg->combiner_endpoint
 * until SIGTERM/SIGINT, with the shares named by |cfg|. Returns an exit status.
 */
int edge_combproc_run(const struct edge_config *cfg, bool allow_unlocked);

#endif
