/*
 * keysplit: argv parsing and the subcommand table, as wireguard-tools' wg.c
 * does it. Secret memory is set up before anything else runs.
 */
#include <stdio.h>
#include <string.h>

#include "split/keysplit/keysplit.h"

static const struct {
    const char *name;
    int (*run)(int argc, char *argv[]);
    const char *what;
} split_cli_commands[] = {
    {"keygen", split_cmd_keygen, "make a holder's key files NAME.key and NAME.pub"},
    {"genkey", split_cmd_genkey, "make an RSA key of safe primes (for threshold mode)"},
    {"split", split_cmd_split, "split an RSA key into a signed record and sealed shares"},
    {"info", split_cmd_info, "show what a record, share, .pub or .key file says"},
    {"verify", split_cmd_verify, "check a record and shares, and that k shares rebuild the key"},
    {"combine", split_cmd_combine, "rebuild the key from k shares (disaster recovery)"},
    {"pem", split_cmd_pem, "write the key reference file splitkey.so reads instead of a key"},
};

static void split_cli_main_usage(FILE *to)
{
    size_t i;

    fprintf(to, "Usage: keysplit [--verbose] COMMAND [OPTIONS]\n\nCommands:\n");
    for (i = 0; i < sizeof(split_cli_commands) / sizeof(split_cli_commands[0]); i++) {
        fprintf(to, "  %-8s %s\n", split_cli_commands[i].name, split_cli_commands[i].what);
    }
    fprintf(to, "\n'keysplit COMMAND --help' describes each command.\n"
                "--verbose anywhere on the line reports on memory locking.\n");
}

int main(int argc, char *argv[])
{
    char why[256] = "";
    char *args[2048];
    int num_args = 0;
    bool options_done = false;
    int i;
    int r;

    /* First: OpenSSL and GMP must get the wiping allocators before they allocate. */
    if ((r = spk_mem_init()) != 0) {
        return split_cli_fail(NULL, "cannot set up secret memory: %s", spk_strerror(r));
    }
    if (argc < 1 || argc >= (int)(sizeof(args) / sizeof(args[0]))) {
        return split_cli_usage(NULL, "too many arguments");
    }
    for (i = 0; i < argc; i++) {
        if (!options_done && strcmp(argv[i], "--") == 0) {
            options_done = true;
        }
        if (!options_done && i > 0 && strcmp(argv[i], "--verbose") == 0) {
            split_cli_verbose = true;
            continue;
        }
        args[num_args++] = argv[i];
    }
    args[num_args] = NULL;

    /*
     * A short-lived tool: lock memory if the limits allow, else carry on, as
     * the shares it handles are wiped after use either way.
     */
    if ((r = spk_process_harden(true, why, sizeof(why))) != 0) {
        return split_cli_fail(NULL, "cannot harden the process: %s", spk_strerror(r));
    }
    if (split_cli_verbose) {
        if (spk_memory_locked()) {
            fprintf(stderr, "keysplit: memory locked\n");
        } else {
            fprintf(stderr, "keysplit: running with unlocked memory: %s\n",
                    why[0] != '\0' ? why : "mlockall failed");
        }
    }

    if (num_args < 2) {
        return split_cli_usage(NULL, "no command given");
    }
    if (strcmp(args[1], "--help") == 0 || strcmp(args[1], "-h") == 0 ||
        strcmp(args[1], "help") == 0) {
        split_cli_main_usage(stdout);
        return SPLIT_CLI_OK;
    }
    for (i = 0; i < (int)(sizeof(split_cli_commands) / sizeof(split_cli_commands[0])); i++) {
        if (strcmp(args[1], split_cli_commands[i].name) == 0) {
            return split_cli_commands[i].run(num_args - 1, args + 1);
        }
    }
    return split_cli_usage(NULL, "unknown command '%s'", args[1]);
}
