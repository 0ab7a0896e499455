#ifndef SPK_BASE_H
#define SPK_BASE_H

/*
 * base: what every part of splitkey shares and nothing else: the error codes,
 * secret memory and process hardening, small file helpers, one log line
 * format and the monotonic clock. It depends on no other splitkey library.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define SPK_WUR __attribute__((warn_unused_result))

/* ---- errors ------------------------------------------------------------------ */

/*
 * One table of error codes for the whole project, in the style of OpenSSH's
 * ssherr.h: every fallible function returns 0 or one of these negative values.
 * The wire protocol carries the positive value of a subset of them (see
 * proto/PROTOCOL.md), so existing values never change meaning.
 */
enum spk_err {
    SPK_OK = 0,
    SPK_ERR_INTERNAL = -1,         /* a bug or an unexpected library failure */
    SPK_ERR_NOMEM = -2,            /* allocation failed */
    SPK_ERR_MALFORMED = -3,        /* bytes or text that do not parse */
    SPK_ERR_VERSION = -4,          /* a format or protocol version we do not speak */
    SPK_ERR_INVALID_ARG = -5,      /* a caller or command-line mistake */
    SPK_ERR_IO = -6,               /* read, write, open, rename failed */
    SPK_ERR_EXISTS = -7,           /* refusing to overwrite an existing file */
    SPK_ERR_CRYPTO = -8,           /* a cryptographic library call failed */
    SPK_ERR_COMMITMENT = -9,       /* a share does not match its commitment */
    SPK_ERR_THRESHOLD = -10,       /* fewer good shares than the threshold */
    SPK_ERR_MIXED_SPLIT = -11,     /* shares of different splits or keys */
    SPK_ERR_DUP_INDEX = -12,       /* two shares with the same x */
    SPK_ERR_KEY_UNSUPPORTED = -13, /* not a two-prime RSA key of a size we take */
    SPK_ERR_KEY_MISMATCH = -14,    /* rebuilt key does not match the public key */
    SPK_ERR_UNSEAL = -15,          /* a sealed share could not be opened */
    SPK_ERR_MLOCK = -16,           /* memory could not be locked */
    SPK_ERR_BAD_SIGNATURE = -17,   /* a record's signature does not verify */
    SPK_ERR_UNKNOWN_KEY = -18,     /* no such key id here */
    SPK_ERR_NOT_ALLOWED = -19,     /* the client may not have this */
    SPK_ERR_RATE_LIMITED = -20,    /* the client is over its rate */
    SPK_ERR_TIMEOUT = -21,         /* no answer in time */
    SPK_ERR_UNAVAILABLE = -22,     /* a peer cannot be reached */
    SPK_ERR_FAULT = -23,           /* a result failed its check with the public key */
    SPK_ERR_DECRYPT = -24,         /* a ciphertext did not decrypt (padding, size) */
    SPK_ERR_UNSUPPORTED = -25,     /* an operation or algorithm we do not offer */
    SPK_ERR_WRONG_HOLDER = -26,    /* a share addressed to another holder */
    SPK_ERR_PASSPHRASE = -27,      /* a key file that needs a (different) passphrase */
    SPK_ERR_PERMISSIONS = -28,     /* a secret file others may read, or another user's */
    SPK_ERR_HANDSHAKE = -29,       /* a peer broke off the secure handshake (wrong key?) */
};

#define SPK_ERR_MIN SPK_ERR_HANDSHAKE

/* spk_strerror returns a static, human-readable description of |err|. */
const char *spk_strerror(int err);

/* ---- secret memory ----------------------------------------------------------- */

/*
 * spk_mem_init installs wipe-on-free allocators into GMP
 * (mp_set_memory_functions) and OpenSSL (CRYPTO_set_mem_functions) and
 * initialises libsodium. Call it first in main, before anything allocates
 * through OpenSSL, and before starting threads. Safe to call more than once:
 * the first call decides and later calls return its result. If OpenSSL had
 * already allocated at the first call, its hooks cannot be installed and the
 * result is SPK_ERR_INTERNAL (GMP's hooks and libsodium are set up anyway).
 * Returns 0 or SPK_ERR_*.
 */
SPK_WUR int spk_mem_init(void);

/*
 * spk_process_harden sets PR_SET_DUMPABLE 0 and RLIMIT_CORE 0, then locks all
 * memory with mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT). When locking
 * fails it returns SPK_ERR_MLOCK unless |allow_unlocked|, and writes a clear
 * one-line reason (naming RLIMIT_MEMLOCK) into |why|.
 */
SPK_WUR int spk_process_harden(bool allow_unlocked, char *why, size_t why_len);

/* spk_memory_locked reports whether spk_process_harden locked memory. */
bool spk_memory_locked(void);

/*
 * spk_secret_new returns |len| zeroed bytes in guard-paged, mlock'ed,
 * MADV_DONTDUMP memory (sodium_malloc, with the mlock checked), or NULL, also
 * when the memory cannot be locked (unless spk_process_harden was allowed to
 * run unlocked). The start is 64-aligned when |len| is a multiple of 64. Free
 * with spk_secret_free, which wipes. For long-lived secrets (holder keys,
 * local shares); per-operation temporaries belong in a struct spk_arena.
 */
void *spk_secret_new(size_t len);
void spk_secret_free(void *p);
/* Toggle access to an idle secret (sodium_mprotect_*). 0 or SPK_ERR_*. */
int spk_secret_noaccess(void *p);
int spk_secret_readwrite(void *p);

/*
 * struct spk_arena is one locked, guard-paged region that an operation bump-
 * allocates from; spk_arena_reset wipes what was used. One per combiner
 * thread, so an operation costs no sodium_malloc.
 */
struct spk_arena;

/*
 * spk_arena_new returns an arena of |cap| bytes (rounded up to 64) in
 * spk_secret_new memory, or NULL (no memory, or it could not be locked).
 */
struct spk_arena *spk_arena_new(size_t cap);
/* spk_arena_alloc returns |len| zeroed bytes aligned to 64, or NULL when full. */
void *spk_arena_alloc(struct spk_arena *arena, size_t len);
/* spk_arena_used: bytes handed out since the last reset. */
size_t spk_arena_used(const struct spk_arena *arena);
void spk_arena_reset(struct spk_arena *arena);
void spk_arena_free(struct spk_arena *arena);

/*
 * spk_stack_wipe clears |len| bytes of stack below the caller, where GMP and
 * OpenSSL leave temporaries. Call after secret arithmetic.
 */
void spk_stack_wipe(size_t len);

/* ---- files ---------------------------------------------------------------- */

/*
 * spk_file_read reads at most |max| bytes of |path| into a new heap buffer
 * from OPENSSL_malloc (*out; free it with spk_file_free, or OPENSSL_free,
 * which wipes once spk_mem_init has installed its hooks). Fails with
 * SPK_ERR_IO, or SPK_ERR_MALFORMED when the file is larger than |max|.
 */
SPK_WUR int spk_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len);
/* spk_file_free wipes |len| bytes of a spk_file_read buffer and frees it (NULL is fine). */
void spk_file_free(uint8_t *buf, size_t len);
/* spk_file_read_secret: the same into spk_secret_new memory (free with spk_secret_free). */
SPK_WUR int spk_file_read_secret(const char *path, size_t max, uint8_t **out, size_t *out_len);
/*
 * spk_file_read_private is spk_file_read_secret for a file that holds a
 * secret (a holder's NAME.key, a share file, ticket keys, a passphrase): as
 * OpenSSH does for private keys, it refuses with SPK_ERR_PERMISSIONS a file
 * whose mode gives group or others any access, or that another uid owns
 * (checked on the open file, so the file read is the file checked). Files
 * directly in systemd's $CREDENTIALS_DIRECTORY are exempt: systemd gives the
 * unit's user access through an ACL there, which the mode cannot show as
 * private. Every loader of a secret file reads it through here.
 */
SPK_WUR int spk_file_read_private(const char *path, size_t max, uint8_t **out, size_t *out_len);
/*
 * spk_file_write_new creates |path| with |mode| (O_EXCL: SPK_ERR_EXISTS if it
 * is there), writes |len| bytes and fsyncs. On any failure it removes what it
 * created.
 */
SPK_WUR int spk_file_write_new(const char *path, unsigned mode, const uint8_t *data, size_t len);

/* ---- logs -------------------------------------------------------------------- */

/*
 * spk_log writes one line "|who|: message\n" to stderr with a single write(),
 * so lines of processes sharing a stderr (the edge and the combiner it
 * starts) never interleave. A message longer than 1 KiB is cut. Never pass a
 * secret: log names, lengths and error codes only.
 */
void spk_log(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void spk_log_v(const char *who, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* ---- time -------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in milliseconds, microseconds and nanoseconds. */
uint64_t spk_now_ms(void);
uint64_t spk_now_us(void);
uint64_t spk_now_ns(void);

/* ---- knocking again on a peer that refused ------------------------------------ */

/*
 * ZeroMQ never connects a socket again after a handshake its peer refused (a
 * CURVE key or uid not admitted, a mechanism mismatch): its client has to
 * (zmq_disconnect, then zmq_connect). struct spk_knock paces those new
 * connections: SPK_KNOCK_MIN_MS after a refusal, doubling to
 * SPK_KNOCK_MAX_MS while the refusals go on, so that a peer whose allow file
 * was fixed and reloaded lets the client in without a restart. Zeroed is
 * the start: not refused, nothing due.
 */
#define SPK_KNOCK_MIN_MS 250
#define SPK_KNOCK_MAX_MS 5000
struct spk_knock {
    uint64_t at_ms;  /* 0, or when to connect anew */
    uint64_t gap_ms; /* the wait after the next refusal; 0 for SPK_KNOCK_MIN_MS */
    bool refused;    /* the last handshake was refused */
};
/* spk_knock_refused notes a refused handshake at |now_ms| and sets when to
 * connect anew, unless that is set already. True for the first refusal of a
 * run: the one to log. */
bool spk_knock_refused(struct spk_knock *k, uint64_t now_ms);
/* spk_knock_admitted notes a handshake that let the client in. True when
 * refusals came before it: the return to log. */
bool spk_knock_admitted(struct spk_knock *k);
/* spk_knock_due: true, once, when the time to connect anew has come. */
bool spk_knock_due(struct spk_knock *k, uint64_t now_ms);
/* spk_knock_wait_ms: ms until then (0: now), or |cap| when sooner or when
 * nothing is due; a negative |cap| is no cap. */
long spk_knock_wait_ms(const struct spk_knock *k, uint64_t now_ms, long cap);

/*
 * ZeroMQ reports a disconnect (the socket monitor's DISCONNECTED) before it
 * detaches the dead connection from its socket, so a message sent again at
 * once can still go into the dead one and be lost (a loaded host can keep
 * the I/O thread from the detach for milliseconds). A client therefore sends
 * what was in flight again on a disconnect and once more when the next
 * connection's handshake succeeds; a second copy of an idempotent request
 * (signing, decrypting) is harmless. spk_resend_due takes one monitor event
 * and says whether to send again now; |*after_disconnect| (false at the
 * start, so a first connection sends nothing twice) is its state.
 */
bool spk_resend_due(bool *after_disconnect, bool disconnected, bool handshake_succeeded);

/* ---- the local edge-combiner channel ------------------------------------------- */

/*
 * A unix://PATH endpoint is a SOCK_SEQPACKET Unix socket: one wire message
 * per datagram, no ZeroMQ framing and no I/O thread (proto/PROTOCOL.md
 * section 2). PATH starting with '@' is in the abstract namespace.
 */
#define SPK_UNIX_SCHEME "unix://"
#define SPK_UNIX_SCHEME_LEN 7
/* The largest message on a unix:// channel: an OP_REQUEST with an RSA-8192
 * input, an OP_RESPONSE with its result, with room to spare. A longer
 * datagram is read truncated and refused. */
#define SPK_UNIX_MSG_MAX 2048

/* spk_endpoint_is_unix: |endpoint| starts with unix://. */
bool spk_endpoint_is_unix(const char *endpoint);

/*
 * spk_unix_addr fills |out| and |out_len| for a unix://PATH |endpoint|.
 * SPK_ERR_INVALID_ARG when it is not one or PATH is empty or too long for
 * sun_path.
 */
SPK_WUR int spk_unix_addr(struct sockaddr_un *out, socklen_t *out_len, const char *endpoint);

/*
 * spk_unix_connect connects a non-blocking, close-on-exec SOCK_SEQPACKET
 * socket to |endpoint| and returns it in |out_fd|. SPK_ERR_UNAVAILABLE when
 * nothing listens there (yet), SPK_ERR_NOT_ALLOWED when this uid may not
 * open it (EACCES), SPK_ERR_INVALID_ARG for a bad endpoint, SPK_ERR_IO
 * otherwise.
 */
SPK_WUR int spk_unix_connect(int *out_fd, const char *endpoint);

#endif
