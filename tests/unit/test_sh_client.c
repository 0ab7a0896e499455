#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "share-holder/internal.h"
#include "base/base.h"

/*
 * The holder client against an in-process CURVE ROUTER that plays the holder:
 * replies of every kind, late and cancelled replies, timeouts, garbage,
 * tampered shares, and a holder that is not there.
 */

#define Y_LEN (5 * 160)

struct fixture {
    void *ctx;
    void *router;
    char endpoint[128];
    struct proto_holder_secret *me;
    struct sh_client *c;
    size_t holder;
    struct sh_sessions sessions;
    struct sh_share share;
    uint8_t plain[Y_LEN];
    uint8_t *out_y;
    /* what the callback saw */
    unsigned num_results;
    struct sh_result last;
    uint8_t last_y[Y_LEN];
    /* what the server saw */
    uint8_t peer_id[256];
    size_t peer_id_len;
    struct proto_msg req;
    uint8_t frame[PROTO_MSG_MAX];
};

static void on_result(void *ctx, const struct sh_result *res)
{
    struct fixture *fx = ctx;

    fx->num_results++;
    fx->last = *res;
    if (res->status == 0 && res->y != NULL) {
        memcpy(fx->last_y, res->y, res->y_len < Y_LEN ? res->y_len : Y_LEN);
    }
}

/* srv_recv: the next request at the fake holder (fails the test if none). */
static void srv_recv(struct fixture *fx)
{
    zmq_pollitem_t item = {fx->router, 0, ZMQ_POLLIN, 0};
    int n;

    assert_int_equal(zmq_poll(&item, 1, 3000), 1);
    n = zmq_recv(fx->router, fx->peer_id, sizeof(fx->peer_id), 0);
    assert_true(n > 0);
    fx->peer_id_len = (size_t)n;
    n = zmq_recv(fx->router, fx->frame, sizeof(fx->frame), 0);
    assert_true(n >= 0);
    assert_int_equal(proto_msg_decode(&fx->req, fx->frame, (size_t)n), 0);
}

static void srv_send(struct fixture *fx, const uint8_t *frame, size_t len)
{
    assert_true(zmq_send(fx->router, fx->peer_id, fx->peer_id_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(fx->router, frame, len, 0) >= 0);
}

static void srv_send_msg(struct fixture *fx, const struct proto_msg *m)
{
    static uint8_t out[PROTO_MSG_MAX];
    size_t len = 0;

    assert_int_equal(proto_msg_encode(out, sizeof(out), &len, m), 0);
    srv_send(fx, out, len);
}

/* srv_share: the share response a real holder would send to fx->req. */
static size_t srv_share(struct fixture *fx, uint8_t *out)
{
    size_t len = 0;

    assert_int_equal(sh_share_response_build(&fx->sessions, out, PROTO_MSG_MAX, &len,
                                             fx->req.req_id, fx->me->pub.curve_pk,
                                             fx->req.u.share_req.requester_pk, &fx->share),
                     0);
    return len;
}

static int setup(void **state)
{
    static struct fixture fx;
    uint8_t server_pk[32];
    uint8_t server_sk[32];
    int one = 1;
    size_t len = sizeof(fx.endpoint);
    struct timespec pause = {0, 20 * 1000 * 1000};

    memset(&fx, 0, sizeof(fx));
    if (spk_mem_init() != 0 || sh_sessions_init(&fx.sessions) != 0) {
        return -1;
    }
    fx.me = spk_secret_new(sizeof(*fx.me));
    fx.share.y = spk_secret_new(Y_LEN);
    fx.out_y = spk_secret_new(Y_LEN);
    if (fx.me == NULL || fx.share.y == NULL || fx.out_y == NULL) {
        return -1;
    }
    crypto_box_keypair(fx.me->pub.curve_pk, fx.me->curve_sk);
    crypto_box_keypair(server_pk, server_sk);
    memset(fx.share.key_id, 0x5a, 32);
    memset(fx.share.split_id, 0x6b, 16);
    fx.share.index = 2;
    fx.share.field_bits = 1279;
    fx.share.y_len = Y_LEN;
    randombytes_buf(fx.plain, Y_LEN);
    memcpy(fx.share.y, fx.plain, Y_LEN);

    fx.ctx = zmq_ctx_new();
    fx.router = zmq_socket(fx.ctx, ZMQ_ROUTER);
    if (zmq_setsockopt(fx.router, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(fx.router, ZMQ_CURVE_SECRETKEY, server_sk, 32) != 0 ||
        zmq_bind(fx.router, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(fx.router, ZMQ_LAST_ENDPOINT, fx.endpoint, &len) != 0) {
        return -1;
    }
    fx.c = sh_client_new(fx.ctx, fx.me, on_result, &fx);
    if (fx.c == NULL ||
        sh_client_add_holder(fx.c, &fx.holder, "fake", fx.endpoint, server_pk) != 0) {
        return -1;
    }
    /* wait for the CURVE handshake: sends fail fast until it is done */
    for (int i = 0; i < 250; i++) {
        uint64_t id;

        if (sh_client_ping(fx.c, &id, fx.holder, 1000, NULL) == 0) {
            srv_recv(&fx);
            sh_client_cancel(fx.c, id);
            *state = &fx;
            return 0;
        }
        nanosleep(&pause, NULL);
    }
    return -1;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    sh_client_free(fx->c);
    zmq_close(fx->router);
    zmq_ctx_term(fx->ctx);
    sh_sessions_cleanup(&fx->sessions);
    spk_secret_free(fx->share.y);
    spk_secret_free(fx->out_y);
    spk_secret_free(fx->me);
    return 0;
}

static uint64_t request(struct fixture *fx, int timeout_ms)
{
    uint8_t digest[32] = {1};
    uint64_t id = 0;

    assert_int_equal(sh_client_request(fx->c, &id, fx->holder, fx->share.key_id,
                                       PROTO_OP_SIGN_PKCS1_SHA256, 1, digest, fx->out_y, Y_LEN,
                                       timeout_ms, fx),
                     0);
    assert_int_not_equal(id, 0);
    return id;
}

static void test_ping(void **state)
{
    struct fixture *fx = *state;
    struct proto_msg pong;
    uint64_t id = 0;
    struct sh_holder_health h;

    fx->num_results = 0;
    assert_int_equal(sh_client_ping(fx->c, &id, fx->holder, 2000, NULL), 0);
    assert_int_equal(sh_client_pending(fx->c), 1);
    srv_recv(fx);
    assert_int_equal(fx->req.type, PROTO_MSG_PING);
    assert_true(fx->req.req_id == id);
    memset(&pong, 0, sizeof(pong));
    pong.type = PROTO_MSG_PONG;
    pong.req_id = id;
    srv_send_msg(fx, &pong);
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 1);
    assert_int_equal(fx->last.status, 0);
    assert_int_equal(fx->last.type, PROTO_MSG_PONG);
    assert_true(fx->last.req_id == id);
    assert_int_equal(sh_client_pending(fx->c), 0);
    assert_int_equal(sh_client_health(fx->c, fx->holder, &h), 0);
    assert_string_equal(h.name, "fake");
    assert_true(h.num_ok >= 1);
    assert_true(h.ewma_latency_us > 0);
    assert_int_equal(sh_client_health(fx->c, 7, &h), SPK_ERR_INVALID_ARG);
}

static void test_share(void **state)
{
    struct fixture *fx = *state;
    static uint8_t out[PROTO_MSG_MAX];
    uint64_t id;
    size_t len;

    fx->num_results = 0;
    id = request(fx, 2000);
    srv_recv(fx);
    assert_int_equal(fx->req.type, PROTO_MSG_SHARE_REQUEST);
    assert_int_equal(fx->req.u.share_req.op, PROTO_OP_SIGN_PKCS1_SHA256);
    len = srv_share(fx, out);
    srv_send(fx, out, len);
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 1);
    assert_int_equal(fx->last.status, 0);
    assert_true(fx->last.req_id == id);
    assert_ptr_equal(fx->last.user, fx);
    assert_int_equal(fx->last.index, 2);
    assert_int_equal(fx->last.field_bits, 1279);
    assert_int_equal(fx->last.y_len, Y_LEN);
    assert_ptr_equal(fx->last.y, fx->out_y);
    assert_memory_equal(fx->out_y, fx->plain, Y_LEN);
    assert_memory_equal(fx->last.split_id, fx->share.split_id, 16);
    sodium_memzero(fx->out_y, Y_LEN);

    /* a second share over the same session */
    id = request(fx, 2000);
    srv_recv(fx);
    len = srv_share(fx, out);
    srv_send(fx, out, len);
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 2);
    assert_int_equal(fx->last.status, 0);
    assert_memory_equal(fx->out_y, fx->plain, Y_LEN);
    sodium_memzero(fx->out_y, Y_LEN);
}

static void test_error_reply(void **state)
{
    struct fixture *fx = *state;
    struct proto_msg m;

    fx->num_results = 0;
    (void)request(fx, 2000);
    srv_recv(fx);
    memset(&m, 0, sizeof(m));
    m.type = PROTO_MSG_ERROR;
    m.req_id = fx->req.req_id;
    m.u.error.code = proto_err_to_wire(SPK_ERR_NOT_ALLOWED);
    strcpy(m.u.error.text, "nope");
    srv_send_msg(fx, &m);
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 1);
    assert_int_equal(fx->last.status, SPK_ERR_NOT_ALLOWED);
    assert_string_equal(fx->last.text, "nope");
}

static void test_timeout_and_late_reply(void **state)
{
    struct fixture *fx = *state;
    static uint8_t out[PROTO_MSG_MAX];
    struct sh_holder_health h;
    size_t len;
    long t;

    fx->num_results = 0;
    (void)request(fx, 100);
    t = sh_client_timeout_ms(fx->c);
    assert_true(t > 0 && t <= 100);
    srv_recv(fx);
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 1);
    assert_int_equal(fx->last.status, SPK_ERR_TIMEOUT);
    assert_int_equal(sh_client_timeout_ms(fx->c), -1);
    assert_int_equal(sh_client_health(fx->c, fx->holder, &h), 0);
    assert_true(h.num_timeouts >= 1);

    /* the late reply is dropped without a callback */
    len = srv_share(fx, out);
    srv_send(fx, out, len);
    {
        struct timespec pause = {0, 100 * 1000 * 1000};

        nanosleep(&pause, NULL);
    }
    assert_int_equal(sh_client_process(fx->c), 0);
    assert_int_equal(fx->num_results, 1);
}

static void test_cancel(void **state)
{
    struct fixture *fx = *state;
    static uint8_t out[PROTO_MSG_MAX];
    uint64_t id;
    size_t len;
    struct timespec pause = {0, 100 * 1000 * 1000};

    fx->num_results = 0;
    id = request(fx, 2000);
    srv_recv(fx);
    sh_client_cancel(fx->c, id);
    sh_client_cancel(fx->c, id); /* twice, and unknown ids, are harmless */
    sh_client_cancel(fx->c, 12345);
    assert_int_equal(sh_client_pending(fx->c), 0);
    len = srv_share(fx, out);
    srv_send(fx, out, len);
    nanosleep(&pause, NULL);
    assert_int_equal(sh_client_process(fx->c), 0);
    assert_int_equal(fx->num_results, 0);
}

/* poll_idle: a poll that found the holder's socket empty, whatever it holds. */
static void poll_idle(struct fixture *fx)
{
    zmq_pollitem_t items[1];

    assert_int_equal(sh_client_poll_items(fx->c, items, 1), 1);
    items[0].revents = 0;
    sh_client_poll_result(fx->c, items, 1);
}

static void test_poll_result(void **state)
{
    struct fixture *fx = *state;
    static uint8_t out[PROTO_MSG_MAX];
    struct timespec pause = {0, 100 * 1000 * 1000};
    zmq_pollitem_t items[1];
    uint64_t id;
    size_t len;

    fx->num_results = 0;
    id = request(fx, 2000);
    srv_recv(fx);
    len = srv_share(fx, out);
    srv_send(fx, out, len);
    nanosleep(&pause, NULL);
    /* a socket the poll found idle is not read, for one process only */
    poll_idle(fx);
    assert_int_equal(sh_client_process(fx->c), 0);
    assert_int_equal(fx->num_results, 0);
    assert_int_equal(sh_client_process(fx->c), 0);
    assert_int_equal(fx->num_results, 1);
    assert_true(fx->last.req_id == id);
    assert_int_equal(fx->last.status, 0);

    /* a readable one is */
    (void)request(fx, 2000);
    srv_recv(fx);
    len = srv_share(fx, out);
    srv_send(fx, out, len);
    assert_int_equal(sh_client_poll_items(fx->c, items, 1), 1);
    assert_true(zmq_poll(items, 1, 2000) == 1);
    sh_client_poll_result(fx->c, items, 1);
    assert_int_equal(sh_client_process(fx->c), 0);
    assert_int_equal(fx->num_results, 2);
    assert_int_equal(fx->last.status, 0);

    /* deadlines pass whatever the poll said */
    (void)request(fx, 50);
    srv_recv(fx);
    nanosleep(&pause, NULL);
    poll_idle(fx);
    assert_int_equal(sh_client_process(fx->c), 0);
    assert_int_equal(fx->num_results, 3);
    assert_int_equal(fx->last.status, SPK_ERR_TIMEOUT);
    assert_int_equal(sh_client_pending(fx->c), 0);
}

static void test_garbage_and_tampering(void **state)
{
    struct fixture *fx = *state;
    static uint8_t out[PROTO_MSG_MAX];
    struct sh_holder_health before;
    struct sh_holder_health after;
    uint8_t junk[40];
    size_t len;
    uint64_t id;

    fx->num_results = 0;
    assert_int_equal(sh_client_health(fx->c, fx->holder, &before), 0);
    id = request(fx, 2000);
    srv_recv(fx);
    /* garbage first: counted, no result */
    randombytes_buf(junk, sizeof(junk));
    srv_send(fx, junk, sizeof(junk));
    /* then the share with one ciphertext byte flipped: UNSEAL, buffer zeroed */
    len = srv_share(fx, out);
    out[len - 1] ^= 1;
    memset(fx->out_y, 0xee, Y_LEN);
    srv_send(fx, out, len);
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 1);
    assert_true(fx->last.req_id == id);
    assert_int_equal(fx->last.status, SPK_ERR_UNSEAL);
    for (size_t i = 0; i < Y_LEN; i++) {
        assert_int_equal(fx->out_y[i], 0);
    }
    assert_int_equal(sh_client_health(fx->c, fx->holder, &after), 0);
    assert_true(after.num_bad >= before.num_bad + 2);
    assert_int_equal(after.last_error, SPK_ERR_UNSEAL);

    /* a share of another key id than asked for */
    (void)request(fx, 2000);
    srv_recv(fx);
    fx->share.key_id[0] ^= 1;
    len = srv_share(fx, out);
    fx->share.key_id[0] ^= 1;
    srv_send(fx, out, len);
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 2);
    assert_int_equal(fx->last.status, SPK_ERR_MALFORMED);

    /* a PONG to a share request */
    (void)request(fx, 2000);
    srv_recv(fx);
    {
        struct proto_msg pong;

        memset(&pong, 0, sizeof(pong));
        pong.type = PROTO_MSG_PONG;
        pong.req_id = fx->req.req_id;
        srv_send_msg(fx, &pong);
    }
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 3);
    assert_int_equal(fx->last.status, SPK_ERR_MALFORMED);
}

static void test_request_all_and_unavailable(void **state)
{
    struct fixture *fx = *state;
    static uint8_t out[PROTO_MSG_MAX];
    uint8_t *ys[2] = {fx->out_y, fx->out_y};
    uint64_t ids[2];
    uint8_t digest[32] = {0};
    size_t sent = 0;
    size_t dead;
    uint8_t pk[32] = {9};
    struct sh_holder_health h;
    size_t len;
    uint64_t id;
    zmq_pollitem_t items[4];

    fx->num_results = 0;
    /* a holder nobody listens for: requests fail at once, nothing queued */
    assert_int_equal(sh_client_add_holder(fx->c, &dead, "dead", "tcp://127.0.0.1:1", pk), 0);
    assert_int_equal(sh_client_num_holders(fx->c), 2);
    assert_int_equal(sh_client_poll_items(fx->c, items, 4), 2);
    assert_int_equal(sh_client_poll_items(fx->c, items, 1), 1);
    assert_int_equal(sh_client_request(fx->c, &id, dead, fx->share.key_id,
                                       PROTO_OP_SIGN_PKCS1_SHA256, 1, digest, fx->out_y, Y_LEN,
                                       1000, NULL),
                     SPK_ERR_UNAVAILABLE);
    assert_int_equal(sh_client_pending(fx->c), 0);
    assert_int_equal(sh_client_health(fx->c, dead, &h), 0);
    assert_int_equal(h.num_unavailable, 1);

    assert_int_equal(sh_client_request_all(fx->c, ids, &sent, fx->share.key_id,
                                           PROTO_OP_DECRYPT_RAW, 8, digest, ys, Y_LEN, 2000, NULL),
                     0);
    assert_int_equal(sent, 1);
    assert_int_not_equal(ids[0], 0);
    assert_int_equal(ids[1], 0);
    srv_recv(fx);
    assert_int_equal(fx->req.u.share_req.op_count, 8);
    len = srv_share(fx, out);
    srv_send(fx, out, len);
    assert_int_equal(sh_client_wait(fx->c, 2000), 0);
    assert_int_equal(fx->num_results, 1);
    assert_int_equal(fx->last.status, 0);
    assert_int_equal(fx->last.holder, 0);
    assert_memory_equal(fx->out_y, fx->plain, Y_LEN);
    sodium_memzero(fx->out_y, Y_LEN);

    /* bad arguments */
    assert_int_equal(sh_client_request(fx->c, &id, 9, fx->share.key_id, PROTO_OP_SIGN_PKCS1_SHA256,
                                       1, digest, fx->out_y, Y_LEN, 1000, NULL),
                     SPK_ERR_INVALID_ARG);
    assert_int_equal(sh_client_request(fx->c, &id, 0, fx->share.key_id, 0x77, 1, digest, fx->out_y,
                                       Y_LEN, 1000, NULL),
                     SPK_ERR_INVALID_ARG);
    /* op-count is 1..PROTO_OP_COUNT_MAX */
    assert_int_equal(sh_client_request(fx->c, &id, 0, fx->share.key_id, PROTO_OP_SIGN_PKCS1_SHA256,
                                       0, digest, fx->out_y, Y_LEN, 1000, NULL),
                     SPK_ERR_INVALID_ARG);
    assert_int_equal(sh_client_request(fx->c, &id, 0, fx->share.key_id, PROTO_OP_SIGN_PKCS1_SHA256,
                                       PROTO_OP_COUNT_MAX + 1, digest, fx->out_y, Y_LEN, 1000,
                                       NULL),
                     SPK_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_timeout_and_late_reply),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_poll_result),
        cmocka_unit_test(test_garbage_and_tampering),
        cmocka_unit_test(test_request_all_and_unavailable),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
