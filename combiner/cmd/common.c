/*
 * What the combiner's subcommands share: one-line errors, the
 * record/share/holder-key options, building a combiner from them, hex and
 * output files.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/cmd/cmd.h"
#include "combiner/comb_config.h"

__attribute__((format(printf, 2, 0))) static void comb_cli_vprint(const char *cmd, const char *fmt,
                                                                  va_list ap)
{
    char msg[PROTO_PATH_WHY_MAX + 256]; /* a why that names a file, and what it was for */

    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* One line, always: a message that carries a newline is cut there. */
    msg[strcspn(msg, "\r\n")] = '\0';
    if (cmd != NULL) {
        fprintf(stderr, "combiner: %s: %s", cmd, msg);
    } else {
        fprintf(stderr, "combiner: %s", msg);
    }
}

int comb_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    comb_cli_vprint(cmd, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return COMB_CLI_FAIL;
}

int comb_cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    comb_cli_vprint(cmd, fmt, ap);
    va_end(ap);
    if (cmd != NULL) {
        fprintf(stderr, " (see 'combiner %s --help')\n", cmd);
    } else {
        fprintf(stderr, " (see 'combiner --help')\n");
    }
    return COMB_CLI_USAGE;
}

int comb_cli_bad_option(const char *cmd, int c, char *argv[])
{
    const char *opt = optind > 0 ? argv[optind - 1] : "?";

    if (c == ':') {
        return comb_cli_usage(cmd, "option '%s' needs a value", opt);
    }
    return comb_cli_usage(cmd, "unknown option '%s'", opt);
}

int comb_cli_shared_option(const char *cmd, struct comb_cli_keyset *ks, int ch, const char *arg,
                           char *argv[], void (*usage)(FILE *to))
{
    int ret;

    switch (ch) {
    case 'c':
    case 'k':
    case 'r':
    case 's':
    case 'K':
        ret = comb_cli_keyset_option(cmd, ks, ch, arg);
        return ret == COMB_CLI_OK ? COMB_CLI_CONTINUE : ret;
    case 'U':
        return COMB_CLI_CONTINUE; /* main acted on it */
    case 'h':
        usage(stdout);
        return COMB_CLI_OK;
    default:
        return comb_cli_bad_option(cmd, ch, argv);
    }
}

int comb_cli_parse(const char *cmd, int argc, char *argv[], const struct option *opts,
                   const struct comb_cli_arg *args, struct comb_cli_keyset *ks,
                   void (*usage)(FILE *to))
{
    const struct comb_cli_arg *a;
    int ret;
    int ch;

    memset(ks, 0, sizeof(*ks));
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        a = args;
        while (a->ch != 0 && a->ch != ch) {
            a++;
        }
        if (a->ch != 0) {
            *a->val = optarg;
        } else if ((ret = comb_cli_shared_option(cmd, ks, ch, optarg, argv, usage)) !=
                   COMB_CLI_CONTINUE) {
            return ret;
        }
    }
    if (optind != argc) {
        return comb_cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    return COMB_CLI_CONTINUE;
}

int comb_cli_op_fail(const char *cmd, struct comb_ctx *c, int r)
{
    const char *why = comb_last_error(c);

    return comb_cli_fail(cmd, "%s", why[0] != '\0' ? why : spk_strerror(r));
}

int comb_cli_keyset_option(const char *cmd, struct comb_cli_keyset *ks, int opt, const char *arg)
{
    switch (opt) {
    case 'c':
        if (ks->config != NULL) {
            return comb_cli_usage(cmd, "--config given twice");
        }
        ks->config = arg;
        return COMB_CLI_OK;
    case 'k':
        if (ks->key_id != NULL) {
            return comb_cli_usage(cmd, "--key-id given twice");
        }
        ks->key_id = arg;
        return COMB_CLI_OK;
    case 'r':
        if (ks->record != NULL) {
            return comb_cli_usage(cmd, "--record given twice");
        }
        ks->record = arg;
        return COMB_CLI_OK;
    case 's':
        if (ks->num_shares >= COMB_CLI_SHARES_MAX) {
            return comb_cli_usage(cmd, "more than %d --share options", COMB_CLI_SHARES_MAX);
        }
        ks->shares[ks->num_shares++] = arg;
        return COMB_CLI_OK;
    case 'K':
        if (ks->num_keys >= COMB_CLI_SHARES_MAX) {
            return comb_cli_usage(cmd, "more than %d --holder-key options", COMB_CLI_SHARES_MAX);
        }
        ks->keys[ks->num_keys++] = arg;
        return COMB_CLI_OK;
    default:
        return comb_cli_usage(cmd, "internal: unknown key option");
    }
}

static const char *comb_cli_read_why(int r, int err)
{
    if (r == SPK_ERR_IO && err != 0) {
        return strerror(err);
    }
    return spk_strerror(r);
}

/* comb_cli_open_config: comb_cli_open for --config FILE [--key-id HEX]. */
static int comb_cli_open_config(const char *cmd, const struct comb_cli_keyset *ks,
                                struct comb_ctx **out, uint8_t key_id[PROTO_KEY_ID_LEN])
{
    struct comb_conf conf;
    struct comb_ctx *c = NULL;
    char why[COMB_CONF_WHY_MAX];
    uint8_t want[PROTO_KEY_ID_LEN];
    size_t want_len = 0;
    long at = 0;
    int ret = COMB_CLI_FAIL;

    if (ks->record != NULL || ks->num_shares != 0 || ks->num_keys != 0) {
        return comb_cli_usage(cmd, "--config replaces --record, --share and --holder-key");
    }
    if (ks->key_id != NULL && (!comb_cli_hex_decode(ks->key_id, want, sizeof(want), &want_len) ||
                               want_len != PROTO_KEY_ID_LEN)) {
        return comb_cli_usage(cmd, "--key-id is not 64 hex digits");
    }
    if (comb_open_config(&c, &conf, ks->config, why, sizeof(why)) != 0) {
        return comb_cli_fail(cmd, "%s", why);
    }
    if (ks->key_id != NULL) {
        if ((at = comb_conf_find_key(&conf, want)) < 0) {
            ret = comb_cli_fail(cmd, "key %s is not among the records of '%s'", ks->key_id,
                                ks->config);
            goto out;
        }
    } else if (conf.num_keys != 1) {
        ret = comb_cli_usage(cmd, "'%s' has %zu keys: choose one with --key-id", ks->config,
                             conf.num_keys);
        goto out;
    }
    memcpy(key_id, conf.keys[at].key_id, PROTO_KEY_ID_LEN);
    *out = c;
    c = NULL;
    ret = COMB_CLI_OK;
out:
    comb_free(c);
    comb_conf_cleanup(&conf);
    return ret;
}

/* comb_cli_conf_path copies |path| into |out|; false when it does not fit. */
static bool comb_cli_conf_path(char out[COMB_CONF_PATH_MAX], const char *path)
{
    int n = snprintf(out, COMB_CONF_PATH_MAX, "%s", path);

    return n > 0 && (size_t)n < COMB_CONF_PATH_MAX;
}

/*
 * comb_cli_open fills a comb_conf from --record, --share and --holder-key
 * (the first share is the combiner's local one, opened with the first key;
 * every other one an in-process file source) and builds the combiner with
 * comb_conf_open, as every combiner is built; or --config FILE.
 */
int comb_cli_open(const char *cmd, const struct comb_cli_keyset *ks, struct comb_ctx **out,
                  uint8_t key_id[PROTO_KEY_ID_LEN])
{
    struct comb_conf conf;
    struct comb_ctx *c = NULL;
    char why[COMB_CONF_WHY_MAX * 2];
    bool fits;
    size_t i;
    int ret = COMB_CLI_FAIL;

    *out = NULL;
    if (ks->config != NULL) {
        return comb_cli_open_config(cmd, ks, out, key_id);
    }
    if (ks->key_id != NULL) {
        return comb_cli_usage(cmd, "--key-id goes with --config");
    }
    if (ks->record == NULL) {
        return comb_cli_usage(cmd, "--record (or --config) is required");
    }
    if (ks->num_shares == 0) {
        return comb_cli_usage(cmd, "at least one --share is required");
    }
    if (ks->num_keys != ks->num_shares) {
        return comb_cli_usage(cmd, "each --share needs its --holder-key (%zu shares, %zu keys)",
                              ks->num_shares, ks->num_keys);
    }
    memset(&conf, 0, sizeof(conf));
    conf.timeout_ms = COMB_CONF_TIMEOUT_DEFAULT;
    conf.record_paths = OPENSSL_zalloc(sizeof(*conf.record_paths));
    conf.share_paths = OPENSSL_zalloc(sizeof(*conf.share_paths));
    if (ks->num_shares > 1) {
        conf.file_shares = OPENSSL_zalloc((ks->num_shares - 1) * sizeof(*conf.file_shares));
    }
    if (conf.record_paths == NULL || conf.share_paths == NULL ||
        (ks->num_shares > 1 && conf.file_shares == NULL)) {
        ret = comb_cli_fail(cmd, "out of memory");
        goto out;
    }
    conf.num_record_paths = 1;
    conf.num_share_paths = 1;
    conf.num_file_shares = ks->num_shares - 1;
    fits = comb_cli_conf_path(conf.key_path, ks->keys[0]) &&
           comb_cli_conf_path(conf.record_paths[0], ks->record) &&
           comb_cli_conf_path(conf.share_paths[0], ks->shares[0]);
    for (i = 1; fits && i < ks->num_shares; i++) {
        fits = comb_cli_conf_path(conf.file_shares[i - 1].path, ks->shares[i]) &&
               comb_cli_conf_path(conf.file_shares[i - 1].key_path, ks->keys[i]);
    }
    if (!fits) {
        ret = comb_cli_usage(cmd, "a path longer than %d bytes", COMB_CONF_PATH_MAX - 1);
        goto out;
    }
    if (comb_conf_open(&c, &conf, NULL, 0, why, sizeof(why)) != 0) {
        ret = comb_cli_fail(cmd, "%s", why);
        goto out;
    }
    memcpy(key_id, conf.keys[0].key_id, PROTO_KEY_ID_LEN);
    *out = c;
    c = NULL;
    ret = COMB_CLI_OK;
out:
    comb_free(c);
    comb_conf_cleanup(&conf);
    return ret;
}

static int comb_cli_hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

bool comb_cli_hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = strlen(hex);
    size_t i;

    if (n == 0 || n % 2 != 0 || n / 2 > cap) {
        return false;
    }
    for (i = 0; i < n / 2; i++) {
        int hi = comb_cli_hex_digit(hex[2 * i]);
        int lo = comb_cli_hex_digit(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = n / 2;
    return true;
}

int comb_cli_write(const char *cmd, const char *path, unsigned mode, const uint8_t *data,
                   size_t len)
{
    int r;

    errno = 0;
    if ((r = spk_file_write_new(path, mode, data, len)) != 0) {
        if (r == SPK_ERR_EXISTS) {
            return comb_cli_fail(cmd, "'%s' exists; not overwriting it", path);
        }
        return comb_cli_fail(cmd, "cannot write '%s': %s", path, comb_cli_read_why(r, errno));
    }
    return COMB_CLI_OK;
}
