#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "share-holder/internal.h"
#include "base/base.h"

/* Holder-side share sealing: what sh_share_response_build puts on the wire
 * opens with the requester's crypto_kx keys and the frame's AD, and nothing
 * else. */

#define Y_LEN (5 * 160) /* field 2^1279 - 1 */

struct fixture {
    struct sh_sessions sessions;
    struct sh_share share;
    uint8_t plain[Y_LEN];
    uint8_t client_pk[32];
    uint8_t kx_pk[32];
    uint8_t kx_sk[32];
    uint8_t frame[PROTO_MSG_MAX];
    size_t frame_len;
    struct proto_msg msg;
};

static int setup(void **state)
{
    static struct fixture fx;

    if (spk_mem_init() != 0 || sh_sessions_init(&fx.sessions) != 0) {
        return -1;
    }
    memset(fx.share.key_id, 0xab, sizeof(fx.share.key_id));
    memset(fx.share.split_id, 0xcd, sizeof(fx.share.split_id));
    fx.share.index = 3;
    fx.share.field_bits = 1279;
    fx.share.y_len = Y_LEN;
    fx.share.y = spk_secret_new(Y_LEN);
    if (fx.share.y == NULL) {
        return -1;
    }
    randombytes_buf(fx.plain, sizeof(fx.plain));
    memcpy(fx.share.y, fx.plain, Y_LEN);
    if (spk_secret_noaccess(fx.share.y) != 0) {
        return -1;
    }
    memset(fx.client_pk, 0x11, sizeof(fx.client_pk));
    crypto_kx_keypair(fx.kx_pk, fx.kx_sk);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    spk_secret_free(fx->share.y);
    sh_sessions_cleanup(&fx->sessions);
    return 0;
}

static bool contains(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t n)
{
    for (size_t i = 0; i + n <= hay_len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

static void build(struct fixture *fx, uint64_t req_id, const uint8_t *requester_pk)
{
    assert_int_equal(sh_share_response_build(&fx->sessions, fx->frame, sizeof(fx->frame),
                                             &fx->frame_len, req_id, fx->client_pk, requester_pk,
                                             &fx->share),
                     0);
    assert_int_equal(proto_msg_decode(&fx->msg, fx->frame, fx->frame_len), 0);
}

/* open_frame: decrypt fx->msg's share as a requester with (pk, sk) would. */
static int open_frame(struct fixture *fx, const uint8_t *pk, const uint8_t *sk, uint8_t *out)
{
    const struct proto_share_resp *r = &fx->msg.u.share_resp;
    uint8_t rx[32];
    uint8_t tx[32];
    uint8_t ad[PROTO_SHARE_AD_LEN];
    unsigned long long n = 0;
    int ret;

    if (crypto_kx_client_session_keys(rx, tx, pk, sk, r->session_pk) != 0 ||
        !proto_share_ad(ad, fx->frame, fx->frame_len, r)) {
        return -1;
    }
    ret = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, NULL, r->sealed, r->sealed_len, ad,
                                                     sizeof(ad), r->nonce, rx);
    return ret == 0 && n == Y_LEN ? 0 : -1;
}

static void test_round_trip(void **state)
{
    struct fixture *fx = *state;
    uint8_t out[Y_LEN];
    uint8_t first_session[32];

    build(fx, 77, fx->kx_pk);
    assert_int_equal(fx->msg.type, PROTO_MSG_SHARE_RESPONSE);
    assert_true(fx->msg.req_id == 77);
    assert_int_equal(fx->msg.u.share_resp.index, 3);
    assert_int_equal(fx->msg.u.share_resp.field_bits, 1279);
    assert_int_equal(fx->msg.u.share_resp.sealed_len, Y_LEN + PROTO_AEAD_TAG_LEN);
    assert_memory_equal(fx->msg.u.share_resp.key_id, fx->share.key_id, 32);
    /* the frame holds no plaintext share */
    assert_false(contains(fx->frame, fx->frame_len, fx->plain, 16));
    assert_int_equal(open_frame(fx, fx->kx_pk, fx->kx_sk, out), 0);
    assert_memory_equal(out, fx->plain, Y_LEN);
    memcpy(first_session, fx->msg.u.share_resp.session_pk, 32);

    /* the session is cached: same holder key, fresh nonce */
    build(fx, 78, fx->kx_pk);
    assert_memory_equal(first_session, fx->msg.u.share_resp.session_pk, 32);
    assert_int_equal(open_frame(fx, fx->kx_pk, fx->kx_sk, out), 0);
    assert_memory_equal(out, fx->plain, Y_LEN);
    sodium_memzero(out, sizeof(out));
}

static void test_other_requester(void **state)
{
    struct fixture *fx = *state;
    uint8_t pk2[32];
    uint8_t sk2[32];
    uint8_t out[Y_LEN];

    crypto_kx_keypair(pk2, sk2);
    build(fx, 1, pk2);
    /* a new session for a new requester key */
    assert_int_equal(open_frame(fx, pk2, sk2, out), 0);
    /* and the first requester cannot open it */
    assert_int_equal(open_frame(fx, fx->kx_pk, fx->kx_sk, out), -1);
    sodium_memzero(out, sizeof(out));
}

static void test_tamper(void **state)
{
    struct fixture *fx = *state;
    uint8_t out[Y_LEN];

    build(fx, 5, fx->kx_pk);
    /* the request id is in the AD: a frame replayed under another id fails */
    fx->frame[12] ^= 1;
    assert_int_equal(proto_msg_decode(&fx->msg, fx->frame, fx->frame_len), 0);
    assert_int_equal(open_frame(fx, fx->kx_pk, fx->kx_sk, out), -1);
    fx->frame[12] ^= 1;
    /* so are the index and split id */
    assert_int_equal(proto_msg_decode(&fx->msg, fx->frame, fx->frame_len), 0);
    fx->msg.u.share_resp.index = 4;
    assert_int_equal(open_frame(fx, fx->kx_pk, fx->kx_sk, out), -1);
    fx->msg.u.share_resp.index = 3;
    fx->msg.u.share_resp.split_id[0] ^= 1;
    assert_int_equal(open_frame(fx, fx->kx_pk, fx->kx_sk, out), -1);
    fx->msg.u.share_resp.split_id[0] ^= 1;
    assert_int_equal(open_frame(fx, fx->kx_pk, fx->kx_sk, out), 0);
    /* and the field (another field of the same y_len would not be caught
     * by the length check alone) */
    fx->msg.u.share_resp.field_bits = 1280;
    assert_int_equal(open_frame(fx, fx->kx_pk, fx->kx_sk, out), -1);
    sodium_memzero(out, sizeof(out));
}

static void test_low_order_key(void **state)
{
    struct fixture *fx = *state;
    uint8_t zero[32] = {0};

    assert_int_equal(sh_share_response_build(&fx->sessions, fx->frame, sizeof(fx->frame),
                                             &fx->frame_len, 9, fx->client_pk, zero, &fx->share),
                     SPK_ERR_MALFORMED);
}

static void test_eviction(void **state)
{
    struct fixture *fx = *state;
    uint8_t out[Y_LEN];

    /* more requesters than slots: every one still gets a share it can open */
    for (int i = 0; i < SH_SESSIONS_MAX + 10; i++) {
        uint8_t pk[32];
        uint8_t sk[32];

        crypto_kx_keypair(pk, sk);
        build(fx, (uint64_t)i, pk);
        assert_int_equal(open_frame(fx, pk, sk, out), 0);
    }
    assert_memory_equal(out, fx->plain, Y_LEN);
    sodium_memzero(out, sizeof(out));
}

/* One client cycling requester keys (a new crypto_kx key per request, 2,000
 * of them) must not evict the sessions of the others: their next requests
 * reuse their sessions, so no new key exchange is made for them. Before the
 * per-client quota every one of them was evicted and paid a new exchange. */
static void test_client_quota(void **state)
{
    enum { HONEST = 20, CYCLES = 2000 };
    struct fixture *fx = *state;
    uint8_t saved_client[32];
    uint8_t pks[HONEST][32];
    uint8_t sks[HONEST][32];
    uint8_t sessions[HONEST][32];
    uint8_t out[Y_LEN];
    uint64_t made;

    memcpy(saved_client, fx->client_pk, sizeof(saved_client));
    for (int i = 0; i < HONEST; i++) {
        memset(fx->client_pk, 0x40 + i, sizeof(fx->client_pk));
        crypto_kx_keypair(pks[i], sks[i]);
        build(fx, (uint64_t)i, pks[i]);
        memcpy(sessions[i], fx->msg.u.share_resp.session_pk, 32);
    }
    memset(fx->client_pk, 0xee, sizeof(fx->client_pk));
    for (int i = 0; i < CYCLES; i++) {
        uint8_t pk[32];
        uint8_t sk[32];

        crypto_kx_keypair(pk, sk);
        build(fx, (uint64_t)i, pk);
    }
    made = fx->sessions.num_made;
    for (int i = 0; i < HONEST; i++) {
        memset(fx->client_pk, 0x40 + i, sizeof(fx->client_pk));
        build(fx, 7, pks[i]);
        assert_memory_equal(fx->msg.u.share_resp.session_pk, sessions[i], 32);
        assert_int_equal(open_frame(fx, pks[i], sks[i], out), 0);
    }
    assert_int_equal(fx->sessions.num_made, made);
    /* the cycling client kept at most its quota of slots */
    {
        size_t own = 0;

        for (size_t i = 0; i < SH_SESSIONS_MAX; i++) {
            if (fx->sessions.entries[i].used && fx->sessions.entries[i].client_pk[0] == 0xee) {
                own++;
            }
        }
        assert_int_equal(own, SH_SESSIONS_PER_CLIENT);
    }
    memcpy(fx->client_pk, saved_client, sizeof(saved_client));
    sodium_memzero(out, sizeof(out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_other_requester),
        cmocka_unit_test(test_tamper),     cmocka_unit_test(test_low_order_key),
        cmocka_unit_test(test_eviction),   cmocka_unit_test(test_client_quota),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
