/*
 * keysplit keygen: a holder's key files. NAME.key (mode 0600) holds the CURVE
 * transport keypair and the storage keypair shares are sealed to; NAME.pub
 * holds their public halves, for `keysplit split` and allow-lists.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "split/keysplit/keysplit.h"

#define KEYGEN_FILE_MAX 4096

static void keygen_usage(FILE *to)
{
    fprintf(to, "Usage: keysplit keygen --name NAME --out DIR\n"
                "\n"
                "Makes DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub (public) for a\n"
                "share holder: an X25519 CURVE transport keypair and an X25519 storage\n"
                "keypair. NAME is 1-64 of A-Z a-z 0-9 . _ - and does not start with '.'.\n"
                "DIR is made (mode 0700) when it does not exist; its parent must.\n"
                "Refuses to overwrite either file; then nothing is written.\n");
}

int split_cmd_keygen(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "keygen";
    const char *name = NULL;
    const char *dir = NULL;
    char key_path[4096];
    char pub_path[4096];
    char file[PROTO_NAME_MAX + 8];
    struct proto_holder_secret *key = NULL;
    uint8_t *key_text = NULL;
    size_t key_len = 0;
    uint8_t pub_text[KEYGEN_FILE_MAX];
    size_t pub_len = 0;
    struct proto_rd rd;
    int c;
    int r;
    int st; /* the command line's status */
    int ret = SPLIT_CLI_FAIL;
    bool made_dir = false;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'o':
            dir = optarg;
            break;
        default:
            if ((st = split_cli_common_option(cmd, NULL, c, optarg, argv, keygen_usage)) !=
                SPLIT_CLI_CONTINUE) {
                return st;
            }
            break;
        }
    }
    if ((st = split_cli_no_operands(cmd, argc, argv)) != SPLIT_CLI_OK) {
        return st;
    }
    if (name == NULL || dir == NULL) {
        return split_cli_usage(cmd, "--name and --out are required");
    }
    proto_rd_init(&rd, (const uint8_t *)name, strlen(name));
    if (strlen(name) > PROTO_NAME_MAX || !proto_name_valid(&rd)) {
        return split_cli_usage(cmd,
                               "invalid name '%s': use 1-64 of A-Z a-z 0-9 . _ - not starting "
                               "with '.'",
                               name);
    }
    if (split_cli_out_dir_check(cmd, dir) != SPLIT_CLI_OK) {
        return SPLIT_CLI_FAIL;
    }
    snprintf(file, sizeof(file), "%s.key", name);
    if (split_cli_out_path(cmd, key_path, sizeof(key_path), dir, file) != SPLIT_CLI_OK) {
        return SPLIT_CLI_FAIL;
    }
    snprintf(file, sizeof(file), "%s.pub", name);
    if (split_cli_out_path(cmd, pub_path, sizeof(pub_path), dir, file) != SPLIT_CLI_OK) {
        return SPLIT_CLI_FAIL;
    }

    if ((key = spk_secret_new(sizeof(*key))) == NULL ||
        (key_text = spk_secret_new(KEYGEN_FILE_MAX)) == NULL) {
        split_cli_fail(cmd, "out of (locked) memory");
        goto out;
    }
    if ((r = split_holder_keygen(key, name)) != 0 ||
        (r = proto_holder_secret_encode(key_text, KEYGEN_FILE_MAX, &key_len, key)) != 0 ||
        (r = proto_holder_pub_encode(pub_text, sizeof(pub_text), &pub_len, &key->pub)) != 0) {
        split_cli_fail(cmd, "cannot make the key: %s", spk_strerror(r));
        goto out;
    }
    if (split_cli_out_dir_make(cmd, dir, &made_dir) != SPLIT_CLI_OK) {
        goto out;
    }
    if ((r = spk_file_write_new(key_path, 0600, key_text, key_len)) != 0) {
        split_cli_fail(cmd, "cannot write %s: %s", key_path, spk_strerror(r));
        goto out;
    }
    if ((r = spk_file_write_new(pub_path, 0644, pub_text, pub_len)) != 0) {
        /* Half a keypair on disk is worse than none. */
        unlink(key_path);
        split_cli_fail(cmd, "cannot write %s: %s", pub_path, spk_strerror(r));
        goto out;
    }
    printf("%s\n%s\n", key_path, pub_path);
    ret = SPLIT_CLI_OK;
out:
    if (ret != SPLIT_CLI_OK && made_dir) {
        rmdir(dir);
    }
    spk_secret_free(key);
    spk_secret_free(key_text);
    return ret;
}
