#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "share-holder/internal.h"
#include "base/base.h"

/*
 * The share store's open window: a served share stays readable while
 * requests keep coming, and is noaccess again after SH_SHARE_IDLE_MS without
 * one, or SH_SHARE_OPEN_MAX_MS after it was opened, and after
 * sh_store_close. Readability is seen from a child process, which dies on
 * a noaccess page.
 */

#define Y_LEN (5 * 160) /* field 2^1279 - 1 */
#define NUM 3

struct fixture {
    struct sh_store store;
    struct sh_share shares[NUM];
    struct sh_sessions sessions;
};

static int setup(void **state)
{
    static struct fixture fx;

    memset(&fx, 0, sizeof(fx));
    if (spk_mem_init() != 0 || sh_sessions_init(&fx.sessions) != 0) {
        return -1;
    }
    for (size_t i = 0; i < NUM; i++) {
        memset(fx.shares[i].key_id, (int)(0x10 + i), PROTO_KEY_ID_LEN);
        fx.shares[i].index = (uint8_t)(i + 1);
        fx.shares[i].field_bits = 1279;
        fx.shares[i].y_len = Y_LEN;
        if ((fx.shares[i].y = spk_secret_new(Y_LEN)) == NULL) {
            return -1;
        }
        memset(fx.shares[i].y, (int)(0xa0 + i), Y_LEN);
        if (spk_secret_noaccess(fx.shares[i].y) != 0) {
            return -1;
        }
    }
    fx.store.shares = fx.shares;
    fx.store.num_shares = NUM;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    for (size_t i = 0; i < NUM; i++) {
        spk_secret_free(fx->shares[i].y);
    }
    sh_sessions_cleanup(&fx->sessions);
    return 0;
}

/* readable_in_child: a child process can read every byte of |p|. */
static bool readable_in_child(const uint8_t *p, size_t len)
{
    pid_t pid = fork();
    int status = 0;

    assert_true(pid >= 0);
    if (pid == 0) {
        volatile uint8_t sum = 0;

        for (size_t i = 0; i < len; i++) {
            sum = (uint8_t)(sum + p[i]);
        }
        (void)sum;
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_open_and_close(void **state)
{
    struct fixture *fx = *state;
    struct sh_share *a = &fx->shares[0];
    struct sh_share *b = &fx->shares[2];

    assert_int_equal(sh_store_close_in_ms(&fx->store, 1000), -1);
    assert_false(readable_in_child(a->y, Y_LEN));

    assert_int_equal(sh_store_share_open(&fx->store, a, 1000), 0);
    assert_true(a->readable);
    assert_int_equal(fx->store.num_open, 1);
    assert_true(readable_in_child(a->y, Y_LEN));
    assert_false(readable_in_child(fx->shares[1].y, Y_LEN));
    assert_int_equal(sh_store_close_in_ms(&fx->store, 1000), SH_SHARE_IDLE_MS);

    /* opening again only marks it used; another share joins the window */
    assert_int_equal(sh_store_share_open(&fx->store, a, 1001), 0);
    assert_int_equal(sh_store_share_open(&fx->store, b, 1001), 0);
    assert_int_equal(fx->store.num_open, 2);
    assert_int_equal(sh_store_close_in_ms(&fx->store, 1001), SH_SHARE_IDLE_MS);
    assert_int_equal(sh_store_close_in_ms(&fx->store, 1001 + SH_SHARE_IDLE_MS), 0);
    assert_int_equal(sh_store_close_in_ms(&fx->store, 5000), 0);

    assert_int_equal(sh_store_close(&fx->store), 0);
    assert_false(a->readable);
    assert_false(b->readable);
    assert_int_equal(fx->store.num_open, 0);
    assert_int_equal(sh_store_close_in_ms(&fx->store, 5000), -1);
    assert_false(readable_in_child(a->y, Y_LEN));
    assert_false(readable_in_child(b->y, Y_LEN));
}

/* Used without a pause, a share is still closed SH_SHARE_OPEN_MAX_MS after
 * it was opened. */
static void test_open_at_most(void **state)
{
    struct fixture *fx = *state;
    struct sh_share *a = &fx->shares[1];
    uint64_t t = 2000;

    assert_int_equal(sh_store_share_open(&fx->store, a, t), 0);
    for (; t < 2000 + SH_SHARE_OPEN_MAX_MS - 1; t++) {
        assert_int_equal(sh_store_share_open(&fx->store, a, t), 0);
        assert_true(sh_store_close_in_ms(&fx->store, t) > 0);
    }
    assert_int_equal(sh_store_close_in_ms(&fx->store, t), 1);
    assert_int_equal(sh_store_close_in_ms(&fx->store, 2000 + SH_SHARE_OPEN_MAX_MS), 0);
    assert_int_equal(sh_store_close(&fx->store), 0);
    assert_false(readable_in_child(a->y, Y_LEN));
}

/* sh_share_response_build leaves an open share open and a closed one
 * closed, and seals the same bytes either way. */
static void test_response_build_keeps_state(void **state)
{
    struct fixture *fx = *state;
    struct sh_share *a = &fx->shares[0];
    static uint8_t frame[PROTO_MSG_MAX];
    uint8_t client_pk[32];
    uint8_t kx_pk[32];
    uint8_t kx_sk[32];
    size_t len = 0;

    memset(client_pk, 0x22, sizeof(client_pk));
    crypto_kx_keypair(kx_pk, kx_sk);
    assert_int_equal(
        sh_share_response_build(&fx->sessions, frame, sizeof(frame), &len, 1, client_pk, kx_pk, a),
        0);
    assert_false(readable_in_child(a->y, Y_LEN));

    assert_int_equal(sh_store_share_open(&fx->store, a, 3000), 0);
    assert_int_equal(
        sh_share_response_build(&fx->sessions, frame, sizeof(frame), &len, 2, client_pk, kx_pk, a),
        0);
    assert_true(a->readable);
    assert_true(readable_in_child(a->y, Y_LEN));
    assert_int_equal(sh_store_close(&fx->store), 0);
    assert_false(readable_in_child(a->y, Y_LEN));
    sodium_memzero(kx_sk, sizeof(kx_sk));
}

/* Nonces come from a pool: consecutive responses never repeat one. */
static void test_nonces_fresh(void **state)
{
    struct fixture *fx = *state;
    static uint8_t frame[PROTO_MSG_MAX];
    static struct proto_msg msg;
    static uint8_t seen[400][PROTO_AEAD_NONCE_LEN];
    uint8_t client_pk[32];
    uint8_t kx_pk[32];
    uint8_t kx_sk[32];
    size_t len = 0;

    memset(client_pk, 0x33, sizeof(client_pk));
    crypto_kx_keypair(kx_pk, kx_sk);
    for (size_t i = 0; i < 400; i++) {
        assert_int_equal(sh_share_response_build(&fx->sessions, frame, sizeof(frame), &len, i + 1,
                                                 client_pk, kx_pk, &fx->shares[1]),
                         0);
        assert_int_equal(proto_msg_decode(&msg, frame, len), 0);
        memcpy(seen[i], msg.u.share_resp.nonce, PROTO_AEAD_NONCE_LEN);
        for (size_t j = 0; j < i; j++) {
            assert_memory_not_equal(seen[i], seen[j], PROTO_AEAD_NONCE_LEN);
        }
    }
    sodium_memzero(kx_sk, sizeof(kx_sk));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_close),
        cmocka_unit_test(test_open_at_most),
        cmocka_unit_test(test_response_build_keeps_state),
        cmocka_unit_test(test_nonces_fresh),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
