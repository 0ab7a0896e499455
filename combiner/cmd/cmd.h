#ifndef SPK_COMBINER_CMD_H
#define SPK_COMBINER_CMD_H

/*
 * The `combiner` command: one private-key operation from the command line,
 * through the same library calls as everything else. One file per
 * subcommand, dispatched by main.c as wireguard-tools' wg.c does.
 */

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "combiner/combiner.h"
#include "split/split.h"

/* Exit statuses. */
#define COMB_CLI_OK 0
#define COMB_CLI_FAIL 1  /* refused or failed; one line on stderr says why */
#define COMB_CLI_USAGE 2 /* a bad command line */

/* Shares on one command line: the local one and up to this many in all. */
#define COMB_CLI_SHARES_MAX PROTO_SHARES_MAX

/*
 * Each subcommand takes its own argv (argv[0] is the subcommand's name) and
 * returns the process exit status.
 */
int comb_cmd_sign(int argc, char *argv[]);
int comb_cmd_decrypt(int argc, char *argv[]);
/* run serves OP_REQUEST (comb_server_run); see run.c. */
int comb_cmd_run(int argc, char *argv[]);
/* check tries a config file as run would use it; see check.c. */
int comb_cmd_check(int argc, char *argv[]);
/* combiner probe-exp (exp.c) */
int comb_cmd_probe_exp(int argc, char *argv[]);

/* main's argv, for `run` to run itself again (comb_cli_exp_settle). */
extern char **comb_cli_argv;

/*
 * comb_cli_exp_settle: `run`'s exp-code, applied before anything else
 * happens: either it returns (OpenSSL's code stays as loaded, said in the
 * log where that is a choice) or the process runs itself again with |argv|
 * and OPENSSL_ia32cap set (exp.c says why).
 */
void comb_cli_exp_settle(const char *config_path, char *argv[]);

struct comb_conf;
/* comb_cli_exp_describe: what `run` with |conf| would run, in words, as its
 * log says it (`combiner check`). */
void comb_cli_exp_describe(const struct comb_conf *conf, char *out, size_t cap);

/* comb_cli_fail prints "combiner: CMD: MESSAGE" (one line) and returns COMB_CLI_FAIL. */
__attribute__((format(printf, 2, 3))) int comb_cli_fail(const char *cmd, const char *fmt, ...);
/* comb_cli_usage prints "combiner: CMD: MESSAGE (see 'combiner CMD --help')" and returns
 * COMB_CLI_USAGE. */
__attribute__((format(printf, 2, 3))) int comb_cli_usage(const char *cmd, const char *fmt, ...);

/*
 * struct comb_cli_keyset: what --record, --share and --holder-key name. The
 * i-th --holder-key opens the i-th --share; the first share is the
 * combiner's local share, every other one is served by an in-process file
 * source named after its holder. Or --config: a combiner config file
 * (proto/PROTOCOL.md section 8) with remote holders, and --key-id to choose
 * among its keys.
 */
struct comb_cli_keyset {
    const char *config;
    const char *key_id;
    const char *record;
    const char *shares[COMB_CLI_SHARES_MAX];
    size_t num_shares;
    const char *keys[COMB_CLI_SHARES_MAX];
    size_t num_keys;
};

/*
 * comb_cli_keyset_option takes option |opt| ('r', 's', 'K', 'c' or 'k') with value
 * |arg| into |ks|. Returns COMB_CLI_OK, or prints and returns COMB_CLI_USAGE.
 */
int comb_cli_keyset_option(const char *cmd, struct comb_cli_keyset *ks, int opt, const char *arg);

/*
 * comb_cli_open checks |ks| (a record, at least one share, one holder key per
 * share), reads the files and builds a combiner *out holding the key, its
 * local share and one file source per further share; sets key_id. With
 * ks->config it builds the combiner from that file instead (comb_open_config:
 * remote holders) and takes the key ks->key_id, or the file's only key. Returns
 * COMB_CLI_OK, or prints one line and returns COMB_CLI_FAIL / COMB_CLI_USAGE.
 * Free *out with comb_free.
 */
int comb_cli_open(const char *cmd, const struct comb_cli_keyset *ks, struct comb_ctx **out,
                  uint8_t key_id[PROTO_KEY_ID_LEN]);

/*
 * comb_cli_hex_decode reads hex (either case) of 1..|cap| bytes. False on
 * anything else.
 */
bool comb_cli_hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *out_len);

/* comb_cli_write writes |len| bytes to a new file |path| with |mode|; prints on failure. */
int comb_cli_write(const char *cmd, const char *path, unsigned mode, const uint8_t *data,
                   size_t len);

/* The keyset options, for each subcommand's usage text. */
#define COMB_CLI_CONFIG_USAGE                                                                      \
    "  --config FILE      instead of --record/--share/--holder-key: a combiner config\n"           \
    "                     file (proto/PROTOCOL.md section 8) naming the combiner's key,\n"         \
    "                     its local shares, the key records and the remote share-holders\n"        \
    "  --key-id HEX       with --config: which key (needed when the file has several)\n"

/* comb_cli_bad_option reports what getopt_long returned ('?' or ':'). */
int comb_cli_bad_option(const char *cmd, int c, char *argv[]);

/* getopt_long entries of the keyset options (comb_cli_keyset_option), and of
 * --allow-unlocked and --help with the terminator, for the operation
 * subcommands' option tables. */
/* clang-format off */
#define COMB_CLI_KEYSET_OPTIONS                                                                    \
    {"config", required_argument, NULL, 'c'},                                                      \
    {"key-id", required_argument, NULL, 'k'},                                                      \
    {"record", required_argument, NULL, 'r'},                                                      \
    {"share", required_argument, NULL, 's'},                                                       \
    {"holder-key", required_argument, NULL, 'K'}
#define COMB_CLI_TAIL_OPTIONS                                                                      \
    {"allow-unlocked", no_argument, NULL, 'U'},                                                    \
    {"help", no_argument, NULL, 'h'},                                                              \
    {NULL, 0, NULL, 0}
/* clang-format on */

/* Not an exit status: comb_cli_shared_option's "keep parsing". */
#define COMB_CLI_CONTINUE (-1)

/*
 * comb_cli_shared_option takes what getopt_long returned for an option the
 * subcommand does not handle itself: a keyset option into |ks|, skips
 * --allow-unlocked (main acted on it), prints |usage| to stdout for --help,
 * and reports anything else. Returns COMB_CLI_CONTINUE to keep parsing, or
 * the exit status to return now.
 */
int comb_cli_shared_option(const char *cmd, struct comb_cli_keyset *ks, int ch, const char *arg,
                           char *argv[], void (*usage)(FILE *to));

/* struct comb_cli_arg: a subcommand's own option |ch|, whose value goes to *val. */
struct comb_cli_arg {
    int ch;
    const char **val;
};

/*
 * comb_cli_parse clears |ks| and runs getopt_long over argv with |opts|: an
 * option listed in |args| (ended by an entry with ch 0) stores its value,
 * any other goes to comb_cli_shared_option; an argument that is no option is
 * refused. Returns COMB_CLI_CONTINUE when the subcommand goes on, or the exit
 * status to return now.
 */
int comb_cli_parse(const char *cmd, int argc, char *argv[], const struct option *opts,
                   const struct comb_cli_arg *args, struct comb_cli_keyset *ks,
                   void (*usage)(FILE *to));

/* comb_cli_op_fail reports the failed operation (status |r|) on |c|: the
 * combiner's last error if it has one. Returns COMB_CLI_FAIL. */
int comb_cli_op_fail(const char *cmd, struct comb_ctx *c, int r);

#endif
