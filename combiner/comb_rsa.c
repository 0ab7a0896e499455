/*
 * The RSA private-key primitive of the combiner: per-key public state with a
 * long-lived blinding pair, and one constant-time CRT exponentiation per
 * operation on a tuple that exists only for that operation, its two halves
 * on one thread or, with a helper, on two.
 */

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "base/base.h"
#include "combiner/comb_private.h"

struct comb_rsa_pub {
    BIGNUM *n;
    BIGNUM *e;
    BN_MONT_CTX *mont_n;
    BN_BLINDING *blinding;
    /* Under the blinding's lock: operations since the pair was made, and how
     * many times it was made again (comb_rsa_pub_maintain). */
    uint64_t blinding_uses;
    uint64_t blinding_renewals;
    /* comb_rsa_pub_calibrate's finding: two threads make an operation on a
     * key of this size faster than one (-1: not measured). */
    int halves_apart;
    size_t n_len;
    uint8_t n_bin[PROTO_BN_MAX]; /* n, big-endian, n_len bytes */
};

void comb_rsa_crt_from_tuple(struct comb_rsa_crt *crt, const uint8_t *tuple, size_t y_len)
{
    crt->p = tuple;
    crt->p_len = y_len;
    crt->q = tuple + y_len;
    crt->q_len = y_len;
    crt->dp = tuple + 2 * y_len;
    crt->dp_len = y_len;
    crt->dq = tuple + 3 * y_len;
    crt->dq_len = y_len;
    crt->qinv = tuple + 4 * y_len;
    crt->qinv_len = y_len;
}

size_t comb_rsa_pub_size(const struct comb_rsa_pub *pub)
{
    return pub->n_len;
}

unsigned comb_rsa_pub_bits(const struct comb_rsa_pub *pub)
{
    return (unsigned)BN_num_bits(pub->n);
}

void comb_rsa_pub_free(struct comb_rsa_pub *pub)
{
    if (pub == NULL) {
        return;
    }
    BN_free(pub->n);
    BN_free(pub->e);
    BN_MONT_CTX_free(pub->mont_n);
    /* BN_BLINDING_free clears A and Ai: the blinding factor is secret. */
    BN_BLINDING_free(pub->blinding);
    OPENSSL_free(pub);
}

int comb_rsa_pub_new(struct comb_rsa_pub **out, const uint8_t *n, size_t n_len, const uint8_t *e,
                     size_t e_len)
{
    struct comb_rsa_pub *pub = NULL;
    BN_CTX *ctx = NULL;
    BIGNUM *n_ct = NULL;
    int r = SPK_ERR_INTERNAL;

    *out = NULL;
    if (n == NULL || e == NULL || n_len == 0 || e_len == 0 || n_len > PROTO_BN_MAX + 1 ||
        e_len > PROTO_BN_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    r = SPK_ERR_NOMEM;
    if ((pub = OPENSSL_zalloc(sizeof(*pub))) == NULL || (ctx = BN_CTX_new()) == NULL ||
        (pub->mont_n = BN_MONT_CTX_new()) == NULL) {
        goto out;
    }
    pub->halves_apart = -1;
    r = SPK_ERR_CRYPTO;
    if ((pub->n = BN_bin2bn(n, (int)n_len, NULL)) == NULL ||
        (pub->e = BN_bin2bn(e, (int)e_len, NULL)) == NULL) {
        goto out;
    }
    r = SPK_ERR_KEY_UNSUPPORTED;
    pub->n_len = (size_t)BN_num_bytes(pub->n);
    if (pub->n_len > PROTO_BN_MAX || BN_num_bits(pub->n) < 512 || !BN_is_odd(pub->n) ||
        !BN_is_odd(pub->e) || BN_is_one(pub->e) || BN_ucmp(pub->e, pub->n) >= 0) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;
    if (BN_bn2binpad(pub->n, pub->n_bin, (int)pub->n_len) != (int)pub->n_len ||
        !BN_MONT_CTX_set(pub->mont_n, pub->n, ctx)) {
        goto out;
    }
    /*
     * The random r of the blinding pair must stay secret, so its inverse is
     * taken in constant time (a copy of n flagged BN_FLG_CONSTTIME, as
     * OpenSSL's own RSA does). This costs a few hundred microseconds, once
     * per key rather than once per operation.
     */
    if ((n_ct = BN_dup(pub->n)) == NULL) {
        goto out;
    }
    BN_set_flags(n_ct, BN_FLG_CONSTTIME);
    pub->blinding = BN_BLINDING_create_param(NULL, pub->e, n_ct, ctx, BN_mod_exp_mont, pub->mont_n);
    if (pub->blinding == NULL) {
        goto out;
    }
    /*
     * Refresh by squaring on every use, and never re-create inside an
     * operation: that would put a constant-time inverse on the hot path every
     * 32 operations. comb_rsa_pub_maintain re-creates the pair from fresh
     * randomness every COMB_BLINDING_RENEW_USES operations instead, between
     * batches, so a pair is never squared forever.
     */
    BN_BLINDING_set_flags(pub->blinding, BN_BLINDING_NO_RECREATE);

    *out = pub;
    pub = NULL;
    r = 0;
out:
    BN_free(n_ct);
    BN_CTX_free(ctx);
    comb_rsa_pub_free(pub);
    return r;
}

int comb_rsa_pub_maintain(struct comb_rsa_pub *pub)
{
    BN_CTX *ctx = NULL;
    bool due;
    int r = 0;

    if (!BN_BLINDING_lock(pub->blinding)) {
        return SPK_ERR_CRYPTO;
    }
    due = pub->blinding_uses >= COMB_BLINDING_RENEW_USES;
    if (due) {
        /*
         * In place: the same BN_BLINDING (its modulus flagged constant time,
         * the Montgomery context of n) gets a new random r, its inverse and
         * r^e. An operation unblinding now uses its own copy of the old
         * factor and only the unchanged context.
         */
        if ((ctx = BN_CTX_secure_new()) == NULL ||
            BN_BLINDING_create_param(pub->blinding, pub->e, pub->n, ctx, BN_mod_exp_mont,
                                     pub->mont_n) == NULL) {
            r = SPK_ERR_CRYPTO;
        } else {
            pub->blinding_uses = 0;
            pub->blinding_renewals++;
        }
    }
    BN_BLINDING_unlock(pub->blinding);
    BN_CTX_free(ctx);
    return r;
}

uint64_t comb_rsa_pub_blinding_renewals(struct comb_rsa_pub *pub)
{
    uint64_t n = 0;

    if (BN_BLINDING_lock(pub->blinding)) {
        n = pub->blinding_renewals;
        BN_BLINDING_unlock(pub->blinding);
    }
    return n;
}

/*
 * What is and is not constant time here. The exponentiations
 * (BN_mod_exp_mont_consttime), the reductions (BN_mod on BN_FLG_CONSTTIME
 * operands: bn_div_fixed_top) and the Montgomery product are OpenSSL's
 * constant-time code. OpenSSL's BIGNUMs do carry a word count ("top") fixed
 * by the value, so loading a value, and the additions of Garner's step,
 * depend on how many leading zero words a value has: 64 zero bits at the top
 * of a uniformly distributed value, about 2^-64 per value. OpenSSL's own RSA
 * has the same property; the engine adds no other branch on a secret.
 */

/* bn_load_secret reads |len| big-endian bytes into |bn| and flags it constant time. */
static int bn_load_secret(BIGNUM *bn, const uint8_t *buf, size_t len)
{
    if (buf == NULL || len == 0 || len > PROTO_FIELD_Y_MAX ||
        BN_bin2bn(buf, (int)len, bn) == NULL) {
        return 0;
    }
    BN_set_flags(bn, BN_FLG_CONSTTIME);
    return 1;
}

/*
 * One CRT half: a prime, its exponent and its Montgomery context. The
 * context is built by the first operation that needs it, on the thread that
 * runs that half: with a helper, the q half's is built there while this
 * thread builds p's, not both first on this one.
 */
struct comb_rsa_half {
    BIGNUM *prime;
    BIGNUM *d;
    BN_MONT_CTX *mont;
    bool mont_set;
};

struct comb_rsa_key {
    struct comb_rsa_pub *pub;
    struct comb_rsa_half p, q;
    /* qinv, taken into p's Montgomery domain with p's context: one product
     * then gives t * qinv mod p. */
    BIGNUM *qinv;
    bool qinv_mont;
    /* The temporaries of every operation on this key: one pool for the
     * batch, not secure-heap allocations per operation, clear-freed with
     * the key. */
    BN_CTX *ctx;
    /* comb_rsa_key_set_helper's: the thread for the q half, and its own
     * pool of temporaries (secure heap, clear-freed with the key). */
    struct comb_rsa_helper *helper;
    BN_CTX *helper_ctx;
};

static void comb_rsa_half_clear(struct comb_rsa_half *half)
{
    BN_clear_free(half->prime);
    BN_clear_free(half->d);
    /* BN_MONT_CTX_free clear-frees its copy of the prime and R^2. */
    BN_MONT_CTX_free(half->mont);
}

void comb_rsa_key_free(struct comb_rsa_key *key)
{
    if (key == NULL) {
        return;
    }
    comb_rsa_half_clear(&key->p);
    comb_rsa_half_clear(&key->q);
    BN_clear_free(key->qinv);
    /* BN_CTX_free clear-frees every temporary the operations left in the pool. */
    BN_CTX_free(key->ctx);
    BN_CTX_free(key->helper_ctx);
    OPENSSL_clear_free(key, sizeof(*key));
}

/*
 * comb_rsa_half_reduce: out = c mod prime, c constant time and below n, the
 * half's Montgomery context set first if it is not yet. BN_mod with a
 * BN_FLG_CONSTTIME operand divides in constant time (bn_div_fixed_top).
 */
static int comb_rsa_half_reduce(struct comb_rsa_half *half, BIGNUM *out, const BIGNUM *c,
                                BN_CTX *ctx)
{
    if (!half->mont_set) {
        if (!BN_MONT_CTX_set(half->mont, half->prime, ctx)) {
            return 0;
        }
        half->mont_set = true;
    }
    if (!BN_mod(out, c, half->prime, ctx)) {
        return 0;
    }
    BN_set_flags(out, BN_FLG_CONSTTIME);
    return 1;
}

/* comb_rsa_half_exp: out = (c mod prime)^d mod prime. */
static int comb_rsa_half_exp(struct comb_rsa_half *half, BIGNUM *out, const BIGNUM *c, BN_CTX *ctx)
{
    return comb_rsa_half_reduce(half, out, c, ctx) &&
           BN_mod_exp_mont_consttime(out, out, half->d, half->prime, ctx, half->mont);
}

/* ---- the helper thread -------------------------------------------------------------- */

/*
 * A CRT operation is two independent exponentiations, mod p and mod q, of
 * half the modulus' size each. On one thread OpenSSL's x2 call runs both
 * (with AVX-512 IFMA, for 1024-bit halves, in one pass that costs about one
 * of them). Where it runs them one after the other, a second thread that
 * takes the q half while the caller does the p half nearly halves the
 * operation's time, as long as a CPU is free for it: comb_batch_run asks
 * for it only when the combiner has nothing else to do.
 *
 * What the helper sees is what the caller's thread sees of the same half:
 * the process' locked memory, BIGNUMs from the secure heap (its own BN_CTX,
 * clear-freed with the key), OpenSSL's constant-time exponentiation; it
 * wipes the stack below it after each half, as comb_batch_run does after a
 * batch. Which thread runs which half is fixed, whatever the values.
 */
#define COMB_RSA_SIZES_MAX 8
#define COMB_RSA_HELPER_STACK (256 * 1024)

struct comb_rsa_helper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t posted; /* a job or stop, for the helper */
    pthread_cond_t done;   /* the job's result, for the caller */
    bool stop;
    bool has_job; /* posted and not yet taken, by the helper or back by its owner */
    bool paused;  /* comb_rsa_helper_pause: takes no job (tests) */
    bool has_result;
    int ok;
    /* The job: r = (c mod half's prime)^d, half's context built first
     * if it is not yet (comb_rsa_half_exp). */
    BIGNUM *r;
    const BIGNUM *c;
    struct comb_rsa_half *half;
    BN_CTX *ctx;
    /* comb_rsa_pub_calibrate's findings by prime size, kept for the keys
     * that follow (they come in few sizes). Its owner's thread only. */
    struct {
        unsigned bits;
        bool apart;
    } sizes[COMB_RSA_SIZES_MAX];
    size_t num_sizes;
    uint64_t taken_back; /* jobs its owner took back (comb_rsa_halves_apart) */
};

static void *comb_rsa_helper_main(void *arg)
{
    struct comb_rsa_helper *h = arg;

    pthread_mutex_lock(&h->lock);
    for (;;) {
        int ok;

        while ((!h->has_job || h->paused) && !h->stop) {
            pthread_cond_wait(&h->posted, &h->lock);
        }
        if (h->stop) {
            break;
        }
        h->has_job = false;
        pthread_mutex_unlock(&h->lock);
        ok = comb_rsa_half_exp(h->half, h->r, h->c, h->ctx);
        spk_stack_wipe(COMB_STACK_WIPE);
        pthread_mutex_lock(&h->lock);
        h->ok = ok;
        h->has_result = true;
        pthread_cond_signal(&h->done);
    }
    pthread_mutex_unlock(&h->lock);
    /* OpenSSL's per-thread state (its error queue) goes with the thread. */
    OPENSSL_thread_stop();
    return NULL;
}

int comb_rsa_helper_new(struct comb_rsa_helper **out)
{
    struct comb_rsa_helper *h = OPENSSL_zalloc(sizeof(*h));
    pthread_attr_t attr;
    sigset_t all, old;
    int r;

    *out = NULL;
    if (h == NULL) {
        return SPK_ERR_NOMEM;
    }
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        goto no_lock;
    }
    if (pthread_cond_init(&h->posted, NULL) != 0) {
        goto no_posted;
    }
    if (pthread_cond_init(&h->done, NULL) != 0) {
        goto no_done;
    }
    if (pthread_attr_init(&attr) != 0) {
        goto no_thread;
    }
    /* A small stack (locked with the rest of the process' memory): a half
     * needs a few KiB of it, and the wipe after it COMB_STACK_WIPE. */
    (void)pthread_attr_setstacksize(&attr, COMB_RSA_HELPER_STACK);
    /* Signals are the main thread's (its signalfd): the helper blocks them all. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&h->thread, &attr, comb_rsa_helper_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        goto no_thread;
    }
    *out = h;
    return 0;

no_thread:
    pthread_cond_destroy(&h->done);
no_done:
    pthread_cond_destroy(&h->posted);
no_posted:
    pthread_mutex_destroy(&h->lock);
no_lock:
    OPENSSL_free(h);
    return SPK_ERR_INTERNAL;
}

void comb_rsa_helper_free(struct comb_rsa_helper *h)
{
    if (h == NULL) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_signal(&h->posted);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->done);
    pthread_cond_destroy(&h->posted);
    pthread_mutex_destroy(&h->lock);
    OPENSSL_clear_free(h, sizeof(*h));
}

uint64_t comb_rsa_helper_taken_back(struct comb_rsa_helper *h)
{
    uint64_t n;

    pthread_mutex_lock(&h->lock);
    n = h->taken_back;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void comb_rsa_helper_pause(struct comb_rsa_helper *h, bool paused)
{
    pthread_mutex_lock(&h->lock);
    h->paused = paused;
    pthread_cond_signal(&h->posted);
    pthread_mutex_unlock(&h->lock);
}

/* comb_rsa_halves_apart: m1 = (c mod p)^dp mod p on this thread while
 * |key|'s helper computes m2 = (c mod q)^dq mod q, each building its half's
 * Montgomery context first if it is the key's first operation; 1 when both
 * succeeded. The job is posted first: the helper's wake-up runs while this
 * thread works. Should the helper not have started by the time this thread
 * is done (no CPU came free for it), this thread takes the job back and
 * does it too, rather than wait for a start and then a whole half. */
static int comb_rsa_halves_apart(struct comb_rsa_key *key, BIGNUM *m1, BIGNUM *m2, const BIGNUM *c,
                                 BN_CTX *ctx)
{
    struct comb_rsa_helper *h = key->helper;
    bool taken_back;
    int ok;

    pthread_mutex_lock(&h->lock);
    h->r = m2;
    h->c = c;
    h->half = &key->q;
    h->ctx = key->helper_ctx;
    h->has_result = false;
    h->has_job = true;
    pthread_cond_signal(&h->posted);
    pthread_mutex_unlock(&h->lock);

    ok = comb_rsa_half_exp(&key->p, m1, c, ctx);

    pthread_mutex_lock(&h->lock);
    taken_back = h->has_job;
    if (taken_back) {
        h->has_job = false;
        h->taken_back++;
    } else {
        while (!h->has_result) {
            pthread_cond_wait(&h->done, &h->lock);
        }
        ok = ok && h->ok;
    }
    h->r = NULL;
    h->c = NULL;
    h->half = NULL;
    h->ctx = NULL;
    pthread_mutex_unlock(&h->lock);
    if (taken_back) {
        ok = ok && comb_rsa_half_exp(&key->q, m2, c, ctx);
    }
    return ok;
}

/* comb_rsa_halves_here: both halves on this thread, OpenSSL's x2 call (one
 * pass for both with AVX-512 IFMA). */
static int comb_rsa_halves_here(struct comb_rsa_key *key, BIGNUM *m1, BIGNUM *m2, const BIGNUM *c,
                                BN_CTX *ctx)
{
    struct comb_rsa_half *p = &key->p, *q = &key->q;

    if (!comb_rsa_half_reduce(p, m1, c, ctx) || !comb_rsa_half_reduce(q, m2, c, ctx)) {
        return 0;
    }
    return BN_mod_exp_mont_consttime_x2(m1, m1, p->d, p->prime, p->mont, m2, m2, q->d, q->prime,
                                        q->mont, ctx);
}

uint64_t comb_rsa_time_ns(unsigned bits, bool both, unsigned runs)
{
    BN_CTX *ctx = BN_CTX_new();
    BN_MONT_CTX *mont = BN_MONT_CTX_new();
    BIGNUM *m = BN_new(), *e = BN_new(), *a = BN_new(), *b = BN_new();
    uint64_t best = UINT64_MAX;

    if (ctx == NULL || mont == NULL || m == NULL || e == NULL || a == NULL || b == NULL ||
        !BN_rand(m, (int)bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) ||
        !BN_rand(e, (int)bits - 1, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
        !BN_MONT_CTX_set(mont, m, ctx)) {
        goto out;
    }
    BN_set_flags(e, BN_FLG_CONSTTIME);
    for (unsigned i = 0; i < runs; i++) {
        uint64_t t0;
        int ok;

        if (!BN_rand_range(a, m) || !BN_rand_range(b, m)) {
            best = UINT64_MAX;
            goto out;
        }
        t0 = spk_now_ns();
        ok = both ? BN_mod_exp_mont_consttime_x2(a, a, e, m, mont, b, b, e, m, mont, ctx)
                  : BN_mod_exp_mont_consttime(a, a, e, m, ctx, mont);
        t0 = spk_now_ns() - t0;
        if (!ok) {
            best = UINT64_MAX;
            goto out;
        }
        best = t0 < best ? t0 : best;
    }
out:
    BN_free(m);
    BN_free(e);
    BN_free(a);
    BN_free(b);
    BN_MONT_CTX_free(mont);
    BN_CTX_free(ctx);
    return best;
}

bool comb_rsa_pub_calibrate(struct comb_rsa_pub *pub, struct comb_rsa_helper *h)
{
    unsigned bits = (comb_rsa_pub_bits(pub) + 1) / 2;
    uint64_t one, both;

    if (h == NULL) {
        return false;
    }
    if (pub->halves_apart >= 0) {
        return pub->halves_apart == 1;
    }
    for (size_t i = 0; i < h->num_sizes; i++) {
        if (h->sizes[i].bits == bits) {
            pub->halves_apart = h->sizes[i].apart ? 1 : 0;
            return h->sizes[i].apart;
        }
    }
    one = comb_rsa_time_ns(bits, false, 3);
    both = comb_rsa_time_ns(bits, true, 3);
    /* Apart pays when one half (plus the hand-over, a few microseconds)
     * takes clearly less than both on one thread. */
    pub->halves_apart = one != UINT64_MAX && both != UINT64_MAX && one + one / 4 < both;
    if (h->num_sizes < COMB_RSA_SIZES_MAX) {
        h->sizes[h->num_sizes].bits = bits;
        h->sizes[h->num_sizes].apart = pub->halves_apart == 1;
        h->num_sizes++;
    }
    return pub->halves_apart == 1;
}

bool comb_rsa_key_set_helper(struct comb_rsa_key *key, struct comb_rsa_helper *h)
{
    if (h != NULL && key->helper_ctx == NULL) {
        key->helper_ctx = BN_CTX_secure_new();
    }
    key->helper = key->helper_ctx != NULL ? h : NULL;
    return key->helper != NULL;
}

int comb_rsa_key_new(struct comb_rsa_key **out, struct comb_rsa_pub *pub,
                     const struct comb_rsa_crt *crt)
{
    struct comb_rsa_key *key = NULL;
    int r = SPK_ERR_NOMEM;

    *out = NULL;
    /* The Montgomery contexts are set by the first operation
     * (comb_rsa_half_exp): with a helper thread, q's on that thread. */
    if ((key = OPENSSL_zalloc(sizeof(*key))) == NULL || (key->ctx = BN_CTX_secure_new()) == NULL ||
        (key->p.prime = BN_secure_new()) == NULL || (key->q.prime = BN_secure_new()) == NULL ||
        (key->p.d = BN_secure_new()) == NULL || (key->q.d = BN_secure_new()) == NULL ||
        (key->qinv = BN_secure_new()) == NULL || (key->p.mont = BN_MONT_CTX_new()) == NULL ||
        (key->q.mont = BN_MONT_CTX_new()) == NULL) {
        goto out;
    }
    key->pub = pub;
    r = SPK_ERR_KEY_MISMATCH;
    if (!bn_load_secret(key->p.prime, crt->p, crt->p_len) ||
        !bn_load_secret(key->q.prime, crt->q, crt->q_len) ||
        !bn_load_secret(key->p.d, crt->dp, crt->dp_len) ||
        !bn_load_secret(key->q.d, crt->dq, crt->dq_len) ||
        !bn_load_secret(key->qinv, crt->qinv, crt->qinv_len) || !BN_is_odd(key->p.prime) ||
        !BN_is_odd(key->q.prime)) {
        goto out;
    }
    *out = key;
    key = NULL;
    r = 0;
out:
    comb_rsa_key_free(key);
    return r;
}

struct comb_rsa_pub *comb_rsa_key_pub(const struct comb_rsa_key *key)
{
    return key->pub;
}

void comb_rsa_prep_clear(struct comb_rsa_prep *prep)
{
    /* The unblinding factor is secret; both are from the secure heap. */
    BN_clear_free(prep->c);
    BN_clear_free(prep->unblind);
    prep->c = NULL;
    prep->unblind = NULL;
}

int comb_rsa_blind(struct comb_rsa_pub *pub, struct comb_rsa_prep *prep, const uint8_t *in)
{
    BN_CTX *ctx = NULL;
    int locked = 0;
    int r = SPK_ERR_NOMEM;

    comb_rsa_prep_clear(prep);
    if ((prep->c = BN_secure_new()) == NULL || (prep->unblind = BN_secure_new()) == NULL ||
        (ctx = BN_CTX_secure_new()) == NULL) {
        goto out;
    }
    /* The input is public (a ciphertext, or a padded digest). */
    r = SPK_ERR_CRYPTO;
    if (BN_bin2bn(in, (int)pub->n_len, prep->c) == NULL) {
        goto out;
    }
    if (BN_ucmp(prep->c, pub->n) >= 0) {
        r = SPK_ERR_DECRYPT;
        goto out;
    }
    /*
     * Blind: c = c * r^e mod n, and take the matching unblinding factor. The
     * pair is advanced under its lock; unblinding needs only our copy (and
     * the pair's Montgomery context of n, which comb_rsa_pub_maintain keeps).
     */
    if (!BN_BLINDING_lock(pub->blinding)) {
        goto out;
    }
    locked = 1;
    if (!BN_BLINDING_convert_ex(prep->c, prep->unblind, pub->blinding, ctx)) {
        goto out;
    }
    pub->blinding_uses++;
    BN_set_flags(prep->c, BN_FLG_CONSTTIME);
    r = 0;
out:
    if (locked) {
        BN_BLINDING_unlock(pub->blinding);
    }
    BN_CTX_free(ctx);
    if (r != 0) {
        comb_rsa_prep_clear(prep);
    }
    return r;
}

int comb_rsa_private(struct comb_rsa_key *key, uint8_t *out, const struct comb_rsa_prep *prep)
{
    struct comb_rsa_pub *pub = key->pub;
    /*
     * Every temporary is one of the key's pool's BIGNUMs (secure heap), which
     * comb_rsa_key_free clear-frees: nothing of the operation outlives the
     * key it was made with.
     */
    BN_CTX *ctx = key->ctx;
    const BIGNUM *c = prep->c;
    BIGNUM *m1, *m2, *t, *res, *check;
    size_t n_len = pub->n_len;
    int r = SPK_ERR_NOMEM;

    if (c == NULL || prep->unblind == NULL) {
        sodium_memzero(out, n_len);
        return SPK_ERR_INVALID_ARG;
    }
    BN_CTX_start(ctx);
    m1 = BN_CTX_get(ctx);
    m2 = BN_CTX_get(ctx);
    t = BN_CTX_get(ctx);
    res = BN_CTX_get(ctx);
    check = BN_CTX_get(ctx);
    if (check == NULL) {
        goto out;
    }
    r = SPK_ERR_CRYPTO;

    /* CRT: m1 = (c mod p)^dp mod p, m2 = (c mod q)^dq mod q. */
    if (!(key->helper != NULL ? comb_rsa_halves_apart(key, m1, m2, c, ctx)
                              : comb_rsa_halves_here(key, m1, m2, c, ctx))) {
        goto out;
    }
    if (!key->qinv_mont) {
        if (!BN_to_montgomery(key->qinv, key->qinv, key->p.mont, ctx)) {
            goto out;
        }
        BN_set_flags(key->qinv, BN_FLG_CONSTTIME);
        key->qinv_mont = true;
    }

    /*
     * Garner: h = (m1 - m2) * qinv mod p, result = m2 + h * q.
     * m1 + n - m2 is positive whatever the order of p and q (m2 < q < n), so
     * the subtraction never takes BN_sub's sign branch; BN_mod then reduces
     * it in constant time. qinv is in p's Montgomery domain (above), so one
     * Montgomery product gives (t * qinv) mod p.
     */
    if (!BN_add(t, m1, pub->n) || !BN_usub(t, t, m2)) {
        goto out;
    }
    BN_set_flags(t, BN_FLG_CONSTTIME);
    if (!BN_mod(t, t, key->p.prime, ctx) ||
        !BN_mod_mul_montgomery(t, t, key->qinv, key->p.mont, ctx) ||
        !BN_mul(res, t, key->q.prime, ctx) || !BN_add(res, res, m2)) {
        goto out;
    }

    /*
     * Check with e before the result goes anywhere: a CRT result that is
     * wrong modulo one prime would reveal that prime (Boneh-DeMillo-Lipton).
     * The check runs on the blinded pair, (c r^e)^d == m r, whose
     * (m r)^e == c r^e is the same equation as m^e == c, so the
     * variable-time public exponentiation never sees an unblinded secret.
     */
    if (!BN_mod_exp_mont(check, res, pub->e, pub->n, ctx, pub->mont_n)) {
        goto out;
    }
    if (BN_cmp(check, c) != 0) {
        r = SPK_ERR_FAULT;
        goto out;
    }

    /* Unblind: m = (m r) * r^-1 mod n. */
    if (!BN_BLINDING_invert_ex(res, prep->unblind, pub->blinding, ctx)) {
        goto out;
    }
    if (BN_bn2binpad(res, out, (int)n_len) != (int)n_len) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        sodium_memzero(out, n_len);
    }
    BN_CTX_end(ctx);
    return r;
}
