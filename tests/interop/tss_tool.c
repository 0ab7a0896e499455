/*
 * tss_tool: splitkey's threshold-mode code on the command line, for the CIRCL
 * interop test (tests/integration/test_tss_circl.sh) and tools/bench-threshold.
 * A test tool: `open` prints a key share in the clear, which no production
 * binary ever does. Hex in, hex out.
 *
 *   tss_tool pub RECORD                      n_hex e_decimal players threshold
 *   tss_tool encode RECORD OP DIGEST [SALT]  the encoded message (OP in hex, e.g. 11)
 *   tss_tool open RECORD SHARE KEY           index s_hex
 *   tss_tool sign RECORD SHARE KEY EM        our signature share x_i
 *   tss_tool combine RECORD EM INDEX:XI...   the signature; faulty parties on stderr
 *   tss_tool verify RECORD EM INDEX XI C Z   Shoup's proof of x_i (record with verification
 *                                            keys): prints "ok" (exit 0) or "fault" (exit 1)
 *   tss_tool bench RECORD SHARE KEY SECONDS [prove|verify]
 *                                            signature shares: "ops cpu_seconds"; with
 *                                            prove each share also gets its proof; with
 *                                            verify only the checking of one proof is timed
 *   tss_tool bench-noncrt KEY.pem SECONDS    OpenSSL's m^d mod n, no CRT: "ops cpu_seconds"
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "split/split.h"

static void die(const char *what)
{
    fprintf(stderr, "tss_tool: %s\n", what);
    exit(1);
}

static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
    size_t len = 0;

    if (sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &len, NULL) != 0) {
        die("bad hex");
    }
    return len;
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
    printf("\n");
}

static void load_record(struct proto_record *rec, const char *path)
{
    uint8_t *text = NULL;
    size_t len = 0;

    if (spk_file_read(path, PROTO_FILE_MAX, &text, &len) != 0 ||
        proto_record_decode(rec, text, len) != 0 || split_record_verify(rec) != 0 ||
        rec->mode != PROTO_MODE_THRESHOLD) {
        die("not a valid threshold-mode record");
    }
    spk_file_free(text, len);
}

/* open_share: s_i of |share_path| opened with |key_path| into secret memory. */
static uint8_t *open_share(const struct proto_record *rec, const char *share_path,
                           const char *key_path, uint8_t *index)
{
    struct proto_share_file sf;
    struct proto_holder_secret *key = NULL;
    struct split_opened_share os;
    uint8_t *text = NULL;
    uint8_t *s = NULL;
    size_t len = 0;

    if (spk_file_read(share_path, PROTO_FILE_MAX, &text, &len) != 0 ||
        proto_share_file_decode(&sf, text, len) != 0) {
        die("not a valid share file");
    }
    spk_file_free(text, len);
    if (split_holder_secret_load(&key, key_path) != 0) {
        die("cannot load the holder key");
    }
    if ((s = spk_secret_new(rec->modulus_len)) == NULL ||
        split_share_open(s, rec->modulus_len, &sf, key) != 0) {
        die("the share does not open");
    }
    memcpy(os.key_id, sf.key_id, PROTO_KEY_ID_LEN);
    memcpy(os.split_id, sf.split_id, PROTO_SPLIT_ID_LEN);
    os.index = sf.index;
    os.holder = sf.holder;
    os.y = s;
    if (split_share_check(rec, NULL, &os) != 0) {
        die("the share does not match the record");
    }
    spk_secret_free(key);
    *index = sf.index;
    return s;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static double wall_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum bench_what { BENCH_SIGN, BENCH_PROVE, BENCH_VERIFY };

static int cmd_bench(const struct proto_record *rec, const uint8_t *s, unsigned index, double secs,
                     enum bench_what what)
{
    struct split_tss_signer *signer = NULL;
    uint8_t em[PROTO_BN_MAX];
    uint8_t xi[PROTO_BN_MAX];
    uint8_t c[PROTO_TSS_C_LEN];
    uint8_t z[PROTO_TSS_Z_MAX];
    unsigned long ops = 0;
    double c0;
    double end;

    randombytes_buf(em + 1, rec->modulus_len - 1);
    em[0] = 0;
    if (split_tss_signer_new(&signer, rec->modulus, rec->modulus_len, rec->num_shares, s,
                             rec->modulus_len) != 0) {
        die("cannot make a signer");
    }
    if (what != BENCH_SIGN &&
        (!rec->has_vkeys ||
         split_tss_signer_set_vkeys(signer, rec->vkey_base, proto_record_vkey(rec, index)) != 0 ||
         split_tss_sign_share(signer, xi, em) != 0 || split_tss_prove(signer, c, z, em, xi) != 0)) {
        die("the record has no verification keys of this share");
    }
    c0 = cpu_seconds();
    end = wall_seconds() + secs;
    while (wall_seconds() < end) {
        if (what == BENCH_VERIFY) {
            if (split_tss_share_verify(rec, em, index, xi, c, z) != 0) {
                die("verify failed");
            }
        } else if (split_tss_sign_share(signer, xi, em) != 0 ||
                   (what == BENCH_PROVE && split_tss_prove(signer, c, z, em, xi) != 0)) {
            die("sign failed");
        }
        ops++;
    }
    printf("%lu %.6f\n", ops, cpu_seconds() - c0);
    split_tss_signer_free(signer);
    return 0;
}

/* cmd_bench_noncrt: one full-size constant-time exponentiation by d, as OpenSSL does without CRT.
 */
static int cmd_bench_noncrt(const char *pem, double secs)
{
    struct split_rsa_key key = {0};
    char why[SPLIT_WHY_MAX];
    BIGNUM *n = NULL;
    BIGNUM *d = NULL;
    BIGNUM *x = BN_new();
    BIGNUM *y = BN_new();
    BN_CTX *ctx = BN_CTX_new();
    BN_MONT_CTX *mont = BN_MONT_CTX_new();
    unsigned long ops = 0;
    double c0;
    double end;

    if (split_rsa_key_load(&key, pem, NULL, why, sizeof(why)) != 0 ||
        EVP_PKEY_get_bn_param(key.pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(key.pkey, OSSL_PKEY_PARAM_RSA_D, &d) != 1 || x == NULL || y == NULL ||
        ctx == NULL || mont == NULL || BN_MONT_CTX_set(mont, n, ctx) != 1 ||
        BN_rand_range(x, n) != 1) {
        die("cannot load the key");
    }
    BN_set_flags(d, BN_FLG_CONSTTIME);
    c0 = cpu_seconds();
    end = wall_seconds() + secs;
    while (wall_seconds() < end) {
        if (BN_mod_exp_mont_consttime(y, x, d, n, ctx, mont) != 1) {
            die("exponentiation failed");
        }
        ops++;
    }
    printf("%lu %.6f\n", ops, cpu_seconds() - c0);
    BN_clear_free(d);
    BN_free(n);
    BN_free(x);
    BN_free(y);
    BN_CTX_free(ctx);
    BN_MONT_CTX_free(mont);
    split_rsa_key_cleanup(&key);
    return 0;
}

int main(int argc, char **argv)
{
    struct proto_record *rec;
    uint8_t em[PROTO_BN_MAX];
    uint8_t out[PROTO_BN_MAX];
    uint8_t index = 0;

    if (spk_mem_init() != 0 || (rec = calloc(1, sizeof(*rec))) == NULL) {
        die("cannot initialise");
    }
    if (argc == 4 && strcmp(argv[1], "bench-noncrt") == 0) {
        return cmd_bench_noncrt(argv[2], atof(argv[3]));
    }
    if (argc < 3) {
        die("usage: see the comment at the top of tests/interop/tss_tool.c");
    }
    load_record(rec, argv[2]);
    if (strcmp(argv[1], "pub") == 0 && argc == 3) {
        uint64_t e = 0;

        for (size_t i = 0; i < rec->exponent_len; i++) {
            e = (e << 8) | rec->exponent[i];
        }
        for (size_t i = 0; i < rec->modulus_len; i++) {
            printf("%02x", rec->modulus[i]);
        }
        printf(" %llu %u %u\n", (unsigned long long)e, rec->num_shares, rec->threshold);
    } else if (strcmp(argv[1], "encode") == 0 && (argc == 5 || argc == 6)) {
        uint8_t digest[64];
        uint8_t salt[64];
        size_t digest_len = unhex(digest, sizeof(digest), argv[4]);
        size_t salt_len = argc == 6 ? unhex(salt, sizeof(salt), argv[5]) : 0;
        unsigned long op = strtoul(argv[3], NULL, 16);

        if (op > 0xff || split_pad_encode(em, rec->modulus_len, proto_record_modulus_bits(rec),
                                          (uint8_t)op, digest, digest_len, salt, salt_len) != 0) {
            die("cannot encode");
        }
        print_hex(em, rec->modulus_len);
    } else if (strcmp(argv[1], "open") == 0 && argc == 5) {
        uint8_t *s = open_share(rec, argv[3], argv[4], &index);

        printf("%u ", index);
        print_hex(s, rec->modulus_len);
        spk_secret_free(s);
    } else if (strcmp(argv[1], "sign") == 0 && argc == 6) {
        uint8_t *s = open_share(rec, argv[3], argv[4], &index);
        struct split_tss_signer *signer = NULL;

        if (unhex(em, sizeof(em), argv[5]) != rec->modulus_len ||
            split_tss_signer_new(&signer, rec->modulus, rec->modulus_len, rec->num_shares, s,
                                 rec->modulus_len) != 0 ||
            split_tss_sign_share(signer, out, em) != 0) {
            die("cannot sign");
        }
        print_hex(out, rec->modulus_len);
        split_tss_signer_free(signer);
        spk_secret_free(s);
    } else if (strcmp(argv[1], "combine") == 0 && argc >= 5) {
        struct split_tss_part parts[PROTO_SHARES_MAX];
        static uint8_t xs[PROTO_SHARES_MAX][PROTO_BN_MAX];
        uint8_t bad[PROTO_SHARES_MAX];
        size_t num = (size_t)argc - 4;
        int r;

        if (num > PROTO_SHARES_MAX || unhex(em, sizeof(em), argv[3]) != rec->modulus_len) {
            die("bad arguments");
        }
        for (size_t i = 0; i < num; i++) {
            char *colon = strchr(argv[4 + i], ':');

            if (colon == NULL) {
                die("a share is INDEX:XI_HEX");
            }
            *colon = '\0';
            parts[i].index = (unsigned)strtoul(argv[4 + i], NULL, 10);
            if (unhex(xs[i], sizeof(xs[i]), colon + 1) != rec->modulus_len) {
                die("a signature share of the wrong length");
            }
            parts[i].xi = xs[i];
        }
        r = split_tss_combine(out, bad, rec->modulus, rec->modulus_len, rec->exponent,
                              rec->exponent_len, rec->num_shares, rec->threshold, em, parts, num);
        for (size_t i = 0; i < num; i++) {
            if (bad[i]) {
                fprintf(stderr, "tss_tool: faulty party %u\n", parts[i].index);
            }
        }
        if (r != 0) {
            fprintf(stderr, "tss_tool: combine: %s\n", spk_strerror(r));
            return 1;
        }
        print_hex(out, rec->modulus_len);
    } else if (strcmp(argv[1], "verify") == 0 && argc == 8) {
        static uint8_t xi[PROTO_BN_MAX], z[PROTO_TSS_Z_MAX];
        uint8_t c[PROTO_TSS_C_LEN];
        int r;

        if (unhex(em, sizeof(em), argv[3]) != rec->modulus_len ||
            unhex(xi, sizeof(xi), argv[5]) != rec->modulus_len ||
            unhex(c, sizeof(c), argv[6]) != sizeof(c) ||
            unhex(z, sizeof(z), argv[7]) != rec->modulus_len + PROTO_TSS_Z_EXTRA) {
            die("bad arguments");
        }
        r = split_tss_share_verify(rec, em, (unsigned)strtoul(argv[4], NULL, 10), xi, c, z);
        printf("%s\n", r == 0 ? "ok" : "fault");
        free(rec);
        return r == 0 ? 0 : 1;
    } else if (strcmp(argv[1], "bench") == 0 && (argc == 6 || argc == 7)) {
        uint8_t *s = open_share(rec, argv[3], argv[4], &index);
        enum bench_what what = BENCH_SIGN;

        if (argc == 7) {
            if (strcmp(argv[6], "prove") == 0) {
                what = BENCH_PROVE;
            } else if (strcmp(argv[6], "verify") == 0) {
                what = BENCH_VERIFY;
            } else {
                die("bench ... [prove|verify]");
            }
        }
        cmd_bench(rec, s, index, atof(argv[5]), what);
        spk_secret_free(s);
    } else {
        die("usage: see the comment at the top of tests/interop/tss_tool.c");
    }
    free(rec);
    return 0;
}
