/*
 * sh-testclient: a small share-holder client for the integration tests.
 *
 *   sh-testclient fetch   --key C.key --holder ENDPOINT H.pub [--holder ...]
 *                         --key-id HEX [--op NAME] [--op-count N] [--record FILE]
 *                         [--count N] [--timeout MS] [--connect-wait MS]
 *   sh-testclient ping    --key C.key --holder ENDPOINT H.pub [...] [--connect-wait MS]
 *   sh-testclient garbage --key C.key --holder ENDPOINT H.pub --count N
 *   sh-testclient big     --key C.key --holder ENDPOINT H.pub
 *
 * fetch prints one line per result: "holder NAME ok index=I [verified]" or
 * "holder NAME error CODE", and exits 0 only if every result was ok (and
 * verified against the record's commitment when --record is given). A fetch
 * claims --op-count operations (default 1) whose inputs are the strings
 * "sh-testclient-0", "sh-testclient-1", ..., digested as PROTOCOL.md 7.3 says.
 * garbage sends malformed frames of many kinds on a raw CURVE DEALER and
 * prints "garbage sent=N replies=M errors=E".
 * big sends one frame of each size from PROTO_MSG_MAX - 32 to PROTO_MSG_MAX
 * (a PING header whose body does not decode) and prints "big sent=N
 * answered=M" counting the ERROR malformed answers naming each frame's
 * request id; then one frame of PROTO_MSG_MAX + 1 and prints "over
 * answered=0|1".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "share-holder/share-holder.h"
#include "split/split.h"

#define HOLDERS_MAX 16

struct tc {
    const char *key_path;
    const char *endpoints[HOLDERS_MAX];
    const char *pubs[HOLDERS_MAX];
    char names[HOLDERS_MAX][PROTO_NAME_MAX + 1];
    uint8_t server_pks[HOLDERS_MAX][PROTO_X25519_LEN];
    size_t num_holders;
    const char *key_id_hex;
    const char *op_name;
    unsigned op_count;
    const char *record_path;
    unsigned long count;
    int timeout_ms;
    int connect_wait_ms;
    struct proto_record *rec;
    struct split_field field;
    unsigned num_ok;
    unsigned num_failed;
    bool quiet_ok;
    bool probing; /* connect_wait: results only feed the health counters */
};

static const char *err_name(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case SPK_ERR_UNKNOWN_KEY:
        return "unknown-key";
    case SPK_ERR_NOT_ALLOWED:
        return "not-allowed";
    case SPK_ERR_RATE_LIMITED:
        return "rate-limited";
    case SPK_ERR_MALFORMED:
        return "malformed";
    case SPK_ERR_VERSION:
        return "version";
    case SPK_ERR_TIMEOUT:
        return "timeout";
    case SPK_ERR_UNAVAILABLE:
        return "unavailable";
    case SPK_ERR_UNSEAL:
        return "unseal";
    case SPK_ERR_COMMITMENT:
        return "commitment";
    case SPK_ERR_UNSUPPORTED:
        return "unsupported";
    case SPK_ERR_INTERNAL:
        return "internal";
    default:
        return "other";
    }
}

static void on_result(void *ctx, const struct sh_result *res)
{
    struct tc *tc = ctx;
    const char *name = tc->names[res->holder];
    int status = res->status;
    bool verified = false;

    if (tc->probing) {
        return;
    }
    if (status == 0 && res->type == PROTO_MSG_SHARE_RESPONSE && tc->rec != NULL) {
        struct split_opened_share os;

        memset(&os, 0, sizeof(os));
        memcpy(os.key_id, res->key_id, sizeof(os.key_id));
        memcpy(os.split_id, res->split_id, sizeof(os.split_id));
        os.index = res->index;
        os.holder = name;
        os.y = res->y;
        if (res->y_len != split_tuple_len(&tc->field)) {
            status = SPK_ERR_COMMITMENT;
        } else if ((status = split_share_check(tc->rec, &tc->field, &os)) == 0) {
            verified = true;
        }
    }
    if (status == 0) {
        tc->num_ok++;
        if (res->type == PROTO_MSG_PONG && !tc->quiet_ok) {
            printf("holder %s ok pong\n", name);
        } else if (res->type != PROTO_MSG_PONG && !tc->quiet_ok) {
            printf("holder %s ok index=%u%s\n", name, res->index, verified ? " verified" : "");
        }
    } else {
        tc->num_failed++;
        printf("holder %s error %s%s%s\n", name, err_name(status), res->text[0] ? " " : "",
               res->text);
    }
    if (res->y != NULL) {
        sodium_memzero(res->y, res->y_len);
    }
}

/* connect_wait pings every holder until it answers or the wait is over. */
static void connect_wait(struct sh_client *c, struct tc *tc, bool report)
{
    bool up[HOLDERS_MAX] = {false};
    struct timespec pause = {0, 50 * 1000 * 1000};
    int waited = 0;

    for (;;) {
        size_t num_up = 0;

        for (size_t i = 0; i < tc->num_holders; i++) {
            uint64_t id;
            struct sh_holder_health before;
            struct sh_holder_health after;

            if (up[i]) {
                num_up++;
                continue;
            }
            if (sh_client_health(c, i, &before) != 0 ||
                sh_client_ping(c, &id, i, 1000, NULL) != 0) {
                continue;
            }
            tc->probing = true;
            if (sh_client_wait(c, 1000) != 0) {
                sh_client_cancel(c, id);
            }
            tc->probing = false;
            if (sh_client_health(c, i, &after) == 0 && after.num_ok > before.num_ok) {
                up[i] = true;
                num_up++;
            }
        }
        if (num_up == tc->num_holders || waited >= tc->connect_wait_ms) {
            break;
        }
        nanosleep(&pause, NULL);
        waited += 50;
    }
    for (size_t i = 0; i < tc->num_holders && report; i++) {
        if (!up[i]) {
            printf("holder %s error unavailable\n", tc->names[i]);
            tc->num_failed++;
        }
    }
}

static int load_record(struct tc *tc)
{
    char why[PROTO_PATH_WHY_MAX];
    int r;

    tc->rec = calloc(1, sizeof(*tc->rec));
    if (tc->rec == NULL) {
        return SPK_ERR_NOMEM;
    }
    if ((r = proto_record_load(tc->rec, tc->record_path, why, sizeof(why))) != 0) {
        fprintf(stderr, "sh-testclient: %s\n", why);
    } else if ((r = split_field_init(&tc->field, tc->rec->field_bits)) != 0) {
        fprintf(stderr, "sh-testclient: record %s: %s\n", tc->record_path, spk_strerror(r));
    }
    return r;
}

static int cmd_fetch(struct sh_client *c, struct tc *tc)
{
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t digest[PROTO_SHA256_LEN];
    struct proto_ops_digest ops_digest;
    uint8_t op = PROTO_OP_SIGN_PSS_SHA256;
    uint8_t *ys[HOLDERS_MAX] = {NULL};
    uint64_t ids[HOLDERS_MAX];
    struct proto_rd hex;
    int r = 1;

    if (tc->key_id_hex == NULL) {
        fprintf(stderr, "sh-testclient: --key-id is required\n");
        return 2;
    }
    proto_rd_init(&hex, (const uint8_t *)tc->key_id_hex, strlen(tc->key_id_hex));
    if (!proto_hex_decode(&hex, key_id, sizeof(key_id))) {
        fprintf(stderr, "sh-testclient: bad --key-id\n");
        return 2;
    }
    if (tc->op_name != NULL && (op = proto_op_from_name(tc->op_name)) == 0) {
        fprintf(stderr, "sh-testclient: unknown --op\n");
        return 2;
    }
    if (tc->record_path != NULL && load_record(tc) != 0) {
        return 2;
    }
    if (tc->op_count < 1 || tc->op_count > PROTO_OP_COUNT_MAX) {
        fprintf(stderr, "sh-testclient: --op-count is 1..%d\n", PROTO_OP_COUNT_MAX);
        return 2;
    }
    proto_ops_digest_init(&ops_digest);
    for (unsigned i = 0; i < tc->op_count; i++) {
        char input[32];
        int n = snprintf(input, sizeof(input), "sh-testclient-%u", i);

        if (!proto_ops_digest_add(&ops_digest, op, (const uint8_t *)input, (size_t)n)) {
            proto_ops_digest_final(&ops_digest, digest);
            return 2;
        }
    }
    proto_ops_digest_final(&ops_digest, digest);
    for (size_t i = 0; i < tc->num_holders; i++) {
        ys[i] = spk_secret_new(PROTO_SHARE_Y_MAX);
        if (ys[i] == NULL) {
            goto out;
        }
    }
    connect_wait(c, tc, true);
    tc->quiet_ok = false;
    tc->num_ok = 0;
    for (unsigned long round = 0; round < tc->count; round++) {
        size_t sent = 0;

        if (sh_client_request_all(c, ids, &sent, key_id, op, tc->op_count, digest, ys,
                                  PROTO_SHARE_Y_MAX, tc->timeout_ms, NULL) != 0) {
            sent = 0;
        }
        for (size_t i = 0; i < tc->num_holders; i++) {
            if (ids[i] == 0) {
                printf("holder %s error unavailable\n", tc->names[i]);
                tc->num_failed++;
            }
        }
        if (sh_client_wait(c, tc->timeout_ms + 1000) != 0) {
            fprintf(stderr, "sh-testclient: wait failed\n");
        }
    }
    r = tc->num_failed == 0 ? 0 : 1;
out:
    for (size_t i = 0; i < tc->num_holders; i++) {
        spk_secret_free(ys[i]);
    }
    return r;
}

static int cmd_ping(struct sh_client *c, struct tc *tc)
{
    connect_wait(c, tc, true);
    for (size_t i = 0; i < tc->num_holders; i++) {
        uint64_t id;

        tc->quiet_ok = false;
        if (sh_client_ping(c, &id, i, tc->timeout_ms, NULL) != 0) {
            printf("holder %s error unavailable\n", tc->names[i]);
            tc->num_failed++;
        }
    }
    if (sh_client_wait(c, tc->timeout_ms + 1000) != 0) {
        return 1;
    }
    return tc->num_failed == 0 ? 0 : 1;
}

/* ---- garbage ------------------------------------------------------------------ */

static void hdr(uint8_t *b, uint8_t version, uint8_t type, uint8_t flags, uint32_t body_len)
{
    b[0] = 'S';
    b[1] = 'K';
    b[2] = version;
    b[3] = type;
    b[4] = flags;
    memset(b + 5, 0, 8);
    b[12] = 1;
    b[13] = (uint8_t)(body_len >> 24);
    b[14] = (uint8_t)(body_len >> 16);
    b[15] = (uint8_t)(body_len >> 8);
    b[16] = (uint8_t)body_len;
}

/* The raw DEALERs below send with a deadline (ZMQ_SNDTIMEO): a connection
 * that fails its handshake leaves a DEALER no peer, and a send without one
 * would wait for good. */
static int cmd_garbage(void *ctx, struct tc *tc, const struct proto_holder_secret *me)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    uint8_t b[512];
    unsigned sent = 0;
    unsigned replies = 0;
    unsigned errors = 0;
    int zero = 0;
    int64_t max = PROTO_ZMQ_MAXMSGSIZE;
    int r = 1;

    if (s == NULL || zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, tc->server_pks[0], 32) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, me->pub.curve_pk, 32) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, me->curve_sk, 32) != 0 ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &tc->timeout_ms, sizeof(tc->timeout_ms)) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0 ||
        zmq_connect(s, tc->endpoints[0]) != 0) {
        fprintf(stderr, "sh-testclient: cannot connect\n");
        goto out;
    }
#define SEND(p, n)                                                                                 \
    do {                                                                                           \
        if (zmq_send(s, (p), (n), 0) >= 0) {                                                       \
            sent++;                                                                                \
        }                                                                                          \
    } while (0)
    /* the fixed kinds */
    SEND(b, 0);
    b[0] = 'S';
    SEND(b, 1);
    hdr(b, 1, PROTO_MSG_PING, 0, 0);
    SEND(b, 10); /* truncated header */
    hdr(b, 2, PROTO_MSG_PING, 0, 0);
    SEND(b, PROTO_WIRE_HDR_LEN); /* wrong version */
    hdr(b, 1, 0x42, 0, 0);
    SEND(b, PROTO_WIRE_HDR_LEN); /* unknown type */
    hdr(b, 1, PROTO_MSG_PING, 0x80, 0);
    SEND(b, PROTO_WIRE_HDR_LEN); /* flags */
    hdr(b, 1, PROTO_MSG_SHARE_REQUEST, 0, 0xffffffffu);
    SEND(b, PROTO_WIRE_HDR_LEN + 8); /* oversized length */
    hdr(b, 1, PROTO_MSG_SHARE_REQUEST, 0, 3);
    b[17] = 0x01;
    b[18] = 0xff;
    b[19] = 0xff;
    SEND(b, PROTO_WIRE_HDR_LEN + 3); /* item length beyond the frame */
    hdr(b, 1, PROTO_MSG_SHARE_RESPONSE, 0, 0);
    SEND(b, PROTO_WIRE_HDR_LEN); /* a type a holder does not take */
    if (zmq_send(s, b, 5, ZMQ_SNDMORE) >= 0 && zmq_send(s, b, 5, 0) >= 0) {
        sent++; /* multipart */
    }
    /* then random frames, some with a valid header in front */
    for (unsigned long i = 0; i < tc->count; i++) {
        size_t n = randombytes_uniform(300);

        randombytes_buf(b, n);
        if (i % 3 == 0 && n >= PROTO_WIRE_HDR_LEN) {
            hdr(b, 1, (uint8_t)(1 + randombytes_uniform(7)), 0,
                (uint32_t)(n - PROTO_WIRE_HDR_LEN + randombytes_uniform(3)) - 1);
        }
        SEND(b, n);
    }
#undef SEND
    /* collect what comes back for a while; the holder answers or drops */
    for (;;) {
        zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
        struct proto_msg *m = NULL;
        static uint8_t in[PROTO_MSG_MAX];
        int n;

        if (zmq_poll(&item, 1, 1500) <= 0) {
            break;
        }
        n = zmq_recv(s, in, sizeof(in), ZMQ_DONTWAIT);
        if (n < 0) {
            continue;
        }
        replies++;
        m = calloc(1, sizeof(*m));
        if (m != NULL && proto_msg_decode(m, in, (size_t)n) == 0 && m->type == PROTO_MSG_ERROR) {
            errors++;
        }
        free(m);
    }
    /* last, a frame over PROTO_MSG_MAX: the holder drops this connection */
    {
        uint8_t *big = calloc(1, PROTO_MSG_MAX + 1);
        struct timespec pause = {0, 200 * 1000 * 1000};

        if (big != NULL && zmq_send(s, big, PROTO_MSG_MAX + 1, 0) >= 0) {
            sent++;
        }
        free(big);
        nanosleep(&pause, NULL);
    }
    printf("garbage sent=%u replies=%u errors=%u\n", sent, replies, errors);
    r = 0;
out:
    if (s != NULL) {
        zmq_close(s);
    }
    return r;
}

/* big_answer: the request id of the next ERROR malformed answer on |s|
 * within |wait_ms|, or 0. */
static uint64_t big_answer(void *s, int wait_ms)
{
    static uint8_t in[PROTO_MSG_MAX];
    static struct proto_msg m;
    zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
    int n;

    if (zmq_poll(&item, 1, wait_ms) <= 0) {
        return 0;
    }
    n = zmq_recv(s, in, sizeof(in), ZMQ_DONTWAIT);
    if (n < 0 || (size_t)n > sizeof(in) || proto_msg_decode(&m, in, (size_t)n) != 0 ||
        m.type != PROTO_MSG_ERROR || proto_err_from_wire(m.u.error.code) != SPK_ERR_MALFORMED) {
        return 0;
    }
    return m.req_id;
}

static int cmd_big(void *ctx, struct tc *tc, const struct proto_holder_secret *me)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    uint8_t *b = calloc(1, PROTO_MSG_MAX + 1);
    unsigned sent = 0;
    unsigned answered = 0;
    int zero = 0;
    int64_t max = PROTO_ZMQ_MAXMSGSIZE;
    int r = 1;

    if (b == NULL || s == NULL ||
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, tc->server_pks[0], 32) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, me->pub.curve_pk, 32) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, me->curve_sk, 32) != 0 ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &tc->timeout_ms, sizeof(tc->timeout_ms)) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0 ||
        zmq_connect(s, tc->endpoints[0]) != 0) {
        fprintf(stderr, "sh-testclient: cannot connect\n");
        goto out;
    }
    /* one at a time: a dropped connection loses only the frame in flight */
    for (size_t size = PROTO_MSG_MAX - 32; size <= PROTO_MSG_MAX; size++) {
        hdr(b, 1, PROTO_MSG_PING, 0, (uint32_t)(size - PROTO_WIRE_HDR_LEN));
        b[10] = (uint8_t)(size >> 16); /* the request id is the size */
        b[11] = (uint8_t)(size >> 8);
        b[12] = (uint8_t)size;
        if (zmq_send(s, b, size, 0) < 0) {
            continue;
        }
        sent++;
        if (big_answer(s, tc->timeout_ms) == (uint64_t)size) {
            answered++;
        }
    }
    printf("big sent=%u answered=%u\n", sent, answered);
    hdr(b, 1, PROTO_MSG_PING, 0, PROTO_MSG_MAX + 1 - PROTO_WIRE_HDR_LEN);
    if (zmq_send(s, b, PROTO_MSG_MAX + 1, 0) >= 0) {
        printf("over answered=%d\n", big_answer(s, 1000) != 0 ? 1 : 0);
    }
    r = 0;
out:
    free(b);
    if (s != NULL) {
        zmq_close(s);
    }
    return r;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: sh-testclient fetch|ping|garbage|big --key C.key --holder ENDPOINT H.pub "
        "... [--key-id HEX] [--op NAME] [--op-count N] [--record FILE] [--count N] [--timeout MS] "
        "[--connect-wait MS]\n");
}

int main(int argc, char **argv)
{
    static struct tc tc;
    struct proto_holder_secret *me = NULL;
    struct sh_client *c = NULL;
    void *ctx = NULL;
    const char *cmd;
    int r = 2;

    if (argc < 2) {
        usage();
        return 2;
    }
    cmd = argv[1];
    tc.count = 1;
    tc.op_count = 1;
    tc.timeout_ms = 2000;
    tc.connect_wait_ms = 5000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--key") == 0 && i + 1 < argc) {
            tc.key_path = argv[++i];
        } else if (strcmp(a, "--holder") == 0 && i + 2 < argc && tc.num_holders < HOLDERS_MAX) {
            tc.endpoints[tc.num_holders] = argv[++i];
            tc.pubs[tc.num_holders++] = argv[++i];
        } else if (strcmp(a, "--key-id") == 0 && i + 1 < argc) {
            tc.key_id_hex = argv[++i];
        } else if (strcmp(a, "--op") == 0 && i + 1 < argc) {
            tc.op_name = argv[++i];
        } else if (strcmp(a, "--op-count") == 0 && i + 1 < argc) {
            tc.op_count = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(a, "--record") == 0 && i + 1 < argc) {
            tc.record_path = argv[++i];
        } else if (strcmp(a, "--count") == 0 && i + 1 < argc) {
            tc.count = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            tc.timeout_ms = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--connect-wait") == 0 && i + 1 < argc) {
            tc.connect_wait_ms = (int)strtol(argv[++i], NULL, 10);
        } else {
            usage();
            return 2;
        }
    }
    if (tc.key_path == NULL || tc.num_holders == 0 || spk_mem_init() != 0) {
        usage();
        return 2;
    }
    if (split_holder_secret_load(&me, tc.key_path) != 0) {
        fprintf(stderr, "sh-testclient: cannot load %s\n", tc.key_path);
        return 2;
    }
    for (size_t i = 0; i < tc.num_holders; i++) {
        struct proto_holder_pub pub;

        if (split_holder_pub_load(&pub, tc.pubs[i]) != 0) {
            fprintf(stderr, "sh-testclient: cannot load %s\n", tc.pubs[i]);
            goto out;
        }
        memcpy(tc.names[i], pub.name, sizeof(tc.names[i]));
        memcpy(tc.server_pks[i], pub.curve_pk, PROTO_X25519_LEN);
    }
    ctx = zmq_ctx_new();
    if (strcmp(cmd, "garbage") == 0) {
        r = cmd_garbage(ctx, &tc, me);
        goto out;
    }
    if (strcmp(cmd, "big") == 0) {
        r = cmd_big(ctx, &tc, me);
        goto out;
    }
    c = sh_client_new(ctx, me, on_result, &tc);
    if (c == NULL) {
        goto out;
    }
    for (size_t i = 0; i < tc.num_holders; i++) {
        size_t index;

        if (sh_client_add_holder(c, &index, tc.names[i], tc.endpoints[i], tc.server_pks[i]) != 0) {
            fprintf(stderr, "sh-testclient: cannot connect to %s\n", tc.endpoints[i]);
            goto out;
        }
    }
    if (strcmp(cmd, "fetch") == 0) {
        r = cmd_fetch(c, &tc);
    } else if (strcmp(cmd, "ping") == 0) {
        r = cmd_ping(c, &tc);
    } else {
        usage();
    }
out:
    sh_client_free(c);
    if (ctx != NULL) {
        zmq_ctx_term(ctx);
    }
    spk_secret_free(me);
    free(tc.rec);
    return r;
}
