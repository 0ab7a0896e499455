/*
 * keysplit verify: a dry run of a recovery. Checks the record's signature,
 * opens each share with its holder's key and checks its commitment, and with
 * at least k shares rebuilds the key in locked memory and checks p * q == N.
 * Writes nothing.
 */
#include <getopt.h>
#include <stdio.h>

#include "split/keysplit/keysplit.h"

static void verify_usage(FILE *to)
{
    fprintf(to, "Usage: keysplit verify --record R [--share S --holder-key K ...]\n"
                "\n"
                "Checks the record's signature by its own key; opens each share S with\n"
                "the holder key file K given in the same position and checks it against\n"
                "its commitment in the record; with at least k shares, rebuilds the key in\n"
                "locked memory and checks that p * q is the record's modulus (threshold\n"
                "mode: the shares sign a random test digest with RSA-PSS SHA-256, and the\n"
                "signature is checked with the public key; when the record has verification\n"
                "keys (a key of safe primes), each share is checked against its key and each\n"
                "signature share's proof of correctness is checked too). Writes nothing.\n");
}

int split_cmd_verify(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"record", required_argument, NULL, 'r'},
        {"share", required_argument, NULL, 's'},
        {"holder-key", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "verify";
    struct split_cli_shareset set = {0};
    struct split_cli_opened o = {0};
    uint8_t *tuple = NULL;
    int c;
    int ret = SPLIT_CLI_FAIL;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if ((ret = split_cli_common_option(cmd, &set, c, optarg, argv, verify_usage)) !=
            SPLIT_CLI_CONTINUE) {
            return ret;
        }
    }
    if ((ret = split_cli_no_operands(cmd, argc, argv)) != SPLIT_CLI_OK) {
        return ret;
    }
    if (set.record == NULL) {
        return split_cli_usage(cmd, "--record is required");
    }
    if ((ret = split_cli_shareset_check(cmd, &set)) != SPLIT_CLI_OK) {
        return ret;
    }
    if ((ret = split_cli_open_shares(&o, cmd, set.record, set.share_paths, set.key_paths,
                                     set.num_shares, true)) != SPLIT_CLI_OK) {
        goto out;
    }
    if (o.num < o.rec->threshold) {
        if (o.rec->has_vkeys && (ret = split_cli_tss_vkeys_check(cmd, &o)) != SPLIT_CLI_OK) {
            goto out;
        }
        printf("ok: record and %zu share(s) verified%s; %u shares are needed to check that the "
               "key rebuilds\n",
               o.num, o.rec->has_vkeys ? " (each against its verification key)" : "",
               o.rec->threshold);
        ret = SPLIT_CLI_OK;
        goto out;
    }
    if (o.rec->mode == PROTO_MODE_THRESHOLD) {
        if ((ret = split_cli_tss_sign_test(cmd, &o)) != SPLIT_CLI_OK) {
            goto out;
        }
        printf("ok: record and %zu share(s) verified; they sign a test digest (RSA-PSS "
               "SHA-256) that verifies with the public key%s\n",
               o.num,
               o.rec->has_vkeys ? "; each signature share's proof of correctness verifies "
                                  "against the record's verification keys"
                                : "");
        goto out;
    }
    if ((tuple = spk_secret_new(split_tuple_len(&o.f))) == NULL) {
        ret = split_cli_fail(cmd, "out of (locked) memory");
        goto out;
    }
    if ((ret = split_cli_combine(cmd, tuple, &o)) != SPLIT_CLI_OK) {
        goto out;
    }
    printf("ok: record and %zu share(s) verified; %u of them rebuild the key (p * q == N)\n", o.num,
           o.rec->threshold);
    ret = SPLIT_CLI_OK;
out:
    spk_secret_free(tuple);
    split_cli_opened_cleanup(&o);
    return ret;
}
