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
                "locked memory and checks that p * q is the record's modulus. Writes nothing.\n");
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
    const char *record = NULL;
    char *share_paths[PROTO_SHARES_MAX];
    char *key_paths[PROTO_SHARES_MAX];
    size_t num_shares = 0;
    size_t num_keys = 0;
    struct split_cli_opened o = {0};
    uint8_t *tuple = NULL;
    int c;
    int ret = SPLIT_CLI_FAIL;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            record = optarg;
            break;
        case 's':
            if (num_shares == PROTO_SHARES_MAX) {
                return split_cli_usage(cmd, "more than %d shares", PROTO_SHARES_MAX);
            }
            share_paths[num_shares++] = optarg;
            break;
        case 'K':
            if (num_keys == PROTO_SHARES_MAX) {
                return split_cli_usage(cmd, "more than %d holder keys", PROTO_SHARES_MAX);
            }
            key_paths[num_keys++] = optarg;
            break;
        case 'h':
            verify_usage(stdout);
            return SPLIT_CLI_OK;
        default:
            return split_cli_bad_option(cmd, c, argv);
        }
    }
    if (optind < argc) {
        return split_cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (record == NULL) {
        return split_cli_usage(cmd, "--record is required");
    }
    if (num_shares != num_keys) {
        return split_cli_usage(cmd, "%zu --share but %zu --holder-key; give one key per share",
                               num_shares, num_keys);
    }
    if ((ret = split_cli_open_shares(&o, cmd, record, share_paths, key_paths, num_shares, true)) !=
        SPLIT_CLI_OK) {
        goto out;
    }
    if (o.num < o.rec->threshold) {
        printf("ok: record and %zu share(s) verified; %u shares are needed to check that the "
               "key rebuilds\n",
               o.num, o.rec->threshold);
        ret = SPLIT_CLI_OK;
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
