/*
 * What several keysplit subcommands share: one-line errors, small parsers,
 * paths, and opening shares against their record for verify and combine.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "split/keysplit/keysplit.h"

bool split_cli_verbose;

__attribute__((format(printf, 2, 0))) static void split_cli_vprint(const char *cmd, const char *fmt,
                                                                   va_list ap)
{
    char msg[PROTO_PATH_WHY_MAX + 256]; /* a why that names a file, and what it was for */

    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* One line, always: a message that carries a newline is cut there. */
    msg[strcspn(msg, "\r\n")] = '\0';
    if (cmd != NULL) {
        fprintf(stderr, "keysplit: %s: %s", cmd, msg);
    } else {
        fprintf(stderr, "keysplit: %s", msg);
    }
}

int split_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    split_cli_vprint(cmd, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return SPLIT_CLI_FAIL;
}

int split_cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    split_cli_vprint(cmd, fmt, ap);
    va_end(ap);
    if (cmd != NULL) {
        fprintf(stderr, " (see 'keysplit %s --help')\n", cmd);
    } else {
        fprintf(stderr, " (see 'keysplit --help')\n");
    }
    return SPLIT_CLI_USAGE;
}

int split_cli_bad_option(const char *cmd, int c, char *argv[])
{
    const char *opt = optind > 0 ? argv[optind - 1] : "?";

    if (c == ':') {
        return split_cli_usage(cmd, "option '%s' needs a value", opt);
    }
    return split_cli_usage(cmd, "unknown option '%s'", opt);
}

int split_cli_common_option(const char *cmd, struct split_cli_shareset *set, int c, char *arg,
                            char *argv[], void (*usage)(FILE *to))
{
    switch (set != NULL ? c : 0) {
    case 'r':
        set->record = arg;
        return SPLIT_CLI_CONTINUE;
    case 's':
        if (set->num_shares == PROTO_SHARES_MAX) {
            return split_cli_usage(cmd, "more than %d shares", PROTO_SHARES_MAX);
        }
        set->share_paths[set->num_shares++] = arg;
        return SPLIT_CLI_CONTINUE;
    case 'K':
        if (set->num_keys == PROTO_SHARES_MAX) {
            return split_cli_usage(cmd, "more than %d holder keys", PROTO_SHARES_MAX);
        }
        set->key_paths[set->num_keys++] = arg;
        return SPLIT_CLI_CONTINUE;
    default:
        break;
    }
    if (c == 'h') {
        usage(stdout);
        return SPLIT_CLI_OK;
    }
    return split_cli_bad_option(cmd, c, argv);
}

int split_cli_no_operands(const char *cmd, int argc, char *argv[])
{
    if (optind < argc) {
        return split_cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    return SPLIT_CLI_OK;
}

int split_cli_shareset_check(const char *cmd, const struct split_cli_shareset *set)
{
    if (set->num_shares != set->num_keys) {
        return split_cli_usage(cmd, "%zu --share but %zu --holder-key; give one key per share",
                               set->num_shares, set->num_keys);
    }
    return SPLIT_CLI_OK;
}

bool split_cli_parse_uint(const char *s, unsigned max, unsigned *out)
{
    unsigned long v;
    char *end = NULL;

    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

int split_cli_out_absent(const char *cmd, const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 || errno != ENOENT) {
        return split_cli_fail(cmd, "%s exists; refusing to overwrite it", path);
    }
    return SPLIT_CLI_OK;
}

int split_cli_out_path(const char *cmd, char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);

    if (n <= 0 || (size_t)n >= cap) {
        return split_cli_fail(cmd, "output path too long");
    }
    return split_cli_out_absent(cmd, out);
}

bool split_cli_is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int split_cli_out_dir_check(const char *cmd, const char *dir)
{
    struct stat st;

    if (stat(dir, &st) == 0) {
        return S_ISDIR(st.st_mode) ? SPLIT_CLI_OK
                                   : split_cli_fail(cmd, "%s is not a directory", dir);
    }
    if (errno != ENOENT) {
        return split_cli_fail(cmd, "cannot use %s: %s", dir, strerror(errno));
    }
    return SPLIT_CLI_OK;
}

int split_cli_out_dir_make(const char *cmd, const char *dir, bool *made)
{
    *made = false;
    if (mkdir(dir, 0700) == 0) {
        *made = true;
        return SPLIT_CLI_OK;
    }
    if (errno == EEXIST && split_cli_is_dir(dir)) {
        return SPLIT_CLI_OK;
    }
    return split_cli_fail(cmd, "cannot make the directory %s: %s", dir, strerror(errno));
}

void split_cli_hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int split_cli_read_record(const char *cmd, struct proto_record *rec, const char *path)
{
    char why[PROTO_PATH_WHY_MAX];
    int r;

    if (proto_record_load(rec, path, why, sizeof(why)) != 0) {
        return split_cli_fail(cmd, "%s", why);
    }
    if ((r = split_record_verify(rec)) != 0) {
        return split_cli_fail(cmd, "record %s: %s", path, spk_strerror(r));
    }
    return SPLIT_CLI_OK;
}

/* split_cli_load_record reads, decodes and verifies a record into |o|. */
static int split_cli_load_record(struct split_cli_opened *o, const char *cmd, const char *path)
{
    int r;

    if ((o->rec = calloc(1, sizeof(*o->rec))) == NULL) {
        return split_cli_fail(cmd, "out of memory");
    }
    if ((r = split_cli_read_record(cmd, o->rec, path)) != SPLIT_CLI_OK) {
        return r;
    }
    if (o->rec->mode == PROTO_MODE_THRESHOLD) {
        o->y_len = o->rec->modulus_len;
        return SPLIT_CLI_OK;
    }
    if ((r = split_field_init(&o->f, o->rec->field_bits)) != 0) {
        return split_cli_fail(cmd, "record %s: field 2^%u-1: %s", path, o->rec->field_bits,
                              spk_strerror(r));
    }
    o->y_len = split_tuple_len(&o->f);
    return SPLIT_CLI_OK;
}

/* split_cli_open_one opens share |i| into o->ys and o->shares[i]. */
static int split_cli_open_one(struct split_cli_opened *o, const char *cmd, size_t i,
                              const char *share_path, const char *key_path)
{
    struct proto_share_file *sf = &o->files[i];
    struct proto_holder_secret *key = NULL;
    struct split_opened_share *os = &o->shares[i];
    size_t tlen = o->y_len;
    char why[PROTO_PATH_WHY_MAX];
    size_t j;
    int r;
    int ret = SPLIT_CLI_FAIL;

    if (proto_share_file_load(sf, share_path, why, sizeof(why)) != 0) {
        split_cli_fail(cmd, "%s", why);
        goto out;
    }
    if (sf->mode != o->rec->mode) {
        split_cli_fail(cmd, "share %s is a %s-mode share, the record a %s-mode one (%s)",
                       share_path, split_cli_mode_name(sf->mode), split_cli_mode_name(o->rec->mode),
                       spk_strerror(SPK_ERR_MIXED_SPLIT));
        goto out;
    }
    if (sodium_memcmp(sf->key_id, o->rec->key_id, PROTO_KEY_ID_LEN) != 0 ||
        sodium_memcmp(sf->split_id, o->rec->split_id, PROTO_SPLIT_ID_LEN) != 0 ||
        sf->field_bits != o->rec->field_bits || sf->threshold != o->rec->threshold ||
        sf->num_shares != o->rec->num_shares) {
        split_cli_fail(cmd, "share %s belongs to another key or split than the record (%s)",
                       share_path, spk_strerror(SPK_ERR_MIXED_SPLIT));
        goto out;
    }
    if ((r = split_holder_secret_load(&key, key_path)) != 0) {
        split_cli_fail(cmd, "cannot load holder key %s: %s", key_path,
                       split_io_reason(key_path, r));
        goto out;
    }
    r = split_share_open(o->ys + i * tlen, tlen, sf, key);
    if (r == SPK_ERR_WRONG_HOLDER) {
        split_cli_fail(cmd, "share %s is for holder %s, but %s is the key of %s", share_path,
                       sf->holder, key_path, key->pub.name);
        goto out;
    }
    if (r == SPK_ERR_MALFORMED) {
        split_cli_fail(cmd, "share %s: a value is not below the field's M (%s)", share_path,
                       spk_strerror(r));
        goto out;
    }
    if (r != 0) {
        split_cli_fail(cmd, "share %s does not open with %s: %s", share_path, key_path,
                       spk_strerror(r));
        goto out;
    }
    memcpy(os->key_id, sf->key_id, PROTO_KEY_ID_LEN);
    memcpy(os->split_id, sf->split_id, PROTO_SPLIT_ID_LEN);
    os->index = sf->index;
    os->holder = sf->holder;
    os->y = o->ys + i * tlen;
    if ((r = split_share_check(o->rec, &o->f, os)) != 0) {
        split_cli_fail(cmd, "share %s (index %u, holder %s): %s", share_path, sf->index, sf->holder,
                       spk_strerror(r));
        goto out;
    }
    for (j = 0; j < i; j++) {
        if (o->shares[j].index == os->index) {
            split_cli_fail(cmd, "share %s: %s (index %u given twice)", share_path,
                           spk_strerror(SPK_ERR_DUP_INDEX), os->index);
            goto out;
        }
    }
    ret = SPLIT_CLI_OK;
out:
    spk_secret_free(key);
    return ret;
}

int split_cli_open_shares(struct split_cli_opened *o, const char *cmd, const char *record_path,
                          char *const *share_paths, char *const *key_paths, size_t num, bool print)
{
    size_t i;
    int ret;

    sodium_memzero(o, sizeof(*o));
    if ((ret = split_cli_load_record(o, cmd, record_path)) != SPLIT_CLI_OK) {
        return ret;
    }
    if (print) {
        char id[2 * PROTO_KEY_ID_LEN + 1];

        split_cli_hex(id, o->rec->key_id, PROTO_KEY_ID_LEN);
        printf("record %s: signature ok (key %s, %u of %u)\n", record_path, id, o->rec->threshold,
               o->rec->num_shares);
    }
    if (num == 0) {
        return SPLIT_CLI_OK;
    }
    if ((o->files = calloc(num, sizeof(*o->files))) == NULL ||
        (o->ys = spk_secret_new(num * o->y_len)) == NULL) {
        return split_cli_fail(cmd, "out of (locked) memory");
    }
    for (i = 0; i < num; i++) {
        if ((ret = split_cli_open_one(o, cmd, i, share_paths[i], key_paths[i])) != SPLIT_CLI_OK) {
            return ret;
        }
        o->num = i + 1;
        if (print) {
            printf("share %u (%s): opens with %s, matches its commitment\n", o->shares[i].index,
                   o->files[i].holder, key_paths[i]);
        }
    }
    return SPLIT_CLI_OK;
}

const char *split_cli_mode_name(uint8_t mode)
{
    return mode == PROTO_MODE_THRESHOLD ? "threshold" : "rebuild";
}

void split_cli_opened_cleanup(struct split_cli_opened *o)
{
    free(o->rec);
    free(o->files);
    spk_secret_free(o->ys);
    sodium_memzero(o, sizeof(*o));
}

int split_cli_combine(const char *cmd, uint8_t *out_tuple, const struct split_cli_opened *o)
{
    struct spk_arena *arena = NULL;
    int r;

    if (o->num < o->rec->threshold) {
        return split_cli_fail(cmd, "%zu share(s) given; this key needs %u", o->num,
                              o->rec->threshold);
    }
    if ((arena = spk_arena_new(split_interpolate_scratch_len(&o->f, o->rec->threshold))) == NULL) {
        return split_cli_fail(cmd, "out of (locked) memory");
    }
    r = split_shares_combine(out_tuple, o->rec, &o->f, o->shares, o->num, arena);
    spk_arena_free(arena);
    if (r != 0) {
        return split_cli_fail(cmd, "the shares do not rebuild the key: %s", spk_strerror(r));
    }
    return SPLIT_CLI_OK;
}
