#ifndef SPK_SHARE_HOLDER_INTERNAL_H
#define SPK_SHARE_HOLDER_INTERNAL_H

/* Private declarations of the share-holder library, visible to its unit tests. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/proto.h"
#include "share-holder/share-holder.h"

/* ---- the shares this holder serves (sh_store.c) ---------------------------- */

struct sh_share {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t index;
    unsigned field_bits;
    unsigned threshold;
    unsigned num_shares;
    uint8_t *y; /* spk_secret_new, kept noaccess while idle */
    size_t y_len;
};

struct sh_store {
    struct sh_share *shares;
    size_t num_shares;
    size_t num_skipped; /* files reported and not loaded */
};

/*
 * sh_store_load opens every *.share file in |dir| addressed to |key|'s holder
 * into secret memory (noaccess when idle). Files for other holders, files that
 * do not decode or open, and shares that do not match a KEYID.record in |dir|
 * (when there is one) are reported on |report| and skipped; of two shares of
 * one key id, the first by file name is kept. Returns 0 when at least one
 * share was loaded, SPK_ERR_UNKNOWN_KEY when none was, or another SPK_ERR_*.
 * Release with sh_store_cleanup (wipes; safe after zero-init or failure).
 */
SPK_WUR int sh_store_load(struct sh_store *out, const char *dir,
                          const struct proto_holder_secret *key, FILE *report);
void sh_store_cleanup(struct sh_store *store);
struct sh_share *sh_store_find(const struct sh_store *store,
                               const uint8_t key_id[PROTO_KEY_ID_LEN]);

/* ---- share sessions, holder side (sh_session.c) ---------------------------- */

#define SH_SESSIONS_MAX 256

struct sh_session {
    uint8_t client_pk[PROTO_X25519_LEN];    /* CURVE key of the connection */
    uint8_t requester_pk[PROTO_X25519_LEN]; /* crypto_kx client key it sent */
    uint8_t session_pk[PROTO_X25519_LEN];   /* our crypto_kx server key */
    uint64_t last_used;
    bool used;
};

struct sh_sessions {
    struct sh_session entries[SH_SESSIONS_MAX];
    uint8_t *tx; /* SH_SESSIONS_MAX * crypto_kx_SESSIONKEYBYTES, secret memory */
    uint64_t clock;
};

SPK_WUR int sh_sessions_init(struct sh_sessions *s);
void sh_sessions_cleanup(struct sh_sessions *s);

/*
 * sh_share_response_build writes the SHARE_RESPONSE frame for |share| into
 * |out| (PROTO_MSG_MAX bytes): the share sealed with the session of
 * (|client_pk|, |requester_pk|), made and cached on first use (least recently
 * used session evicted). The share's memory is readable only while it is
 * being encrypted. 0 or SPK_ERR_*.
 */
SPK_WUR int sh_share_response_build(struct sh_sessions *s, uint8_t *out, size_t cap,
                                    size_t *out_len, uint64_t req_id,
                                    const uint8_t client_pk[PROTO_X25519_LEN],
                                    const uint8_t requester_pk[PROTO_X25519_LEN],
                                    const struct sh_share *share);

/* ---- token buckets (sh_server.c) ------------------------------------------ */

struct sh_bucket {
    uint8_t pk[PROTO_X25519_LEN];
    double tokens;
    uint64_t last_ms;
};

/* sh_bucket_take refills |b| at |rate| per second up to |burst| as of
 * |now_ms| and takes one token: true if there was one. */
bool sh_bucket_take(struct sh_bucket *b, double rate, unsigned burst, uint64_t now_ms);

/* sh_now_ms: CLOCK_MONOTONIC in milliseconds. */
uint64_t sh_now_ms(void);

#endif
