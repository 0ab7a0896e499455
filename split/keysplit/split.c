/*
 * keysplit split: one RSA key into DIR/KEYID.record and one
 * DIR/KEYID.HOLDER.share per holder. Every check, and every encoding, happens
 * before the first file is written, so a refusal leaves DIR as it was; a
 * write that fails midway removes what this run wrote.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "split/keysplit/keysplit.h"

#define SPLIT_CLI_SHARE_TEXT_MAX 8192
#define SPLIT_CLI_PATH_MAX 4096

static void split_usage(FILE *to)
{
    fprintf(to, "Usage: keysplit split --key KEY.pem [--passphrase-file FILE] --threshold K\n"
                "                      [--mode rebuild|threshold]\n"
                "                      --holder A.pub --holder B.pub ... --out DIR\n"
                "\n"
                "Splits a two-prime RSA key (2048-8192 bits, PEM, PKCS#1 or PKCS#8, maybe\n"
                "encrypted: the passphrase is FILE less one trailing newline) K-of-N among\n"
                "the N holders, in order: the first holder gets index 1. Writes the signed\n"
                "record DIR/KEYID.record and DIR/KEYID.NAME.share per holder, each share\n"
                "sealed to that holder's storage key, and prints KEYID. 2 <= K <= N <= 255.\n"
                "DIR is made (mode 0700) when it does not exist; its parent must.\n"
                "Refuses duplicate holders and existing files; then nothing is written.\n"
                "\n"
                "--mode rebuild (the default): Shamir shares of the CRT key; for every\n"
                "operation the combiner gathers K shares and rebuilds the key in locked\n"
                "memory. Fast (CRT: about a quarter of the CPU of threshold mode), serves\n"
                "signatures and RSA key-exchange decryption, but whoever holds the\n"
                "combiner's credential can gather K shares and so the key.\n"
                "--mode threshold: Shoup threshold RSA (as Cloudflare CIRCL's tss/rsa).\n"
                "Each holder returns a signature share made with its key share, and K of\n"
                "them multiply into an ordinary RSA signature: no process ever holds d, p\n"
                "or q again (keysplit combine can still rebuild the key from K shares).\n"
                "Signatures only (PKCS#1 v1.5 and PSS: TLS 1.3 and TLS 1.2 ECDHE, no RSA\n"
                "key exchange); each share is one full-size exponentiation, about four\n"
                "times a CRT signature. Needs a prime public exponent larger than N.\n"
                "For a key of safe primes (keysplit genkey --safe-primes) the record also\n"
                "carries Shoup's verification keys, and every signature share comes with a\n"
                "proof of its correctness (about three times a share's CPU on the holder),\n"
                "so a combiner names a wrong share at once; other keys' wrong shares are\n"
                "found by trying other subsets. Such a record holds N times the modulus\n"
                "length of keys, at most 32768 bytes (N <= 128 for RSA-2048, 64 for 4096).\n");
}

struct split_cli_out {
    char path[SPLIT_CLI_PATH_MAX];
    uint8_t *text;
    size_t len;
    unsigned mode;
};

/* split_write_all writes every file or, failing midway, removes those it wrote. */
static int split_write_all(const char *cmd, struct split_cli_out *files, size_t num)
{
    size_t i;
    int r;

    for (i = 0; i < num; i++) {
        r = spk_file_write_new(files[i].path, files[i].mode, files[i].text, files[i].len);
        if (r != 0) {
            split_cli_fail(cmd, "cannot write %s: %s; removed what was written", files[i].path,
                           spk_strerror(r));
            while (i > 0) {
                i--;
                unlink(files[i].path);
            }
            return SPLIT_CLI_FAIL;
        }
        if (split_cli_verbose) {
            fprintf(stderr, "keysplit: wrote %s\n", files[i].path);
        }
    }
    return SPLIT_CLI_OK;
}

int split_cmd_split(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"threshold", required_argument, NULL, 't'},
        {"mode", required_argument, NULL, 'm'},
        {"holder", required_argument, NULL, 'H'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "split";
    const char *key_path = NULL;
    const char *pw_path = NULL;
    const char *threshold = NULL;
    const char *dir = NULL;
    const char *holder_paths[PROTO_SHARES_MAX];
    unsigned num_holders = 0;
    unsigned k = 0;
    uint8_t split_mode = PROTO_MODE_REBUILD;
    struct proto_holder_pub *holders = NULL;
    struct split_rsa_key key = {0};
    struct proto_record *rec = NULL;
    struct proto_share_file *shares = NULL;
    struct split_cli_out *files = NULL;
    char why[SPLIT_WHY_MAX];
    char id[2 * PROTO_KEY_ID_LEN + 1];
    char name[2 * PROTO_KEY_ID_LEN + PROTO_NAME_MAX + 16];
    size_t i;
    size_t j;
    int c;
    int r;
    int st; /* the command line's status */
    int ret = SPLIT_CLI_FAIL;
    bool made_dir = false;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            key_path = optarg;
            break;
        case 'p':
            pw_path = optarg;
            break;
        case 't':
            threshold = optarg;
            break;
        case 'm':
            if (strcmp(optarg, "rebuild") == 0) {
                split_mode = PROTO_MODE_REBUILD;
            } else if (strcmp(optarg, "threshold") == 0) {
                split_mode = PROTO_MODE_THRESHOLD;
            } else {
                return split_cli_usage(cmd, "--mode '%s': rebuild or threshold", optarg);
            }
            break;
        case 'H':
            if (num_holders == PROTO_SHARES_MAX) {
                return split_cli_usage(cmd, "more than %d holders", PROTO_SHARES_MAX);
            }
            holder_paths[num_holders++] = optarg;
            break;
        case 'o':
            dir = optarg;
            break;
        default:
            if ((st = split_cli_common_option(cmd, NULL, c, optarg, argv, split_usage)) !=
                SPLIT_CLI_CONTINUE) {
                return st;
            }
            break;
        }
    }
    if ((st = split_cli_no_operands(cmd, argc, argv)) != SPLIT_CLI_OK) {
        return st;
    }
    if (key_path == NULL || threshold == NULL || dir == NULL || num_holders == 0) {
        return split_cli_usage(cmd, "--key, --threshold, --holder and --out are required");
    }
    if (!split_cli_parse_uint(threshold, 1000, &k)) {
        return split_cli_usage(cmd, "--threshold '%s' is not a number", threshold);
    }
    if (k < 2) {
        return split_cli_fail(cmd, "threshold %u; it must be at least 2", k);
    }
    if (k > num_holders) {
        return split_cli_fail(cmd, "threshold %u exceeds the %u holder(s)", k, num_holders);
    }
    if (split_cli_out_dir_check(cmd, dir) != SPLIT_CLI_OK) {
        return SPLIT_CLI_FAIL;
    }

    if ((holders = calloc(num_holders, sizeof(*holders))) == NULL ||
        (rec = calloc(1, sizeof(*rec))) == NULL ||
        (shares = calloc(num_holders, sizeof(*shares))) == NULL ||
        (files = calloc(num_holders + 1, sizeof(*files))) == NULL) {
        split_cli_fail(cmd, "out of memory");
        goto out;
    }
    for (i = 0; i < num_holders; i++) {
        if ((r = split_holder_pub_load(&holders[i], holder_paths[i])) != 0) {
            split_cli_fail(cmd, "cannot load holder %s: %s", holder_paths[i],
                           split_io_reason(holder_paths[i], r));
            goto out;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(holder_paths[i], holder_paths[j]) == 0) {
                split_cli_fail(cmd, "holder %s given twice", holder_paths[i]);
                goto out;
            }
        }
    }
    if ((r = split_rsa_key_load(&key, key_path, pw_path, why, sizeof(why))) != 0) {
        split_cli_fail(cmd, "%s", why);
        goto out;
    }
    r = split_mode == PROTO_MODE_THRESHOLD
            ? split_key_split_threshold(rec, shares, &key, k, holders, num_holders, why,
                                        sizeof(why))
            : split_key_split(rec, shares, &key, k, holders, num_holders, why, sizeof(why));
    if (r != 0) {
        split_cli_fail(cmd, "%s", why);
        goto out;
    }

    /* Every path first: one that exists refuses the whole run. */
    split_cli_hex(id, rec->key_id, PROTO_KEY_ID_LEN);
    snprintf(name, sizeof(name), "%s.record", id);
    if (split_cli_out_path(cmd, files[0].path, sizeof(files[0].path), dir, name) != SPLIT_CLI_OK) {
        goto out;
    }
    files[0].mode = 0644;
    for (i = 0; i < num_holders; i++) {
        snprintf(name, sizeof(name), "%s.%s.share", id, shares[i].holder);
        if (split_cli_out_path(cmd, files[i + 1].path, sizeof(files[i + 1].path), dir, name) !=
            SPLIT_CLI_OK) {
            goto out;
        }
        /* Sealed, so not secret; but only its holder has any use for it. */
        files[i + 1].mode = 0600;
    }

    /* Every encoding next, so nothing but the disk can fail once writing starts. */
    if ((files[0].text = malloc(PROTO_FILE_MAX)) == NULL) {
        split_cli_fail(cmd, "out of memory");
        goto out;
    }
    if ((r = proto_record_encode(files[0].text, PROTO_FILE_MAX, &files[0].len, rec)) != 0) {
        split_cli_fail(cmd, "cannot encode the record: %s", spk_strerror(r));
        goto out;
    }
    for (i = 0; i < num_holders; i++) {
        struct split_cli_out *fo = &files[i + 1];

        if ((fo->text = malloc(SPLIT_CLI_SHARE_TEXT_MAX)) == NULL) {
            split_cli_fail(cmd, "out of memory");
            goto out;
        }
        if ((r = proto_share_file_encode(fo->text, SPLIT_CLI_SHARE_TEXT_MAX, &fo->len,
                                         &shares[i])) != 0) {
            split_cli_fail(cmd, "cannot encode the share of %s: %s", shares[i].holder,
                           spk_strerror(r));
            goto out;
        }
    }
    if ((ret = split_cli_out_dir_make(cmd, dir, &made_dir)) != SPLIT_CLI_OK) {
        goto out;
    }
    if ((ret = split_write_all(cmd, files, num_holders + 1)) != SPLIT_CLI_OK) {
        if (made_dir) {
            rmdir(dir);
        }
        goto out;
    }
    printf("%s\n", id);
    ret = SPLIT_CLI_OK;
out:
    if (files != NULL) {
        for (i = 0; i <= num_holders; i++) {
            free(files[i].text);
        }
    }
    free(files);
    free(shares);
    free(rec);
    free(holders);
    split_rsa_key_cleanup(&key);
    return ret;
}
