/*
 * edge: the command. Parses argv and calls edge_run (the TLS daemon) or, in
 * the child the daemon starts, edge_combproc_run (the combiner process).
 */

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "edge/internal.h"

static void edge_usage(FILE *out)
{
    fprintf(out,
            "usage: edge run CONFIG          run the TLS edge (starts its combiner)\n"
            "       edge check CONFIG        parse CONFIG and exit\n"
            "       edge combiner --config CONFIG [--allow-unlocked]\n"
            "                                run only the combiner process (the edge\n"
            "                                starts this itself)\n"
            "       edge --help\n\n%s",
            edge_config_help());
}

static int edge_load(struct edge_config *cfg, const char *path)
{
    char why[4096] = "";

    edge_config_init(cfg);
    if (edge_config_load(cfg, path, why, sizeof(why)) != 0) {
        fprintf(stderr, "edge: %s\n", why);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct edge_config cfg;
    char self[PATH_MAX];
    ssize_t n;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        edge_usage(stdout);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "run") == 0) {
        if (edge_load(&cfg, argv[2]) != 0) {
            return 1;
        }
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            fprintf(stderr, "edge: cannot find its own binary\n");
            return 1;
        }
        self[n] = '\0';
        return edge_run(&cfg, argv[2], self);
    }
    if (argc == 3 && strcmp(argv[1], "check") == 0) {
        if (edge_load(&cfg, argv[2]) != 0) {
            return 1;
        }
        printf("%s: %zu listener(s), %zu certificate(s), %zu holder(s), %zu share file(s)\n",
               argv[2], cfg.num_listen, cfg.num_certs, cfg.num_holders, cfg.num_shares);
        return 0;
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "combiner") == 0 &&
        strcmp(argv[2], "--config") == 0) {
        bool unlocked = argc == 5 && strcmp(argv[4], "--allow-unlocked") == 0;
        if (argc == 5 && !unlocked) {
            edge_usage(stderr);
            return 2;
        }
        if (edge_load(&cfg, argv[3]) != 0) {
            return 1;
        }
        return edge_combproc_run(&cfg, unlocked);
    }
    edge_usage(stderr);
    return 2;
}
