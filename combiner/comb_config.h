#ifndef SPK_COMB_CONFIG_H
#define SPK_COMB_CONFIG_H

/*
 * comb_config: the combiner's configuration file (proto/PROTOCOL.md section
 * 8 is normative) and the remote share source that fetches shares from
 * share-holder daemons over ZeroMQ/CURVE.
 *
 * Typical use (`combiner sign --config FILE`, `combiner run`):
 *
 *     struct comb_conf conf;
 *     struct comb_ctx *c = NULL;
 *     char why[COMB_CONF_WHY_MAX];
 *
 *     if (comb_conf_load(&conf, path, NULL, NULL, why, sizeof(why)) != 0 ||
 *         comb_conf_open(&c, &conf, NULL, conf.timeout_ms, why, sizeof(why)) != 0)
 *         ... print why ...
 *     ... conf.keys[i].key_id are the keys c holds ...
 *     comb_free(c);
 *     comb_conf_cleanup(&conf);
 *
 * or comb_open_config() for both steps at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "combiner/combiner.h"
#include "proto/spk_metrics.h"

#define COMB_CONF_MAGIC "splitkey-combiner"
#define COMB_CONF_VERSION 1
#define COMB_CONF_PATH_MAX 4096
#define COMB_CONF_ENDPOINT_MAX 256
#define COMB_CONF_ENTRIES_MAX 256 /* record, share and holder lines, each */
#define COMB_CONF_KEYS_MAX 65536  /* records loaded (directories expand) */
#define COMB_CONF_TIMEOUT_DEFAULT 2000
#define COMB_CONF_TIMEOUT_MAX 600000
#define COMB_CONF_WHY_MAX 512 /* enough for every message of this module */

/* One `holder NAME ENDPOINT PUBLIC` line. */
struct comb_conf_holder {
    char name[PROTO_NAME_MAX + 1];
    char endpoint[COMB_CONF_ENDPOINT_MAX];
    uint8_t curve_pk[PROTO_X25519_LEN]; /* set by comb_conf_parse (Z85) or comb_conf_load (file) */
    bool have_pk;                       /* false: pub_path still to be read */
    char pub_path[COMB_CONF_PATH_MAX];  /* NAME.pub, resolved; "" when given in Z85 */
};

/*
 * One `client NAME uid USER OPS` or `client NAME curve OPS` line: who may
 * reach `combiner run` and which operations it may ask for. |ops| has bit
 * (1 << op) set for every enum proto_op allowed.
 */
struct comb_conf_client {
    char name[PROTO_NAME_MAX + 1];
    bool by_uid;                   /* ipc:// peer uid; else a CURVE key of the 'allow' file */
    uint32_t uid;                  /* by_uid: resolved by comb_conf_load */
    char user[PROTO_NAME_MAX + 1]; /* by_uid: the user name given, "" for a number */
    uint64_t ops;
};

/* The operations of a TLS server: PKCS#1 v1.5 and PSS signatures and the
 * premaster decryption with implicit rejection; never raw RSA or a PKCS#1
 * decryption that reports padding errors. */
#define COMB_OPS_TLS                                                                               \
    ((1ull << PROTO_OP_SIGN_PKCS1_SHA1) | (1ull << PROTO_OP_SIGN_PKCS1_SHA224) |                   \
     (1ull << PROTO_OP_SIGN_PKCS1_SHA256) | (1ull << PROTO_OP_SIGN_PKCS1_SHA384) |                 \
     (1ull << PROTO_OP_SIGN_PKCS1_SHA512) | (1ull << PROTO_OP_SIGN_PKCS1_MD5SHA1) |                \
     (1ull << PROTO_OP_SIGN_PSS_SHA256) | (1ull << PROTO_OP_SIGN_PSS_SHA384) |                     \
     (1ull << PROTO_OP_SIGN_PSS_SHA512) | (1ull << PROTO_OP_DECRYPT_TLS_PREMASTER))

/* A share file opened in process with another holder's key file. */
struct comb_conf_file_share {
    char path[COMB_CONF_PATH_MAX];
    char key_path[COMB_CONF_PATH_MAX];
};

/* OPENSSL_ia32cap for OpenSSL's AVX2 code on 1024-bit moduli (exp-code avx2):
 * ADX (bit 19) and BMI2 (bit 8) of CPUID leaf 7's EBX cleared. */
#define COMB_EXP_AVX2_MASK ":~0x80100"

/* The keys exp-code auto takes the AVX2 code for: RSA-2048 (1024-bit halves)
 * in rebuild mode. */
static inline bool comb_exp_avx2_suits(uint8_t mode, size_t modulus_len)
{
    return mode == PROTO_MODE_REBUILD && modulus_len == 256;
}

/* exp-code: which of OpenSSL's exponentiation code `combiner run` runs with. */
enum comb_exp_code {
    COMB_EXP_CODE_AUTO = 0, /* AVX2 where it measures faster and every key is RSA-2048 */
    COMB_EXP_CODE_OPENSSL,  /* OpenSSL's own choice for the CPU */
    COMB_EXP_CODE_AVX2,     /* its AVX2 code (OPENSSL_ia32cap without ADX and BMI2) */
};

/* A key that comb_conf_open added to the combiner. */
struct comb_conf_key {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    size_t modulus_len;
    unsigned threshold;
    uint8_t mode; /* enum proto_mode: rebuild, or threshold (signature shares) */
    bool local;   /* the combiner holds its own share of it */
};

/*
 * struct comb_conf: a parsed configuration. Paths are resolved against the
 * configuration file's directory. Arrays are OPENSSL_zalloc'd; free them with
 * comb_conf_cleanup (safe after zero-init and after any failure).
 */
struct comb_conf {
    char key_path[COMB_CONF_PATH_MAX]; /* the combiner's own NAME.key */
    char (*record_paths)[COMB_CONF_PATH_MAX];
    size_t num_record_paths;
    char (*share_paths)[COMB_CONF_PATH_MAX];
    size_t num_share_paths;
    struct comb_conf_holder *holders;
    size_t num_holders;
    unsigned timeout_ms;         /* per share request and per batch */
    unsigned max_pending;        /* 0: the combiner's default */
    unsigned max_batch;          /* 0: the combiner's default */
    unsigned share_timeout_ms;   /* per share request; 0: timeout_ms */
    bool fanout_all;             /* holder-fanout all, or needed (the default) */
    unsigned crt_threads;        /* crt-threads 1 or 2; default 2 with more than one CPU */
    enum comb_exp_code exp_code; /* exp-code: `combiner run` only (combiner/cmd/exp.c) */
    /* The daemon's (`combiner run`): */
    char listen[COMB_CONF_ENDPOINT_MAX];  /* "" = none given */
    char metrics[COMB_CONF_ENDPOINT_MAX]; /* HOST:PORT, "" = none */
    bool allow_unlocked;
    char allow_path[COMB_CONF_PATH_MAX];   /* CURVE clients for tcp://, "" = none */
    char socket_group[PROTO_NAME_MAX + 1]; /* ipc:// socket 0660 for this group; "" = 0600 */
    struct comb_conf_client *clients;
    size_t num_clients;
    /* Not a line of the file: shares of other holders opened in this process
     * with their holder's key file, each an in-process file source (`combiner
     * sign --share S --holder-key K` after the first; tests and drills). */
    struct comb_conf_file_share *file_shares;
    size_t num_file_shares;
    /* Filled by comb_conf_open: */
    struct comb_conf_key *keys;
    size_t num_keys;
};

/*
 * comb_conf_extra_fn: called by the parser for a line whose option it does
 * not know, with the option word and the rest of the line (NUL-terminated
 * copies). Return 0 when the option was taken, SPK_ERR_UNSUPPORTED when it is
 * unknown to the caller too (the parser then reports "unknown option"), or
 * another SPK_ERR_* with a reason in |why|. For commands that keep their own
 * options in the same file (e.g. `combiner run`'s listen endpoint).
 */
typedef int (*comb_conf_extra_fn)(void *arg, const char *option, const char *value, char *why,
                                  size_t why_len);

/*
 * comb_conf_parse parses configuration text |in| into |out| (zeroed first).
 * Relative paths are resolved against |base_dir| (NULL or "": as given).
 * Pure: no file is read (holders given by NAME.pub path keep have_pk false
 * until comb_conf_load). Returns 0, SPK_ERR_VERSION (another version of the
 * format), or SPK_ERR_MALFORMED / SPK_ERR_INVALID_ARG with "line N: reason"
 * in |why|; |out| is cleaned up on failure.
 */
SPK_WUR int comb_conf_parse(struct comb_conf *out, const uint8_t *in, size_t in_len,
                            const char *base_dir, comb_conf_extra_fn extra, void *extra_arg,
                            char *why, size_t why_len);

/*
 * comb_conf_load reads the file |path| (PROTO_FILE_MAX at most), parses it
 * with its directory as base, and reads every holder's NAME.pub (whose name
 * must be the holder's). 0 or SPK_ERR_* with a reason naming the file in
 * |why|.
 */
SPK_WUR int comb_conf_load(struct comb_conf *out, const char *path, comb_conf_extra_fn extra,
                           void *extra_arg, char *why, size_t why_len);

/* comb_conf_cleanup frees |conf|'s arrays and zeroes it. */
void comb_conf_cleanup(struct comb_conf *conf);

/*
 * comb_conf_open builds every combiner (`combiner run`, `check`, `sign`,
 * `decrypt`) from a loaded or filled |conf|: comb_new with its
 * timeout and limits; the key file; every record (a directory: each
 * *.record in it), each verified and added with comb_add_key together with
 * the local share of that key when one is configured (a share directory
 * gives each *.NAME.share in it, NAME being the key file's name); one remote
 * source per holder (comb_add_remote_source), asked only for the keys whose
 * record names that holder; one file source per file_shares entry (a share
 * of one of the records, opened with its key file). Then it waits up to
 * |connect_wait_ms| (0: not at
 * all) until every holder is connected; a holder that is not is no error
 * (operations fail or succeed later as the threshold allows). Fills
 * conf->keys. |zmq_ctx| may be NULL (a context shared by the remote sources
 * is made). On success *out is the combiner (comb_free it); else NULL and
 * SPK_ERR_* with a reason in |why|.
 */
SPK_WUR int comb_conf_open(struct comb_ctx **out, struct comb_conf *conf, void *zmq_ctx,
                           int connect_wait_ms, char *why, size_t why_len);

/*
 * comb_conf_all_records: whether every key record the file's record paths
 * name (public files only: nothing secret is opened) satisfies |pred|.
 * Returns 0 if so, SPK_ERR_UNSUPPORTED when one does not or there is none,
 * another SPK_ERR_* with |why| when a record cannot be read.
 */
SPK_WUR int comb_conf_all_records(const struct comb_conf *conf,
                                  bool (*pred)(const struct proto_record *rec, void *arg),
                                  void *arg, char *why, size_t why_len);

/*
 * comb_open_config: comb_conf_load of |path| then comb_conf_open, waiting up
 * to the configured timeout for the holders to connect. *out_conf (may be
 * NULL) receives the configuration (clean it up); else it is cleaned here.
 */
SPK_WUR int comb_open_config(struct comb_ctx **out, struct comb_conf *out_conf, const char *path,
                             char *why, size_t why_len);

/* comb_conf_find_client: the client line called |name|, or NULL. */
const struct comb_conf_client *comb_conf_find_client(const struct comb_conf *conf,
                                                     const char *name);

/* comb_conf_find_key: index of |key_id| in conf->keys, or -1. */
long comb_conf_find_key(const struct comb_conf *conf, const uint8_t key_id[PROTO_KEY_ID_LEN]);

/* ==== the remote share source (comb_source_remote.c) ==================== */

/*
 * comb_add_remote_source adds a share source for one share-holder daemon:
 * a DEALER with CURVE client security (|me|'s transport keypair, the holder's
 * |holder->curve_pk|) to |holder->endpoint|, under |holder->name|. Each fetch
 * becomes one SHARE_REQUEST with a deadline of |timeout_ms|; its share is
 * opened from the frame straight into the fetch's locked slot. Replies after
 * the deadline or after the combiner had enough shares are dropped. A holder
 * that cannot be reached makes the fetch fail at once (SPK_ERR_UNAVAILABLE)
 * instead of waiting, and its connection is made anew (at most every
 * COMB_REMOTE_RECONNECT_MS) so that a restarted holder is used again within
 * moments. |key_ids| (|num_key_ids| entries; NULL: every key) are the keys
 * this holder is asked for. |zmq_ctx| NULL: a process-wide context shared by
 * all remote sources, ended with the last one. |me| is copied into locked
 * memory. The combiner owns the source. 0 or SPK_ERR_* with a reason in
 * comb_last_error(c).
 */
#define COMB_REMOTE_RECONNECT_MS 250

SPK_WUR int comb_add_remote_source(struct comb_ctx *c, size_t *out_id, void *zmq_ctx,
                                   const struct proto_holder_secret *me,
                                   const struct comb_conf_holder *holder,
                                   const uint8_t (*key_ids)[PROTO_KEY_ID_LEN], size_t num_key_ids,
                                   unsigned timeout_ms);

/*
 * comb_remote_wait_connected waits up to |timeout_ms| until every remote
 * source of |c| is connected to its holder (CURVE handshake and the holder's
 * ZAP check done). Returns how many are connected. Remote sources are found
 * through a registry keyed by |c|; other sources are ignored.
 */
size_t comb_remote_wait_connected(struct comb_ctx *c, int timeout_ms);

/*
 * comb_remote_connected probes, without blocking, the remote sources of |c|
 * that were not yet found connected, and returns how many are; *out_total
 * (may be NULL) gets how many there are. For warm-up after a (re)load.
 */
size_t comb_remote_connected(struct comb_ctx *c, size_t *out_total);

/* comb_remote_fn: one remote source's holder, whether it was found
 * connected, and its share latency histogram (answered requests). */
typedef void (*comb_remote_fn)(void *arg, const char *name, const char *endpoint, bool connected,
                               const struct spk_hist *latency);

/* comb_remote_each calls |fn| for every remote source of |c| (newest first);
 * returns how many. For metrics and start-up reports. */
size_t comb_remote_each(struct comb_ctx *c, comb_remote_fn fn, void *arg);

#endif
