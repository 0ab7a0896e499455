/*
 * keysplit genkey: a new RSA key whose primes are safe primes, for threshold
 * mode, where Shoup's verification keys and proofs of correct signature
 * shares need them. An ordinary key splits in threshold mode too; a faulty
 * holder is then found by trying other subsets of signature shares.
 */
#include <getopt.h>
#include <stdio.h>

#include "split/keysplit/keysplit.h"

static void genkey_usage(FILE *to)
{
    fprintf(to, "Usage: keysplit genkey --safe-primes BITS --out KEY.pem\n"
                "\n"
                "Makes a new two-prime RSA key of BITS bits (2048 to 8192, a multiple of\n"
                "16) with public exponent 65537 whose primes are safe primes p = 2p'+1,\n"
                "q = 2q'+1, and writes it, unencrypted PKCS#8 PEM, to the new file KEY.pem\n"
                "with mode 0600 (refuses to overwrite it). Slow: a 1024-bit safe prime\n"
                "takes seconds, a 2048-bit one minutes. Split it with\n"
                "'keysplit split --mode threshold' (its record then carries the\n"
                "verification keys for proofs of correct signature shares) and delete\n"
                "KEY.pem.\n");
}

int split_cmd_genkey(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"safe-primes", required_argument, NULL, 'b'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "genkey";
    const char *bits_arg = NULL;
    const char *out_path = NULL;
    EVP_PKEY *pkey = NULL;
    char id[2 * PROTO_KEY_ID_LEN + 1];
    uint8_t key_id[PROTO_KEY_ID_LEN];
    unsigned bits = 0;
    int c;
    int r;
    int st;
    int ret = SPLIT_CLI_FAIL;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            bits_arg = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        default:
            if ((st = split_cli_common_option(cmd, NULL, c, optarg, argv, genkey_usage)) !=
                SPLIT_CLI_CONTINUE) {
                return st;
            }
            break;
        }
    }
    if ((st = split_cli_no_operands(cmd, argc, argv)) != SPLIT_CLI_OK) {
        return st;
    }
    if (bits_arg == NULL || out_path == NULL) {
        return split_cli_usage(cmd, "--safe-primes and --out are required");
    }
    if (!split_cli_parse_uint(bits_arg, SPLIT_RSA_BITS_MAX, &bits) || bits < SPLIT_RSA_BITS_MIN ||
        bits % 16 != 0) {
        return split_cli_usage(cmd, "--safe-primes '%s': 2048 to 8192 bits, a multiple of 16",
                               bits_arg);
    }
    if (split_cli_out_absent(cmd, out_path) != SPLIT_CLI_OK) {
        return SPLIT_CLI_FAIL;
    }
    if ((r = split_tss_safe_key_new(&pkey, bits)) != 0) {
        split_cli_fail(cmd, "cannot make the key: %s", spk_strerror(r));
        goto out;
    }
    if ((r = split_rsa_pem_write_new(out_path, pkey)) != 0) {
        split_cli_fail(cmd, "cannot write %s: %s", out_path, spk_strerror(r));
        goto out;
    }
    if (proto_key_id(key_id, pkey) == 0) {
        split_cli_hex(id, key_id, PROTO_KEY_ID_LEN);
        printf("ok: wrote %s (RSA-%u, safe primes, key %s)\n", out_path, bits, id);
    }
    ret = SPLIT_CLI_OK;
out:
    EVP_PKEY_free(pkey);
    return ret;
}
