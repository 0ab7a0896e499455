/*
 * comb-testclient: a small client of `combiner run` for the integration
 * tests, speaking OP_REQUEST as any client would (the edge or another one).
 *
 *   comb-testclient [--timeout MS] [--curve SERVER_Z85 CLIENT.key]
 *                   ENDPOINT KEYID_HEX OP INPUT_HEX [OP INPUT_HEX ...]
 *
 * ENDPOINT is unix:// (SOCK_SEQPACKET), ipc:// or tcp:// (ZeroMQ). A
 * unix:// socket it may not connect to (its mode) counts as no answer, as
 * ZeroMQ's silent refusal does.
 * Every operation is sent at once (so the combiner reads them together),
 * then one line per operation, in order: "ok HEX", "error CODE-TEXT: TEXT"
 * or "no answer". Exit 0 when every operation was answered with a result,
 * 1 when one got an ERROR, 3 when one got no answer within the timeout.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "base/base.h"
#include "proto/proto.h"
#include "split/split.h"

#define TC_OPS_MAX 64

struct tc_op {
    uint8_t op;
    uint8_t in[PROTO_BN_MAX];
    size_t in_len;
    int state; /* 0 waiting, 1 ok, 2 error */
    char line[2 * PROTO_BN_MAX + PROTO_ERR_TEXT_MAX + 64];
};

static int tc_usage(void)
{
    fprintf(stderr, "usage: comb-testclient [--timeout MS] [--curve SERVER_Z85 CLIENT.key] "
                    "ENDPOINT KEYID_HEX OP INPUT_HEX [OP INPUT_HEX ...]\n");
    return 2;
}

static bool tc_hex(const char *hex, uint8_t *out, size_t cap, size_t *out_len)
{
    return sodium_hex2bin(out, cap, hex, strlen(hex), NULL, out_len, NULL) == 0 &&
           *out_len == strlen(hex) / 2;
}

static void tc_request(struct proto_msg *m, const uint8_t key_id[PROTO_KEY_ID_LEN],
                       const struct tc_op *o, uint64_t req_id)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_MSG_OP_REQUEST;
    m->req_id = req_id;
    memcpy(m->u.op_req.key_id, key_id, PROTO_KEY_ID_LEN);
    m->u.op_req.op = o->op;
    memcpy(m->u.op_req.input, o->in, o->in_len);
    m->u.op_req.input_len = o->in_len;
}

/* tc_answer records the answer |buf| of |n| bytes; true when it was one. */
static bool tc_answer(struct tc_op *ops, size_t num_ops, const uint8_t *buf, int n)
{
    static struct proto_msg m;
    struct tc_op *o;

    if (n <= 0 || proto_msg_decode(&m, buf, (size_t)n) != 0 || m.req_id == 0 ||
        m.req_id > num_ops || ops[m.req_id - 1].state != 0) {
        return false;
    }
    o = &ops[m.req_id - 1];
    if (m.type == PROTO_MSG_OP_RESPONSE) {
        memcpy(o->line, "ok ", 3);
        sodium_bin2hex(o->line + 3, sizeof(o->line) - 3, m.u.op_resp.result,
                       m.u.op_resp.result_len);
        o->state = 1;
    } else if (m.type == PROTO_MSG_ERROR) {
        snprintf(o->line, sizeof(o->line), "error %s: %s",
                 spk_strerror(proto_err_from_wire(m.u.error.code)), m.u.error.text);
        o->state = 2;
    } else {
        return false;
    }
    return true;
}

static int tc_report(const struct tc_op *ops, size_t num_ops)
{
    int status = 0;

    for (size_t k = 0; k < num_ops; k++) {
        if (ops[k].state == 0) {
            puts("no answer");
            status = 3;
        } else {
            puts(ops[k].line);
            if (ops[k].state == 2 && status == 0) {
                status = 1;
            }
        }
    }
    return status;
}

/* tc_unix: the same over a unix:// SOCK_SEQPACKET connection. */
static int tc_unix(const char *endpoint, const uint8_t key_id[PROTO_KEY_ID_LEN], struct tc_op *ops,
                   size_t num_ops, int timeout_ms)
{
    static struct proto_msg m;
    static uint8_t buf[PROTO_MSG_MAX];
    uint64_t deadline = spk_now_ms() + (uint64_t)timeout_ms;
    size_t answered = 0, len = 0;
    int fd = -1;
    int r;

    if ((r = spk_unix_connect(&fd, endpoint)) != 0) {
        fprintf(stderr, "comb-testclient: cannot connect to %s: %s (%s)\n", endpoint,
                spk_strerror(r), strerror(errno));
        return tc_report(ops, num_ops);
    }
    for (size_t k = 0; k < num_ops; k++) {
        tc_request(&m, key_id, &ops[k], k + 1);
        if (proto_msg_encode(buf, sizeof(buf), &len, &m) != 0 ||
            send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
            fprintf(stderr, "comb-testclient: cannot send: %s\n", strerror(errno));
            break;
        }
    }
    while (answered < num_ops && spk_now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t n;

        if (poll(&pfd, 1, (int)(deadline - spk_now_ms())) <= 0) {
            continue;
        }
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0) {
            break; /* the combiner closed the connection: refused */
        }
        if (n > 0 && tc_answer(ops, num_ops, buf, (int)n)) {
            answered++;
        }
    }
    close(fd);
    return tc_report(ops, num_ops);
}

int main(int argc, char **argv)
{
    static struct tc_op ops[TC_OPS_MAX];
    static struct proto_msg m;
    static uint8_t buf[PROTO_MSG_MAX];
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t server_pk[PROTO_X25519_LEN];
    struct proto_holder_secret *me = NULL;
    const char *curve_server = NULL;
    const char *curve_key = NULL;
    int timeout_ms = 3000;
    size_t num_ops = 0, answered = 0, len = 0;
    void *ctx, *sock;
    int zero = 0;
    int i = 1;
    int status = 0;
    uint64_t deadline;

    if (sodium_init() < 0) {
        return 2;
    }
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout_ms = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--curve") == 0 && i + 2 < argc) {
            curve_server = argv[++i];
            curve_key = argv[++i];
        } else {
            return tc_usage();
        }
    }
    if (argc - i < 4 || (argc - i) % 2 != 0 || !tc_hex(argv[i + 1], key_id, sizeof(key_id), &len) ||
        len != PROTO_KEY_ID_LEN) {
        return tc_usage();
    }
    for (int j = i + 2; j + 1 < argc && num_ops < TC_OPS_MAX; j += 2) {
        struct tc_op *o = &ops[num_ops++];
        o->op = proto_op_from_name(argv[j]);
        if (o->op == 0 || !tc_hex(argv[j + 1], o->in, sizeof(o->in), &o->in_len)) {
            fprintf(stderr, "comb-testclient: bad operation '%s' or input\n", argv[j]);
            return 2;
        }
    }
    if (spk_endpoint_is_unix(argv[i])) {
        return tc_unix(argv[i], key_id, ops, num_ops, timeout_ms);
    }
    ctx = zmq_ctx_new();
    sock = zmq_socket(ctx, ZMQ_DEALER);
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    if (curve_server != NULL) {
        if (zmq_z85_decode(server_pk, curve_server) == NULL ||
            split_holder_secret_load(&me, curve_key) != 0) {
            fprintf(stderr, "comb-testclient: bad --curve key or key file\n");
            return 2;
        }
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pk, sizeof(server_pk));
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, me->pub.curve_pk, PROTO_X25519_LEN);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, me->curve_sk, PROTO_X25519_LEN);
        spk_secret_free(me);
    }
    if (zmq_connect(sock, argv[i]) != 0) {
        fprintf(stderr, "comb-testclient: cannot connect to %s\n", argv[i]);
        return 2;
    }
    /* Queued by ZeroMQ until connected; all go out together. A DEALER
     * whose only connection failed its CURVE handshake (a refused key) has
     * no peer left, and zmq_send would block for good: sending, too, ends
     * at the deadline, and what was not sent is unanswered. */
    deadline = spk_now_ms() + (uint64_t)timeout_ms;
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
    for (size_t k = 0; k < num_ops; k++) {
        tc_request(&m, key_id, &ops[k], k + 1);
        if (proto_msg_encode(buf, sizeof(buf), &len, &m) != 0 ||
            zmq_send(sock, buf, len, 0) != (int)len) {
            fprintf(stderr, "comb-testclient: cannot send: %s\n", zmq_strerror(zmq_errno()));
            deadline = 0;
            break;
        }
    }
    while (answered < num_ops && spk_now_ms() < deadline) {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        int n;

        if (zmq_poll(&item, 1, (long)(deadline - spk_now_ms())) <= 0) {
            continue;
        }
        n = zmq_recv(sock, buf, sizeof(buf), 0);
        if (n > 0 && (size_t)n <= sizeof(buf) && tc_answer(ops, num_ops, buf, n)) {
            answered++;
        }
    }
    status = tc_report(ops, num_ops);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return status;
}
