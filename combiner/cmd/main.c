/*
 * combiner: argv parsing and the subcommand table, as wireguard-tools' wg.c
 * does it. Secret memory is set up before anything else runs, and memory is
 * locked before any share is read: running unlocked takes --allow-unlocked
 * (or, for the one-shot sign and decrypt, SPK_ALLOW_UNLOCKED=1 in the
 * environment, as tools/check sets for sanitizer builds, whose shadow memory
 * cannot be locked; the daemon takes only the flag or its file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "combiner/cmd/cmd.h"

static const struct {
    const char *name;
    int (*run)(int argc, char *argv[]);
    const char *what;
} comb_cli_commands[] = {
    {"sign", comb_cmd_sign, "sign a digest or a message with a split key"},
    {"decrypt", comb_cmd_decrypt, "decrypt a ciphertext with a split key"},
    {"run", comb_cmd_run, "serve key operations to the clients of a config file"},
    {"check", comb_cmd_check, "check a config file as `run` would use it"},
    {"probe-exp", comb_cmd_probe_exp, "time OpenSSL's exponentiation code on this CPU (exp-code)"},
};

char **comb_cli_argv;

#define COMB_CLI_NUM_COMMANDS (sizeof(comb_cli_commands) / sizeof(comb_cli_commands[0]))

static void comb_cli_main_usage(FILE *to)
{
    size_t i;

    fprintf(to, "Usage: combiner COMMAND [OPTIONS]\n\nCommands:\n");
    for (i = 0; i < COMB_CLI_NUM_COMMANDS; i++) {
        fprintf(to, "  %-9s %s\n", comb_cli_commands[i].name, comb_cli_commands[i].what);
    }
    fprintf(to,
            "\n'combiner COMMAND --help' describes each command.\n"
            "--allow-unlocked runs even if memory cannot be locked (for sign and decrypt also\n"
            "SPK_ALLOW_UNLOCKED=1; run and check take the flag or their file's allow-unlocked).\n");
}

static bool comb_cli_has_arg(int argc, char *argv[], const char *arg)
{
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            return false;
        }
        if (strcmp(argv[i], arg) == 0) {
            return true;
        }
    }
    return false;
}

int main(int argc, char *argv[])
{
    const char *env = getenv("SPK_ALLOW_UNLOCKED");
    bool allow_unlocked;
    bool help;
    char why[256] = "";
    size_t i;
    int r;

    comb_cli_argv = argv;
    /* First: OpenSSL and GMP must get the wiping allocators before they allocate. */
    if ((r = spk_mem_init()) != 0) {
        return comb_cli_fail(NULL, "cannot set up secret memory: %s", spk_strerror(r));
    }
    if (argc < 2) {
        comb_cli_main_usage(stderr);
        return COMB_CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        comb_cli_main_usage(stdout);
        return COMB_CLI_OK;
    }
    for (i = 0; i < COMB_CLI_NUM_COMMANDS; i++) {
        if (strcmp(argv[1], comb_cli_commands[i].name) == 0) {
            break;
        }
    }
    if (i == COMB_CLI_NUM_COMMANDS) {
        return comb_cli_usage(NULL, "unknown command '%s'", argv[1]);
    }

    /* Help touches no secret; everything else runs locked or was told it may not. */
    help = comb_cli_has_arg(argc, argv, "--help") || comb_cli_has_arg(argc, argv, "-h");
    /* run and check harden themselves once their file says whether they may run
     * unlocked; probe-exp touches no key. */
    if (!help && comb_cli_commands[i].run != comb_cmd_run &&
        comb_cli_commands[i].run != comb_cmd_check &&
        comb_cli_commands[i].run != comb_cmd_probe_exp) {
        allow_unlocked = comb_cli_has_arg(argc, argv, "--allow-unlocked") ||
                         (env != NULL && strcmp(env, "1") == 0);
        if ((r = spk_process_harden(allow_unlocked, why, sizeof(why))) != 0) {
            return comb_cli_fail(NULL, "%s (--allow-unlocked runs without locked memory)",
                                 why[0] != '\0' ? why : spk_strerror(r));
        }
    }
    return comb_cli_commands[i].run(argc - 1, argv + 1);
}
