/*
 * bench_split: time Shamir splitting and interpolation of RSA CRT tuples next
 * to one OpenSSL private-key operation with a loaded key, in the same run.
 *
 * usage: bench_split DATA_DIR   (reads rsa2048.pem, rsa3072.pem, rsa4096.pem)
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "split/split.h"

#define BENCH_K 3
#define BENCH_N 5

struct bench_result {
    unsigned bits;
    unsigned field_bits;
    double split_us;
    double interp_us;
    double sign_us;
};

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static EVP_PKEY *load_key(const char *dir, unsigned bits)
{
    char path[4096];
    EVP_PKEY *pkey;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/rsa%u.pem", dir, bits);
    fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "bench_split: cannot open %s\n", path);
        return NULL;
    }
    pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    if (pkey == NULL) {
        fprintf(stderr, "bench_split: %s is not a PEM private key\n", path);
    }
    return pkey;
}

/* export_tuple: p, q, dp, dq, qinv into |tuple| (secret memory) for field |f|. */
static int export_tuple(uint8_t *tuple, const struct split_field *f, const EVP_PKEY *pkey)
{
    static const char *const names[SPLIT_NUM_SECRETS] = {
        OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    BIGNUM *bn = NULL;
    size_t i;
    int r = -1;

    for (i = 0; i < SPLIT_NUM_SECRETS; i++) {
        if (EVP_PKEY_get_bn_param(pkey, names[i], &bn) != 1 ||
            BN_bn2binpad(bn, tuple + i * f->y_len, (int)f->y_len) < 0) {
            goto out;
        }
        BN_clear_free(bn);
        bn = NULL;
    }
    r = 0;
out:
    BN_clear_free(bn);
    return r;
}

static unsigned prime_bits(const EVP_PKEY *pkey)
{
    BIGNUM *p = NULL, *q = NULL;
    unsigned b = 0;

    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, &p) == 1 &&
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, &q) == 1) {
        b = (unsigned)(BN_num_bits(p) > BN_num_bits(q) ? BN_num_bits(p) : BN_num_bits(q));
    }
    BN_clear_free(p);
    BN_clear_free(q);
    return b;
}

static int bench_sign(EVP_PKEY *pkey, unsigned runs, double *out_us)
{
    uint8_t digest[32], sig[1024];
    EVP_PKEY_CTX *ctx = NULL;
    double *t = calloc(runs, sizeof(double));
    unsigned i;
    int r = -1;

    randombytes_buf(digest, sizeof(digest));
    ctx = EVP_PKEY_CTX_new(pkey, NULL);
    if (t == NULL || ctx == NULL || EVP_PKEY_sign_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1) {
        goto out;
    }
    /* One untimed operation: OpenSSL sets up blinding on first use. */
    for (i = 0; i <= runs; i++) {
        size_t sig_len = sizeof(sig);
        double t0 = now_us();

        if (EVP_PKEY_sign(ctx, sig, &sig_len, digest, sizeof(digest)) != 1) {
            goto out;
        }
        if (i > 0) {
            t[i - 1] = now_us() - t0;
        }
    }
    *out_us = median(t, runs);
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    free(t);
    return r;
}

static int bench_key(const char *dir, unsigned bits, struct bench_result *res)
{
    static const uint8_t xs[BENCH_N] = {1, 2, 3, 4, 5};
    static const uint8_t pick[BENCH_K] = {0, 2, 4};
    const unsigned split_runs = 301, interp_runs = 5001;
    unsigned sign_runs = bits <= 2048 ? 501 : 201;
    struct split_field f;
    EVP_PKEY *pkey = NULL;
    struct spk_arena *arena = NULL;
    uint8_t *tuple = NULL, *ys = NULL, *out = NULL;
    const uint8_t *yp[BENCH_K];
    uint8_t pxs[BENCH_K];
    double *t = NULL;
    size_t tl;
    unsigned i;
    int r = -1;

    res->bits = bits;
    pkey = load_key(dir, bits);
    if (pkey == NULL || split_field_for_primes(&f, prime_bits(pkey)) != 0) {
        goto out;
    }
    res->field_bits = f.bits;
    tl = split_tuple_len(&f);
    tuple = spk_secret_new(tl);
    out = spk_secret_new(tl);
    ys = spk_secret_new(BENCH_N * tl);
    arena = spk_arena_new(split_interpolate_scratch_len(&f, BENCH_K));
    t = calloc(interp_runs, sizeof(double));
    if (tuple == NULL || out == NULL || ys == NULL || arena == NULL || t == NULL ||
        export_tuple(tuple, &f, pkey) != 0) {
        goto out;
    }

    for (i = 0; i < split_runs; i++) {
        double t0 = now_us();

        if (split_make_shares(&f, BENCH_K, BENCH_N, xs, tuple, ys) != 0) {
            goto out;
        }
        t[i] = now_us() - t0;
    }
    res->split_us = median(t, split_runs);

    for (i = 0; i < BENCH_K; i++) {
        pxs[i] = xs[pick[i]];
        yp[i] = ys + pick[i] * tl;
    }
    for (i = 0; i < interp_runs; i++) {
        double t0 = now_us();

        if (split_interpolate(&f, BENCH_K, pxs, yp, out, arena) != 0) {
            goto out;
        }
        spk_arena_reset(arena);
        t[i] = now_us() - t0;
    }
    res->interp_us = median(t, interp_runs);
    if (sodium_memcmp(out, tuple, tl) != 0) {
        fprintf(stderr, "bench_split: RSA-%u: interpolation did not give the key back\n", bits);
        goto out;
    }
    if (bench_sign(pkey, sign_runs, &res->sign_us) != 0) {
        fprintf(stderr, "bench_split: RSA-%u: OpenSSL signing failed\n", bits);
        goto out;
    }
    r = 0;
out:
    free(t);
    spk_arena_free(arena);
    spk_secret_free(ys);
    spk_secret_free(out);
    spk_secret_free(tuple);
    EVP_PKEY_free(pkey);
    return r;
}

int main(int argc, char **argv)
{
    static const unsigned sizes[] = {2048, 3072, 4096};
    struct bench_result res[3];
    size_t i;

    if (argc != 2) {
        fprintf(stderr, "usage: bench_split DATA_DIR\n");
        return 2;
    }
    if (spk_mem_init() != 0) {
        fprintf(stderr, "bench_split: spk_mem_init failed\n");
        return 1;
    }
    printf("splitkey bench-split: Shamir k=%d of n=%d over Mersenne fields, medians, "
           "against one OpenSSL RSA private-key operation\n"
           "(EVP_PKEY_sign, PKCS#1 v1.5 SHA-256, loaded key) measured in the same run\n\n",
           BENCH_K, BENCH_N);
    printf("%-9s %6s %12s %14s %13s %12s %11s\n", "key", "field", "split_us", "interpolate_us",
           "ossl_sign_us", "interp/sign", "split/sign");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        if (bench_key(argv[1], sizes[i], &res[i]) != 0) {
            return 1;
        }
        printf("RSA-%-5u %6u %12.1f %14.2f %13.1f %12.4f %11.4f\n", res[i].bits, res[i].field_bits,
               res[i].split_us, res[i].interp_us, res[i].sign_us, res[i].interp_us / res[i].sign_us,
               res[i].split_us / res[i].sign_us);
        fflush(stdout);
    }
    printf("\nratio = interpolate time / OpenSSL sign time for RSA-2048 (lower is better)\n");
    printf("ratio=%.4f\n", res[0].interp_us / res[0].sign_us);
    return 0;
}
