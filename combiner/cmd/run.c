/*
 * combiner run: the combiner as a daemon beside the edge. It reads the
 * edge's configuration file (the combiner-key, share and holder lines and
 * combiner-endpoint) and serves OP_REQUEST on a ROUTER at the combiner
 * endpoint, as `edge combiner` does: the serving code is the edge library's
 * edge_combproc_run, so there is one implementation of it. `edge run` starts
 * this command and restarts it when it dies.
 *
 * main.c does not harden the process before this command: the
 * configuration's "allow-unlocked yes" must be known first, and
 * edge_combproc_run hardens (and locks memory) before any share is read.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "combiner/cmd/cmd.h"

#ifdef SPK_HAVE_EDGE
#include "edge/internal.h"
#endif

static void run_usage(FILE *to)
{
    fprintf(to, "Usage: combiner run --config EDGE_CONFIG [--allow-unlocked]\n"
                "\n"
                "Serves the edge's private-key operations (OP_REQUEST) on the config's\n"
                "combiner-endpoint with its combiner-key, share and holder lines, until\n"
                "SIGTERM or SIGINT, or until the edge that started it is gone. `edge run`\n"
                "starts it by itself; see `edge --help` for the file's format.\n"
                "\n"
                "  --config FILE     the edge configuration file\n"
                "  --allow-unlocked  run even if memory cannot be locked (also the\n"
                "                    config's \"allow-unlocked yes\" or SPK_ALLOW_UNLOCKED=1)\n");
}

int comb_cmd_run(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"allow-unlocked", no_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "run";
    const char *config = NULL;
    const char *env = getenv("SPK_ALLOW_UNLOCKED");
    bool allow_unlocked = env != NULL && strcmp(env, "1") == 0;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'U':
            allow_unlocked = true;
            break;
        case 'h':
            run_usage(stdout);
            return COMB_CLI_OK;
        default:
            return comb_cli_bad_option(cmd, ch, argv);
        }
    }
    if (optind != argc) {
        return comb_cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (config == NULL) {
        return comb_cli_usage(cmd, "--config is required");
    }
#ifdef SPK_HAVE_EDGE
    {
        static struct edge_config cfg;
        char why[4096] = "";

        edge_config_init(&cfg);
        if (edge_config_load(&cfg, config, why, sizeof(why)) != 0) {
            return comb_cli_fail(cmd, "%s", why);
        }
        if (cfg.combiner_key[0] == '\0') {
            return comb_cli_fail(cmd, "%s: no combiner-key line", config);
        }
        return edge_combproc_run(&cfg, allow_unlocked) == 0 ? COMB_CLI_OK : COMB_CLI_FAIL;
    }
#else
    (void)allow_unlocked;
    return comb_cli_fail(cmd, "this combiner was built without the edge library");
#endif
}
