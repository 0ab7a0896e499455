/*
 * bench_combiner: signatures per second through the combiner (gather the
 * shares, check, interpolate, p * q == N, sign, check with e, wipe) with
 * k = 2 and k = 3 in-process shares, for RSA-2048, 3072 and 4096, beside
 * OpenSSL signing with the whole key loaded (EVP_PKEY_sign, PKCS#1 v1.5
 * SHA-256), measured in the same run. The three are interleaved in short
 * blocks, in a rotating order, so a noisy machine slows all of them alike.
 *
 * Then, for RSA-2048: the key's lifetime (reconstruction start to wipe end)
 * p50 / p99 as the combiner measures it, its own per-stage timings, and a
 * finer breakdown timed here piece by piece with the same split/ and OpenSSL
 * functions the combiner uses: share opening, commitment checks,
 * interpolation, p * q == N, key setup (loading the tuple, Montgomery
 * contexts for p and q), blinding (which the combiner does before the key
 * exists, while the shares travel), CRT exponentiation, verification with
 * e, unblinding, wipe.
 *
 * usage: bench_combiner DATA_DIR [SECONDS_PER_SIZE]
 * (reads rsa2048.pem, rsa3072.pem, rsa4096.pem). The last line is
 * "ratio=<combiner ops/s / OpenSSL ops/s>" for RSA-2048, k = 3.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "combiner/combiner.h"
#include "combiner/internal.h"
#include "split/split.h"

#define HOLDERS_MAX 3
#define SIZES 3
#define KS 2 /* k = 2 and k = 3 */
#define BREAKDOWN_ROUNDS 2000

static const unsigned sizes[SIZES] = {2048, 3072, 4096};

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/*
 * cpu_us: this process's CPU time. The blocks are timed in CPU time, not wall
 * time: on a shared machine a block that is preempted would otherwise be
 * charged for other processes' work, and which side a preemption lands on
 * decides the ratio (0.68 and 0.95 in two runs minutes apart). Everything the
 * combiner does here (its sources answer synchronously) runs in this process.
 */
static double cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double percentile(double *v, size_t n, double pct)
{
    size_t i;

    qsort(v, n, sizeof(v[0]), cmp_double);
    i = (size_t)(pct / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void die(const char *what, int r)
{
    fprintf(stderr, "bench_combiner: %s failed: %s\n", what, r != 0 ? spk_strerror(r) : "");
    exit(1);
}

/* One split key behind one combiner: the local share plus k-1 in-process sources. */
struct bench_comb {
    unsigned k;
    struct comb_ctx *comb;
    struct proto_record *rec;
    struct proto_share_file *shares;
    double total_us;
    size_t ops;
};

struct bench_size {
    unsigned bits;
    struct split_rsa_key key;
    EVP_PKEY_CTX *ossl;
    struct bench_comb comb[KS];
    double ossl_us;
    size_t ossl_ops;
    size_t block;
};

static struct proto_holder_secret *holder_sk[HOLDERS_MAX];
static struct proto_holder_pub holder_pk[HOLDERS_MAX];

static void bench_comb_setup(struct bench_comb *bc, const struct split_rsa_key *key, unsigned k)
{
    char why[SPLIT_WHY_MAX];
    int r;

    bc->k = k;
    bc->rec = calloc(1, sizeof(*bc->rec));
    bc->shares = calloc(k, sizeof(*bc->shares));
    if (bc->rec == NULL || bc->shares == NULL) {
        die("calloc", 0);
    }
    /* n = k: exactly the shares that are needed, all in this process. */
    if ((r = split_key_split(bc->rec, bc->shares, key, k, holder_pk, k, why, sizeof(why))) != 0) {
        fprintf(stderr, "bench_combiner: split: %s\n", why);
        exit(1);
    }
    if ((bc->comb = comb_new(NULL)) == NULL) {
        die("comb_new", 0);
    }
    if ((r = comb_add_key(bc->comb, bc->rec, &bc->shares[0], holder_sk[0])) != 0) {
        fprintf(stderr, "bench_combiner: comb_add_key: %s\n", comb_last_error(bc->comb));
        exit(1);
    }
    for (unsigned i = 1; i < k; i++) {
        struct comb_file_source *fs = comb_file_source_new(holder_sk[i]);

        if (fs == NULL) {
            die("comb_file_source_new", 0);
        }
        /* Kept open and answered at once, as the local share is. */
        if ((r = comb_file_source_add_share(fs, &bc->shares[i], true)) != 0) {
            die("comb_file_source_add_share", r);
        }
        comb_file_source_set_sync(fs, true);
        if ((r = comb_add_file_source(bc->comb, NULL, NULL, fs)) != 0) {
            die("comb_add_file_source", r);
        }
    }
}

static void bench_comb_cleanup(struct bench_comb *bc)
{
    comb_free(bc->comb);
    free(bc->rec);
    free(bc->shares);
}

static void comb_block(struct bench_comb *bc, size_t n, const uint8_t *digest)
{
    uint8_t sig[PROTO_BN_MAX];
    size_t sig_len;
    double t0 = cpu_us();
    int r;

    for (size_t i = 0; i < n; i++) {
        if ((r = comb_sign_sync(bc->comb, sig, sizeof(sig), &sig_len, bc->rec->key_id,
                                COMB_ALG_PKCS1_SHA256, digest, 32)) != 0) {
            fprintf(stderr, "bench_combiner: sign: %s\n", comb_last_error(bc->comb));
            exit(1);
        }
    }
    bc->total_us += cpu_us() - t0;
    bc->ops += n;
}

static void ossl_block(struct bench_size *bs, size_t n, const uint8_t *digest)
{
    uint8_t sig[PROTO_BN_MAX];
    double t0 = cpu_us();

    for (size_t i = 0; i < n; i++) {
        size_t sig_len = sizeof(sig);

        if (EVP_PKEY_sign(bs->ossl, sig, &sig_len, digest, 32) != 1) {
            die("EVP_PKEY_sign", 0);
        }
    }
    bs->ossl_us += cpu_us() - t0;
    bs->ossl_ops += n;
}

static void bench_size_setup(struct bench_size *bs, const char *dir, unsigned bits)
{
    char path[4096];
    char why[SPLIT_WHY_MAX];
    int r;

    bs->bits = bits;
    snprintf(path, sizeof(path), "%s/rsa%u.pem", dir, bits);
    if ((r = split_rsa_key_load(&bs->key, path, NULL, why, sizeof(why))) != 0) {
        fprintf(stderr, "bench_combiner: %s\n", why);
        exit(1);
    }
    bs->ossl = EVP_PKEY_CTX_new(bs->key.pkey, NULL);
    if (bs->ossl == NULL || EVP_PKEY_sign_init(bs->ossl) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(bs->ossl, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(bs->ossl, EVP_sha256()) != 1) {
        die("EVP_PKEY_sign_init", 0);
    }
    for (unsigned k = 2; k <= 3; k++) {
        bench_comb_setup(&bs->comb[k - 2], &bs->key, k);
    }
    /* About 20 ms per block on this machine's RSA-2048, fewer ops for larger keys. */
    bs->block = bits == 2048 ? 50 : bits == 3072 ? 16 : 8;
}

/* run_interleaved: rotating blocks of combiner k=2, k=3 and OpenSSL for |seconds|. */
static void run_interleaved(struct bench_size *bs, double seconds)
{
    uint8_t digest[32];
    double end;
    size_t round = 0;

    randombytes_buf(digest, sizeof(digest));
    /* Warm up every path (first blinding use, page faults, caches). */
    comb_block(&bs->comb[0], 4, digest);
    comb_block(&bs->comb[1], 4, digest);
    ossl_block(bs, 4, digest);
    for (size_t i = 0; i < KS; i++) {
        bs->comb[i].total_us = 0;
        bs->comb[i].ops = 0;
        comb_stats_reset(bs->comb[i].comb);
    }
    bs->ossl_us = 0;
    bs->ossl_ops = 0;

    end = now_us() + seconds * 1e6;
    while (now_us() < end || round < 3) {
        for (size_t j = 0; j < 3; j++) {
            size_t which = (round + j) % 3;

            if (which < KS) {
                comb_block(&bs->comb[which], bs->block, digest);
            } else {
                ossl_block(bs, bs->block, digest);
            }
        }
        round++;
    }
}

static void print_timing(const char *name, const struct comb_timing *t)
{
    printf("  %-12s n=%-7llu mean %8.1f  p50 %8.1f  p99 %8.1f  max %8.1f us\n", name,
           (unsigned long long)t->count, t->mean_us, t->p50_us, t->p99_us, t->max_us);
}

/* ---- the breakdown, timed piece by piece ---------------------------------------- */

enum piece {
    P_OPEN,
    P_CHECK,
    P_INTERP,
    P_PQ,
    P_LOAD,
    P_MONT,
    P_BLIND,
    P_EXP,
    P_GARNER,
    P_VERIFY,
    P_UNBLIND,
    P_WIPE,
    P_ENGINE,
    P_OSSL,
    P_NUM,
};

static const char *const piece_names[P_NUM] = {
    "share opening (crypto_box_seal_open), per share",
    "commitment checks (BLAKE2b), k shares",
    "interpolation, k shares",
    "p * q == N (split_rsa_tuple_check)",
    "key setup: tuple into BIGNUMs",
    "key setup: Montgomery contexts for p and q",
    "blinding (under lock; done before the key exists)",
    "CRT exponentiation (consttime x2)",
    "Garner recombination",
    "verification with e",
    "unblinding",
    "wipe (tuple, arena, 32 KiB of stack)",
    "= the engine as one call (comb_rsa_op)",
    "OpenSSL EVP_PKEY_sign, loaded key",
};

static double samples[P_NUM][BREAKDOWN_ROUNDS];

static void breakdown(struct bench_size *bs, unsigned k)
{
    struct bench_comb *bc = &bs->comb[k - 2];
    struct split_field f;
    struct spk_arena *arena;
    uint8_t *ys, *tuple, *prod;
    const uint8_t *yp[HOLDERS_MAX];
    uint8_t xs[HOLDERS_MAX];
    struct comb_rsa_pub *pub = NULL;
    BN_CTX *ctx = BN_CTX_secure_new();
    BN_MONT_CTX *mont_n = BN_MONT_CTX_new();
    BN_BLINDING *blinding;
    BIGNUM *n = BN_bin2bn(bc->rec->modulus, (int)bc->rec->modulus_len, NULL);
    BIGNUM *e = BN_bin2bn(bc->rec->exponent, (int)bc->rec->exponent_len, NULL);
    BIGNUM *n_ct = NULL;
    uint8_t digest[32], em[PROTO_BN_MAX], sig[PROTO_BN_MAX];
    size_t tlen, n_len = bc->rec->modulus_len, sig_len;
    int r;

    if (ctx == NULL || mont_n == NULL || n == NULL || e == NULL ||
        (r = split_field_init(&f, bc->rec->field_bits)) != 0) {
        die("breakdown setup", 0);
    }
    tlen = split_tuple_len(&f);
    arena = spk_arena_new(split_interpolate_scratch_len(&f, k));
    ys = spk_secret_new(k * tlen);
    tuple = spk_secret_new(tlen);
    prod = spk_secret_new(PROTO_BN_MAX);
    if (arena == NULL || ys == NULL || tuple == NULL || prod == NULL ||
        !BN_MONT_CTX_set(mont_n, n, ctx) || (n_ct = BN_dup(n)) == NULL) {
        die("breakdown setup", 0);
    }
    BN_set_flags(n_ct, BN_FLG_CONSTTIME);
    blinding = BN_BLINDING_create_param(NULL, e, n_ct, ctx, BN_mod_exp_mont, mont_n);
    if (blinding == NULL) {
        die("BN_BLINDING_create_param", 0);
    }
    BN_BLINDING_set_flags(blinding, BN_BLINDING_NO_RECREATE);
    if ((r = comb_rsa_pub_new(&pub, bc->rec->modulus, n_len, bc->rec->exponent,
                              bc->rec->exponent_len)) != 0) {
        die("comb_rsa_pub_new", r);
    }
    randombytes_buf(digest, sizeof(digest));
    /* A type-1 padded block (no DigestInfo: only its size matters here). */
    memset(em, 0xff, n_len);
    em[0] = 0x00;
    em[1] = 0x01;
    em[n_len - sizeof(digest) - 1] = 0x00;
    memcpy(em + n_len - sizeof(digest), digest, sizeof(digest));

    for (size_t round = 0; round < BREAKDOWN_ROUNDS; round++) {
        BIGNUM *c, *p, *q, *dp, *dq, *qinv, *unblind, *m1, *m2, *t, *res, *check;
        BN_MONT_CTX *mont_p = BN_MONT_CTX_new();
        BN_MONT_CTX *mont_q = BN_MONT_CTX_new();
        struct comb_rsa_crt crt;
        struct comb_rsa_req req = {.op = COMB_RSA_SIGN_PKCS1,
                                   .hash = COMB_HASH_SHA256,
                                   .in = digest,
                                   .in_len = sizeof(digest)};
        double t0, t1;

        if (mont_p == NULL || mont_q == NULL) {
            die("BN_MONT_CTX_new", 0);
        }
        t0 = now_us();
        if ((r = split_share_open(ys + tlen, tlen, &bc->shares[1], holder_sk[1])) != 0) {
            die("split_share_open", r);
        }
        t1 = now_us();
        samples[P_OPEN][round] = t1 - t0;
        for (unsigned i = 1; i < k; i++) {
            if (i > 1 &&
                (r = split_share_open(ys + i * tlen, tlen, &bc->shares[i], holder_sk[i])) != 0) {
                die("split_share_open", r);
            }
        }
        /* The local share, opened once at start-up. */
        if ((r = split_share_open(ys + 0 * tlen, tlen, &bc->shares[0], holder_sk[0])) != 0) {
            die("split_share_open", r);
        }
        t0 = now_us();
        for (unsigned i = 0; i < k; i++) {
            struct split_opened_share os;

            memcpy(os.key_id, bc->rec->key_id, sizeof(os.key_id));
            memcpy(os.split_id, bc->rec->split_id, sizeof(os.split_id));
            os.index = bc->shares[i].index;
            os.holder = NULL;
            os.y = ys + i * tlen;
            if ((r = split_share_check(bc->rec, &f, &os)) != 0) {
                die("split_share_check", r);
            }
            xs[i] = os.index;
            yp[i] = os.y;
        }
        t1 = now_us();
        samples[P_CHECK][round] = t1 - t0;
        t0 = t1;
        if ((r = split_interpolate(&f, k, xs, yp, tuple, arena)) != 0) {
            die("split_interpolate", r);
        }
        t1 = now_us();
        samples[P_INTERP][round] = t1 - t0;
        t0 = t1;
        if ((r = split_rsa_tuple_check(&f, tuple, bc->rec->modulus, n_len)) != 0) {
            die("split_rsa_tuple_check", r);
        }
        t1 = now_us();
        samples[P_PQ][round] = t1 - t0;

        /* The engine's steps: comb_rsa_blind's, then comb_rsa_private's. */
        comb_rsa_crt_from_tuple(&crt, tuple, f.y_len);
        BN_CTX_start(ctx);
        c = BN_CTX_get(ctx);
        p = BN_CTX_get(ctx);
        q = BN_CTX_get(ctx);
        dp = BN_CTX_get(ctx);
        dq = BN_CTX_get(ctx);
        qinv = BN_CTX_get(ctx);
        unblind = BN_CTX_get(ctx);
        m1 = BN_CTX_get(ctx);
        m2 = BN_CTX_get(ctx);
        t = BN_CTX_get(ctx);
        res = BN_CTX_get(ctx);
        check = BN_CTX_get(ctx);
        if (check == NULL || BN_bin2bn(em, (int)n_len, c) == NULL) {
            die("BN_CTX_get", 0);
        }
        t0 = now_us();
        if (BN_bin2bn(crt.p, (int)crt.p_len, p) == NULL ||
            BN_bin2bn(crt.q, (int)crt.q_len, q) == NULL ||
            BN_bin2bn(crt.dp, (int)crt.dp_len, dp) == NULL ||
            BN_bin2bn(crt.dq, (int)crt.dq_len, dq) == NULL ||
            BN_bin2bn(crt.qinv, (int)crt.qinv_len, qinv) == NULL) {
            die("BN_bin2bn", 0);
        }
        BN_set_flags(p, BN_FLG_CONSTTIME);
        BN_set_flags(q, BN_FLG_CONSTTIME);
        BN_set_flags(dp, BN_FLG_CONSTTIME);
        BN_set_flags(dq, BN_FLG_CONSTTIME);
        BN_set_flags(qinv, BN_FLG_CONSTTIME);
        t1 = now_us();
        samples[P_LOAD][round] = t1 - t0;
        t0 = t1;
        if (!BN_MONT_CTX_set(mont_p, p, ctx) || !BN_MONT_CTX_set(mont_q, q, ctx)) {
            die("BN_MONT_CTX_set", 0);
        }
        t1 = now_us();
        samples[P_MONT][round] = t1 - t0;
        t0 = t1;
        if (!BN_BLINDING_lock(blinding) || !BN_BLINDING_convert_ex(c, unblind, blinding, ctx)) {
            die("BN_BLINDING_convert_ex", 0);
        }
        BN_BLINDING_unlock(blinding);
        BN_set_flags(c, BN_FLG_CONSTTIME);
        t1 = now_us();
        samples[P_BLIND][round] = t1 - t0;
        t0 = t1;
        if (!BN_mod(m1, c, p, ctx) || !BN_mod(m2, c, q, ctx)) {
            die("BN_mod", 0);
        }
        BN_set_flags(m1, BN_FLG_CONSTTIME);
        BN_set_flags(m2, BN_FLG_CONSTTIME);
        if (!BN_mod_exp_mont_consttime_x2(m1, m1, dp, p, mont_p, m2, m2, dq, q, mont_q, ctx)) {
            die("BN_mod_exp_mont_consttime_x2", 0);
        }
        t1 = now_us();
        samples[P_EXP][round] = t1 - t0;
        t0 = t1;
        if (!BN_add(t, m1, n) || !BN_usub(t, t, m2)) {
            die("BN_add", 0);
        }
        BN_set_flags(t, BN_FLG_CONSTTIME);
        if (!BN_mod(t, t, p, ctx) || !BN_to_montgomery(qinv, qinv, mont_p, ctx) ||
            !BN_mod_mul_montgomery(t, t, qinv, mont_p, ctx) || !BN_mul(res, t, q, ctx) ||
            !BN_add(res, res, m2)) {
            die("Garner", 0);
        }
        t1 = now_us();
        samples[P_GARNER][round] = t1 - t0;
        t0 = t1;
        if (!BN_mod_exp_mont(check, res, e, n, ctx, mont_n) || BN_cmp(check, c) != 0) {
            die("verification", 0);
        }
        t1 = now_us();
        samples[P_VERIFY][round] = t1 - t0;
        t0 = t1;
        if (!BN_BLINDING_invert_ex(res, unblind, blinding, ctx) ||
            BN_bn2binpad(res, sig, (int)n_len) != (int)n_len) {
            die("unblinding", 0);
        }
        t1 = now_us();
        samples[P_UNBLIND][round] = t1 - t0;
        BN_CTX_end(ctx);
        BN_MONT_CTX_free(mont_p);
        BN_MONT_CTX_free(mont_q);

        t0 = now_us();
        sodium_memzero(tuple, tlen);
        sodium_memzero(ys, k * tlen);
        spk_arena_reset(arena);
        spk_stack_wipe(32768);
        t1 = now_us();
        samples[P_WIPE][round] = t1 - t0;

        /* The engine as the combiner calls it, on a freshly rebuilt tuple. */
        for (unsigned i = 0; i < k; i++) {
            if ((r = split_share_open(ys + i * tlen, tlen, &bc->shares[i], holder_sk[i])) != 0) {
                die("split_share_open", r);
            }
        }
        if ((r = split_interpolate(&f, k, xs, yp, tuple, arena)) != 0) {
            die("split_interpolate", r);
        }
        spk_arena_reset(arena);
        t0 = now_us();
        if ((r = comb_rsa_op(pub, &crt, &req, sig, sizeof(sig), &sig_len)) != 0) {
            die("comb_rsa_op", r);
        }
        t1 = now_us();
        samples[P_ENGINE][round] = t1 - t0;
        sodium_memzero(tuple, tlen);
        sodium_memzero(ys, k * tlen);

        t0 = now_us();
        sig_len = sizeof(sig);
        if (EVP_PKEY_sign(bs->ossl, sig, &sig_len, digest, sizeof(digest)) != 1) {
            die("EVP_PKEY_sign", 0);
        }
        samples[P_OSSL][round] = now_us() - t0;
    }

    printf("\nbreakdown, RSA-%u, k = %u, timed here with the combiner's own functions "
           "(%d rounds, us):\n",
           bs->bits, k, BREAKDOWN_ROUNDS);
    printf("  %-50s %9s %9s %9s\n", "", "mean", "p50", "p99");
    for (size_t pi = 0; pi < P_NUM; pi++) {
        double sum = 0;

        for (size_t i = 0; i < BREAKDOWN_ROUNDS; i++) {
            sum += samples[pi][i];
        }
        printf("  %-50s %9.2f %9.2f %9.2f\n", piece_names[pi], sum / BREAKDOWN_ROUNDS,
               percentile(samples[pi], BREAKDOWN_ROUNDS, 50),
               percentile(samples[pi], BREAKDOWN_ROUNDS, 99));
    }

    BN_BLINDING_free(blinding);
    BN_free(n_ct);
    BN_free(n);
    BN_free(e);
    BN_MONT_CTX_free(mont_n);
    BN_CTX_free(ctx);
    comb_rsa_pub_free(pub);
    spk_secret_free(prod);
    spk_secret_free(tuple);
    spk_secret_free(ys);
    spk_arena_free(arena);
}

int main(int argc, char **argv)
{
    static const char *const names[HOLDERS_MAX] = {"edge", "holder-a", "holder-b"};
    static struct bench_size bs[SIZES];
    double seconds = 4.0;
    double ratio_2048_k3 = 0;
    int r;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_combiner DATA_DIR [SECONDS_PER_SIZE]\n");
        return 2;
    }
    if (argc == 3 && (seconds = atof(argv[2])) <= 0) {
        fprintf(stderr, "bench_combiner: SECONDS_PER_SIZE must be a positive number\n");
        return 2;
    }
    if ((r = spk_mem_init()) != 0) {
        die("spk_mem_init", r);
    }
    for (size_t i = 0; i < HOLDERS_MAX; i++) {
        if ((holder_sk[i] = spk_secret_new(sizeof(*holder_sk[i]))) == NULL ||
            (r = split_holder_keygen(holder_sk[i], names[i])) != 0) {
            die("split_holder_keygen", r);
        }
        holder_pk[i] = holder_sk[i]->pub;
    }

    printf(
        "splitkey bench-combiner: combine + sign (PKCS#1 v1.5 SHA-256) + wipe through the "
        "combiner API,\nk in-process shares (the local one + k-1 file sources kept open, "
        "answering at once), against\nOpenSSL EVP_PKEY_sign with the whole key loaded, "
        "interleaved in blocks, %.1f s per key size; ops/s are per CPU-second of this process\n\n",
        seconds);
    printf("%-9s %3s %12s %12s %8s %14s %14s\n", "key", "k", "comb ops/s", "ossl ops/s", "ratio",
           "lifetime p50", "lifetime p99");
    for (size_t s = 0; s < SIZES; s++) {
        bench_size_setup(&bs[s], argv[1], sizes[s]);
        run_interleaved(&bs[s], seconds);
        for (size_t ki = 0; ki < KS; ki++) {
            struct bench_comb *bc = &bs[s].comb[ki];
            double comb_rate = (double)bc->ops / (bc->total_us / 1e6);
            double ossl_rate = (double)bs[s].ossl_ops / (bs[s].ossl_us / 1e6);
            struct comb_stats st;

            comb_stats_get(bc->comb, &st);
            printf("RSA-%-5u %3u %12.1f %12.1f %8.3f %11.1f us %11.1f us\n", sizes[s], bc->k,
                   comb_rate, ossl_rate, comb_rate / ossl_rate, st.lifetime.p50_us,
                   st.lifetime.p99_us);
            if (sizes[s] == 2048 && bc->k == 3) {
                ratio_2048_k3 = comb_rate / ossl_rate;
            }
        }
        fflush(stdout);
    }

    for (size_t ki = 0; ki < KS; ki++) {
        struct comb_stats st;

        comb_stats_get(bs[0].comb[ki].comb, &st);
        printf("\ncombiner's own timings, RSA-2048, k = %u (us; per batch except op and total):\n",
               bs[0].comb[ki].k);
        print_timing("gather", &st.gather);
        print_timing("check", &st.check);
        print_timing("interpolate", &st.interpolate);
        print_timing("op", &st.op);
        print_timing("wipe", &st.wipe);
        print_timing("lifetime", &st.lifetime);
        print_timing("total", &st.total);
    }
    breakdown(&bs[0], 3);

    for (size_t s = 0; s < SIZES; s++) {
        for (size_t ki = 0; ki < KS; ki++) {
            bench_comb_cleanup(&bs[s].comb[ki]);
        }
        EVP_PKEY_CTX_free(bs[s].ossl);
        split_rsa_key_cleanup(&bs[s].key);
    }
    for (size_t i = 0; i < HOLDERS_MAX; i++) {
        spk_secret_free(holder_sk[i]);
    }
    printf("\nratio = combiner ops/s / OpenSSL ops/s for RSA-2048, k = 3 (target >= 0.90)\n");
    printf("ratio=%.3f\n", ratio_2048_k3);
    return 0;
}
