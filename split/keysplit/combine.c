/*
 * keysplit combine: disaster recovery. Rebuilds the RSA private key from k
 * shares, after every check verify makes, into a new PKCS#8 PEM file of mode
 * 0600 whose public key is checked against the record.
 */
#include <getopt.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "split/keysplit/keysplit.h"

static void combine_usage(FILE *to)
{
    fprintf(to, "Usage: keysplit combine --record R --share S --holder-key K ... --out KEY.pem\n"
                "\n"
                "Disaster recovery: opens at least k shares (each S with the holder key\n"
                "file K in the same position), checks them as 'keysplit verify' does,\n"
                "rebuilds the RSA private key and writes it, unencrypted PKCS#8 PEM, to a\n"
                "new file KEY.pem with mode 0600. Refuses to overwrite KEY.pem.\n"
                "A threshold-mode split gives the same key: k key shares yield a multiple\n"
                "of (p-1)(q-1), which factors the modulus.\n"
                "WARNING: the whole key is then on disk again; keep it offline.\n");
}

/* combine_check_key: the rebuilt key is the record's, and OpenSSL's own check passes. */
static int combine_check_key(const char *cmd, EVP_PKEY *pkey, const struct proto_record *rec)
{
    uint8_t id[PROTO_KEY_ID_LEN];
    EVP_PKEY_CTX *ctx = NULL;
    int ok;

    if (proto_key_id(id, pkey) != 0 || sodium_memcmp(id, rec->key_id, PROTO_KEY_ID_LEN) != 0) {
        return split_cli_fail(cmd, "the rebuilt key's public key is not the record's (%s)",
                              spk_strerror(SPK_ERR_KEY_MISMATCH));
    }
    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL) {
        return split_cli_fail(cmd, "out of memory");
    }
    ok = EVP_PKEY_check(ctx);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    if (ok != 1) {
        return split_cli_fail(cmd, "the rebuilt key fails OpenSSL's key check");
    }
    return SPLIT_CLI_OK;
}

int split_cmd_combine(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"record", required_argument, NULL, 'r'},
        {"share", required_argument, NULL, 's'},
        {"holder-key", required_argument, NULL, 'K'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "combine";
    const char *out_path = NULL;
    struct split_cli_shareset set = {0};
    struct split_cli_opened o = {0};
    uint8_t *tuple = NULL;
    EVP_PKEY *pkey = NULL;
    char id[2 * PROTO_KEY_ID_LEN + 1];
    int c;
    int r;
    int ret = SPLIT_CLI_FAIL;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'o') {
            out_path = optarg;
        } else if ((ret = split_cli_common_option(cmd, &set, c, optarg, argv, combine_usage)) !=
                   SPLIT_CLI_CONTINUE) {
            return ret;
        }
    }
    if ((ret = split_cli_no_operands(cmd, argc, argv)) != SPLIT_CLI_OK) {
        return ret;
    }
    if (set.record == NULL || out_path == NULL || set.num_shares == 0) {
        return split_cli_usage(cmd, "--record, --share, --holder-key and --out are required");
    }
    if ((ret = split_cli_shareset_check(cmd, &set)) != SPLIT_CLI_OK) {
        return ret;
    }
    if (split_cli_out_absent(cmd, out_path) != SPLIT_CLI_OK) {
        return SPLIT_CLI_FAIL;
    }
    if ((ret = split_cli_open_shares(&o, cmd, set.record, set.share_paths, set.key_paths,
                                     set.num_shares, split_cli_verbose)) != SPLIT_CLI_OK) {
        goto out;
    }
    ret = SPLIT_CLI_FAIL;
    if (o.rec->mode == PROTO_MODE_THRESHOLD) {
        if (split_cli_tss_recover(cmd, &pkey, &o) != SPLIT_CLI_OK) {
            goto out;
        }
    } else {
        if ((tuple = spk_secret_new(split_tuple_len(&o.f))) == NULL) {
            split_cli_fail(cmd, "out of (locked) memory");
            goto out;
        }
        if (split_cli_combine(cmd, tuple, &o) != SPLIT_CLI_OK) {
            goto out;
        }
        if ((r = split_rsa_pkey_from_tuple(&pkey, &o.f, tuple, o.rec->modulus, o.rec->modulus_len,
                                           o.rec->exponent, o.rec->exponent_len)) != 0) {
            split_cli_fail(cmd, "cannot rebuild the key: %s", spk_strerror(r));
            goto out;
        }
    }
    if (combine_check_key(cmd, pkey, o.rec) != SPLIT_CLI_OK) {
        goto out;
    }
    if ((r = split_rsa_pem_write_new(out_path, pkey)) != 0) {
        split_cli_fail(cmd, "cannot write %s: %s", out_path, spk_strerror(r));
        goto out;
    }
    split_cli_hex(id, o.rec->key_id, PROTO_KEY_ID_LEN);
    printf("ok: wrote %s (key %s, from %u shares)\n", out_path, id, o.rec->threshold);
    ret = SPLIT_CLI_OK;
out:
    EVP_PKEY_free(pkey);
    spk_secret_free(tuple);
    split_cli_opened_cleanup(&o);
    return ret;
}
