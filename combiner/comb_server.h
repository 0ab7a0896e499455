#ifndef SPK_COMB_SERVER_H
#define SPK_COMB_SERVER_H

/*
 * comb_server: `combiner run`, the combiner as a daemon. It serves
 * OP_REQUEST at the configuration's `listen` endpoint (a SOCK_SEQPACKET
 * socket for unix://, a ROUTER for ipc:// and tcp://) with a combiner built
 * by comb_conf_open, behind a door: a unix:// or ipc:// socket is created
 * 0600 (0660 with socket-group) and every connection's peer uid is checked
 * (SO_PEERCRED at accept for unix://, by a ZAP handler for ipc://) against
 * the `client NAME uid` lines; a tcp://
 * socket is a CURVE server whose ZAP handler admits the keys of the `allow`
 * file that have a `client NAME curve` line. Each request is served only if
 * its client may ask for that operation. SIGHUP builds a new generation
 * (configuration and combiner) beside the serving one; SIGTERM drains.
 *
 * comb_server.c is the loop, the door and the generations; comb_metrics.c
 * renders the counters for the `metrics` endpoint.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "combiner/comb_config.h"
#include "proto/spk_metrics.h"
#include "share-holder/share-holder.h"

#define COMB_SERVER_ID_MAX 256  /* ROUTER identities are at most 255 bytes */
#define COMB_SERVER_CONN_MAX 64 /* unix:// connections at once */

struct comb_server_opts {
    const char *config_path;
    const char *listen;  /* overrides the file's listen; NULL: the file's */
    bool no_metrics;     /* ignore the file's metrics (a second combiner for a check) */
    bool allow_unlocked; /* --allow-unlocked (the file's allow-unlocked counts too) */
};

/*
 * comb_server_run hardens the process, builds the combiner, binds and serves
 * until SIGTERM/SIGINT, or until the process that started it is gone (its
 * parent pid changes; under an init system it never does). Returns
 * the exit status: 0 after a clean stop, 1 when start-up fails (one line on
 * stderr says why).
 */
int comb_server_run(const struct comb_server_opts *opts);

/* ---- shared by comb_server.c and comb_metrics.c --------------------------------- */

/* One configuration and the combiner it built. */
struct comb_gen {
    struct comb_conf conf;
    struct comb_ctx *comb;
    struct sh_allow allow; /* the `allow` file's CURVE clients (tcp://) */
    uint64_t warm_deadline_ms;
};

/* An answer waiting for its unix:// client to read (the socket was full). */
struct comb_unix_out {
    struct comb_unix_out *next;
    size_t len;
    uint8_t frame[];
};

/* One unix:// client connection, admitted by its peer uid. */
struct comb_unix_conn {
    int fd;                          /* -1: slot free */
    uint64_t gen;                    /* answers for an earlier holder of the slot are dropped */
    char client[PROTO_NAME_MAX + 1]; /* its `client NAME uid` line */
    struct comb_unix_out *out_head, *out_tail;
    size_t num_out;
    bool warned; /* answers were dropped (logged once) */
};

struct comb_server {
    void *zctx;
    void *router; /* ipc:// and tcp://; NULL for unix:// */
    int unix_fd;  /* unix://: the listening SOCK_SEQPACKET socket; else -1 */
    struct comb_unix_conn conns[COMB_SERVER_CONN_MAX];
    uint64_t next_conn_gen;
    uint64_t unix_ino; /* the socket file we bound (removed at stop if still ours) */
    uint8_t *unix_in;  /* COMB_UNIX_BATCH requests of at most COMB_UNIX_REQ_MAX bytes */
    void *zap;
    char listen[COMB_CONF_ENDPOINT_MAX];
    bool tcp;
    struct comb_gen *cur;
    struct comb_gen *next; /* warming up after SIGHUP */
    struct comb_gen *old;  /* draining after a switch */
    int sigfd;
    uint64_t num_ok, num_failed, num_refused_ops, num_refused_peers;
    uint64_t reloads_ok, reloads_failed;
    struct spk_mserver metrics; /* stream NULL: no metrics endpoint */
    uint8_t *frame;             /* PROTO_MSG_MAX: requests and answers (wiped after use) */
    struct proto_msg *msg;
};

/* comb_metrics_render is the spk_mserver_render_fn of the combiner (|arg| is
 * the struct comb_server). */
void comb_metrics_render(void *arg, struct spk_text *t);

#endif
