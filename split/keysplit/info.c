/*
 * keysplit info: what a record, share, .pub or .key file says, for people.
 * A .key file's secret halves are never printed; they are only checked
 * against its public halves.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "split/keysplit/keysplit.h"

static void info_usage(FILE *to)
{
    fprintf(to, "Usage: keysplit info FILE\n"
                "\n"
                "Shows what a key record, a share file, a holder's .pub file or a holder's\n"
                "key file (public parts only) says. A record's signature is checked; a\n"
                "key file's secret keys are checked against its public keys.\n");
}

static unsigned info_bits(const uint8_t *p, size_t len)
{
    unsigned bits;
    uint8_t top;

    while (len > 0 && p[0] == 0) {
        p++;
        len--;
    }
    if (len == 0) {
        return 0;
    }
    bits = (unsigned)(8 * (len - 1));
    for (top = p[0]; top != 0; top >>= 1) {
        bits++;
    }
    return bits;
}

static void info_print_hex(const char *label, const uint8_t *p, size_t n)
{
    char hex[2 * PROTO_BN_MAX + 1];

    split_cli_hex(hex, p, n);
    printf("%-14s %s\n", label, hex);
}

static void info_print_z85(const char *label, const uint8_t key[PROTO_X25519_LEN])
{
    uint8_t buf[PROTO_Z85_KEY_LEN + 1];
    struct proto_wr wr;

    proto_wr_init(&wr, buf, PROTO_Z85_KEY_LEN);
    if (!proto_wr_z85_key(&wr, key) || wr.len != PROTO_Z85_KEY_LEN) {
        printf("%-14s (cannot encode)\n", label);
        return;
    }
    buf[PROTO_Z85_KEY_LEN] = '\0';
    printf("%-14s %s\n", label, (const char *)buf);
}

/* info_print_mode: the mode, the threshold, and the field of a rebuild split. */
static void info_print_mode(uint8_t mode, unsigned k, unsigned n, unsigned field_bits)
{
    if (mode == PROTO_MODE_THRESHOLD) {
        printf("%-14s threshold (Shoup): key shares sign; nobody rebuilds the key\n", "mode:");
        printf("%-14s %u of %u signature shares make a signature\n", "threshold:", k, n);
        return;
    }
    printf("%-14s rebuild: the combiner rebuilds the key from shares\n", "mode:");
    printf("%-14s %u of %u shares rebuild the key\n", "threshold:", k, n);
    printf("%-14s 2^%u-1 (y values of %zu bytes)\n", "field:", field_bits,
           proto_field_y_len(field_bits));
}

static int info_record(const char *cmd, const char *path, const uint8_t *text, size_t len)
{
    struct proto_record *rec = calloc(1, sizeof(*rec));
    uint64_t e = 0;
    unsigned i;
    int r;
    int ret = SPLIT_CLI_FAIL;

    if (rec == NULL) {
        return split_cli_fail(cmd, "out of memory");
    }
    if ((r = proto_record_decode(rec, text, len)) != 0) {
        split_cli_fail(cmd, "%s is not a valid key record: %s", path, spk_strerror(r));
        goto out;
    }
    for (i = 0; i < rec->exponent_len; i++) {
        e = (e << 8) | rec->exponent[i];
    }
    printf("%-14s %s\n", "file:", path);
    printf("%-14s key record\n", "kind:");
    info_print_hex("key id:", rec->key_id, PROTO_KEY_ID_LEN);
    info_print_hex("split id:", rec->split_id, PROTO_SPLIT_ID_LEN);
    printf("%-14s RSA, %u bits\n", "modulus:", info_bits(rec->modulus, rec->modulus_len));
    printf("%-14s %" PRIu64 "\n", "exponent:", e);
    info_print_mode(rec->mode, rec->threshold, rec->num_shares, rec->field_bits);
    for (i = 0; i < rec->num_shares; i++) {
        char hex[2 * PROTO_COMMIT_LEN + 1];
        char label[32];

        split_cli_hex(hex, rec->shares[i].commitment, PROTO_COMMIT_LEN);
        snprintf(label, sizeof(label), "share %u:", rec->shares[i].index);
        printf("%-14s holder %s, commitment %s\n", label, rec->shares[i].holder, hex);
    }
    if (rec->mode == PROTO_MODE_THRESHOLD) {
        printf("%-14s %s\n", "verify keys:",
               rec->has_vkeys ? "yes (safe primes): every signature share comes with a proof of "
                                "correctness"
                              : "none: a wrong signature share is found by trying other subsets");
    }
    r = split_record_verify(rec);
    printf("%-14s rsa-pss-sha256 by the key itself: %s\n",
           "signature:", r == 0 ? "ok" : "DOES NOT VERIFY");
    if (r != 0) {
        split_cli_fail(cmd, "%s: record signature: %s", path, spk_strerror(r));
        goto out;
    }
    ret = SPLIT_CLI_OK;
out:
    free(rec);
    return ret;
}

static int info_share(const char *cmd, const char *path, const uint8_t *text, size_t len)
{
    struct proto_share_file *sf = calloc(1, sizeof(*sf));
    int r;

    if (sf == NULL) {
        return split_cli_fail(cmd, "out of memory");
    }
    if ((r = proto_share_file_decode(sf, text, len)) != 0) {
        free(sf);
        return split_cli_fail(cmd, "%s is not a valid share file: %s", path, spk_strerror(r));
    }
    printf("%-14s %s\n", "file:", path);
    printf("%-14s sealed share\n", "kind:");
    info_print_hex("key id:", sf->key_id, PROTO_KEY_ID_LEN);
    info_print_hex("split id:", sf->split_id, PROTO_SPLIT_ID_LEN);
    printf("%-14s %u\n", "index:", sf->index);
    printf("%-14s %s\n", "holder:", sf->holder);
    info_print_mode(sf->mode, sf->threshold, sf->num_shares, sf->field_bits);
    printf("%-14s %zu bytes, crypto_box_seal to %s's storage key\n", "sealed:", sf->sealed_len,
           sf->holder);
    free(sf);
    return SPLIT_CLI_OK;
}

static int info_pub(const char *cmd, const char *path, const uint8_t *text, size_t len)
{
    struct proto_holder_pub pub;
    int r;

    if ((r = proto_holder_pub_decode(&pub, text, len)) != 0) {
        return split_cli_fail(cmd, "%s is not a valid holder .pub file: %s", path, spk_strerror(r));
    }
    printf("%-14s %s\n", "file:", path);
    printf("%-14s holder public keys\n", "kind:");
    printf("%-14s %s\n", "name:", pub.name);
    info_print_z85("curve:", pub.curve_pk);
    info_print_z85("storage:", pub.storage_pk);
    return SPLIT_CLI_OK;
}

static int info_key(const char *cmd, const char *path, const uint8_t *text, size_t len)
{
    struct proto_holder_secret *key = spk_secret_new(sizeof(*key));
    int r;
    int ret = SPLIT_CLI_FAIL;

    if (key == NULL) {
        return split_cli_fail(cmd, "out of (locked) memory");
    }
    if ((r = proto_holder_secret_decode(key, text, len)) != 0) {
        split_cli_fail(cmd, "%s is not a valid holder key file: %s", path, spk_strerror(r));
        goto out;
    }
    r = split_holder_secret_check(key);
    printf("%-14s %s\n", "file:", path);
    printf("%-14s holder key file (secret keys not shown)\n", "kind:");
    printf("%-14s %s\n", "name:", key->pub.name);
    info_print_z85("curve:", key->pub.curve_pk);
    info_print_z85("storage:", key->pub.storage_pk);
    printf("%-14s %s\n",
           "secret keys:", r == 0 ? "match the public keys" : "DO NOT MATCH the public keys");
    if (r != 0) {
        split_cli_fail(cmd, "%s: secret and public keys differ", path);
        goto out;
    }
    ret = SPLIT_CLI_OK;
out:
    spk_secret_free(key);
    return ret;
}

/* info_is: the file starts with the line "MAGIC VERSION...". */
static bool info_is(const uint8_t *text, size_t len, const char *magic)
{
    size_t n = strlen(magic);

    return len > n && strncmp((const char *)text, magic, n) == 0 && text[n] == ' ';
}

int split_cmd_info(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "info";
    const char *path;
    uint8_t *text = NULL;
    size_t len = 0;
    int c;
    int r;
    int ret;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            info_usage(stdout);
            return SPLIT_CLI_OK;
        default:
            return split_cli_bad_option(cmd, c, argv);
        }
    }
    if (argc - optind != 1) {
        return split_cli_usage(cmd, "give exactly one FILE");
    }
    path = argv[optind];
    /* It may be a .key file: read it where secrets go. */
    if ((r = spk_file_read_secret(path, PROTO_FILE_MAX, &text, &len)) != 0) {
        return split_cli_fail(cmd, "cannot read %s: %s", path, split_io_reason(path, r));
    }
    if (info_is(text, len, "splitkey-record")) {
        ret = info_record(cmd, path, text, len);
    } else if (info_is(text, len, "splitkey-share")) {
        ret = info_share(cmd, path, text, len);
    } else if (info_is(text, len, "splitkey-holder-pub")) {
        ret = info_pub(cmd, path, text, len);
    } else if (info_is(text, len, "splitkey-holder-key")) {
        ret = info_key(cmd, path, text, len);
    } else {
        ret = split_cli_fail(cmd, "%s is not a record, share, .pub or .key file of splitkey", path);
    }
    spk_secret_free(text);
    return ret;
}
