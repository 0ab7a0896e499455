#ifndef SPK_KEYSPLIT_H
#define SPK_KEYSPLIT_H

/*
 * keysplit: the offline tool that makes holder keys, splits an RSA key into a
 * signed record and sealed shares, shows and checks those files, and rebuilds
 * the key for disaster recovery. One file per subcommand, dispatched by
 * main.c as wireguard-tools' wg.c does.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "split/split.h"

/* Exit statuses. */
#define SPLIT_CLI_OK 0
#define SPLIT_CLI_FAIL 1  /* refused or failed; one line on stderr says why */
#define SPLIT_CLI_USAGE 2 /* a bad command line */

/*
 * Each subcommand takes its own argv (argv[0] is the subcommand's name) and
 * returns the process exit status.
 */
int split_cmd_keygen(int argc, char *argv[]);
int split_cmd_split(int argc, char *argv[]);
int split_cmd_info(int argc, char *argv[]);
int split_cmd_verify(int argc, char *argv[]);
int split_cmd_combine(int argc, char *argv[]);
int split_cmd_pem(int argc, char *argv[]);
int split_cmd_genkey(int argc, char *argv[]);

/* Set by main from --verbose: say more on stderr. */
extern bool split_cli_verbose;

/* split_cli_fail prints "keysplit: CMD: MESSAGE" on stderr and returns SPLIT_CLI_FAIL. */
__attribute__((format(printf, 2, 3))) int split_cli_fail(const char *cmd, const char *fmt, ...);
/*
 * split_cli_usage prints "keysplit: CMD: MESSAGE (see 'keysplit CMD --help')"
 * on stderr and returns SPLIT_CLI_USAGE.
 */
__attribute__((format(printf, 2, 3))) int split_cli_usage(const char *cmd, const char *fmt, ...);
/*
 * split_cli_bad_option reports what getopt_long returned ('?' or ':') for the
 * option at argv[optind - 1]; returns SPLIT_CLI_USAGE.
 */
int split_cli_bad_option(const char *cmd, int c, char *argv[]);

/* Not an exit status: split_cli_common_option's "keep parsing". */
#define SPLIT_CLI_CONTINUE (-1)

/*
 * struct split_cli_shareset: what --record, --share and --holder-key name
 * (verify, combine); the i-th --holder-key opens the i-th --share.
 */
struct split_cli_shareset {
    const char *record;
    char *share_paths[PROTO_SHARES_MAX];
    char *key_paths[PROTO_SHARES_MAX];
    size_t num_shares;
    size_t num_keys;
};

/*
 * split_cli_common_option takes what getopt_long returned for an option the
 * subcommand does not handle itself: 'r', 's' and 'K' with |arg| into |set|
 * (when not NULL), --help ('h') prints |usage| to stdout, anything else is
 * reported. Returns SPLIT_CLI_CONTINUE to keep parsing, or the exit status to
 * return now.
 */
int split_cli_common_option(const char *cmd, struct split_cli_shareset *set, int c, char *arg,
                            char *argv[], void (*usage)(FILE *to));
/* split_cli_no_operands: SPLIT_CLI_OK when getopt_long left no operand,
 * else reports the first and returns SPLIT_CLI_USAGE. */
int split_cli_no_operands(const char *cmd, int argc, char *argv[]);
/* split_cli_shareset_check: as many --holder-key as --share, else reported
 * (SPLIT_CLI_USAGE). */
int split_cli_shareset_check(const char *cmd, const struct split_cli_shareset *set);

/* split_cli_parse_uint: a decimal number in [0, max] with nothing after it. */
bool split_cli_parse_uint(const char *s, unsigned max, unsigned *out);
/*
 * split_cli_out_absent: nothing (not even a dangling link) is at |path|, where
 * the command is to create a file; otherwise it fails, as it refuses to
 * overwrite.
 */
int split_cli_out_absent(const char *cmd, const char *path);
/*
 * split_cli_out_path writes DIR/NAME, a file the command is to create, into
 * |out|; it fails when that does not fit in |cap| or, as
 * split_cli_out_absent, when something is there.
 */
int split_cli_out_path(const char *cmd, char *out, size_t cap, const char *dir, const char *name);
/* split_cli_is_dir: |path| is a directory. */
bool split_cli_is_dir(const char *path);
/*
 * split_cli_out_dir_check: |dir| is a directory or does not exist yet (the
 * command makes it when it writes); otherwise prints why and returns
 * SPLIT_CLI_FAIL. Checked before any work so a bad --out fails at once.
 */
int split_cli_out_dir_check(const char *cmd, const char *dir);
/*
 * split_cli_out_dir_make makes a missing |dir| with mode 0700 (one level:
 * its parent must exist), just before the first file is written, so a
 * command that fails earlier leaves nothing behind. *made says whether it
 * did, so a failed write can remove it again.
 */
int split_cli_out_dir_make(const char *cmd, const char *dir, bool *made);
/* split_cli_hex writes |n| bytes as lowercase hex and a NUL into |out| (2n + 1). */
void split_cli_hex(char *out, const uint8_t *p, size_t n);

/*
 * split_cli_read_record reads |path| into |rec| and checks its signature by
 * its own key. Prints one line and returns SPLIT_CLI_FAIL on failure.
 */
int split_cli_read_record(const char *cmd, struct proto_record *rec, const char *path);

/*
 * struct split_cli_opened: a verified record and the shares opened against
 * it, for verify and combine. |ys| is secret memory.
 */
struct split_cli_opened {
    struct proto_record *rec;
    struct split_field f; /* rebuild mode only */
    size_t y_len;         /* bytes of one opened share: tuple, or s_i in threshold mode */
    size_t num;
    struct proto_share_file *files;
    uint8_t *ys;
    struct split_opened_share shares[PROTO_SHARES_MAX];
};

/*
 * split_cli_open_shares reads and verifies |record_path|, then opens each
 * share_paths[i] with key_paths[i] and checks it against the record (key,
 * split, holder, commitment, distinct index). With |print|, says "share X
 * (HOLDER): ok" on stdout for each. On failure prints one line and returns
 * SPLIT_CLI_FAIL. Release with split_cli_opened_cleanup (also after failure).
 */
int split_cli_open_shares(struct split_cli_opened *o, const char *cmd, const char *record_path,
                          char *const *share_paths, char *const *key_paths, size_t num, bool print);
void split_cli_opened_cleanup(struct split_cli_opened *o);
/*
 * split_cli_tss_sign_test (threshold mode): every opened share signs a random
 * RSA-PSS SHA-256 test digest, the signature shares are combined and the
 * signature checked with OpenSSL and the record's public key. Needs at least
 * k shares; a share that signs wrongly is named. SPLIT_CLI_OK or _FAIL.
 */
int split_cli_tss_sign_test(const char *cmd, const struct split_cli_opened *o);
/*
 * split_cli_tss_vkeys_check (a record with verification keys): every opened
 * share is the one its v_i names (v^s_i == v_i). SPLIT_CLI_OK or _FAIL.
 */
int split_cli_tss_vkeys_check(const char *cmd, const struct split_cli_opened *o);
/*
 * split_cli_tss_recover (threshold mode): the private key from the first k
 * opened shares (*out, caller frees). SPLIT_CLI_OK or _FAIL.
 */
int split_cli_tss_recover(const char *cmd, EVP_PKEY **out, const struct split_cli_opened *o);
/* split_cli_mode_name: "rebuild" or "threshold". */
const char *split_cli_mode_name(uint8_t mode);

/*
 * split_cli_combine interpolates the opened shares into |out_tuple|
 * (split_tuple_len bytes of secret memory) and checks p * q == N. Prints one
 * line and returns SPLIT_CLI_FAIL on failure.
 */
int split_cli_combine(const char *cmd, uint8_t *out_tuple, const struct split_cli_opened *o);

#endif
