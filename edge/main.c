/*
 * edge: the command. Parses argv and calls edge_run (the TLS daemon) or
 * edge_check. The combiner is another program (`combiner run`).
 */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge/internal.h"

static void edge_usage(FILE *out)
{
    fprintf(out,
            "usage: edge run CONFIG          run the TLS edge (starts `combiner run` with\n"
            "                                combiner-config, unless combiner-external)\n"
            "       edge check CONFIG        check CONFIG like `nginx -t`: certificates, key\n"
            "                                records, ticket keys, upstreams; then\n"
            "                                `combiner check` of combiner-config (shares,\n"
            "                                holders, a test operation per key) and one test\n"
            "                                signature per certificate through a combiner\n"
            "                                started for the check in a private 0700\n"
            "                                directory (or the external one), verified with\n"
            "                                the certificate; exit 0 only if all would work\n"
            "       edge run CONFIG --benchmark-local-keys KEY.pem...\n"
            "                                BENCHMARK ONLY (tools/bench-edge's baseline): the\n"
            "                                TLS process loads the whole private keys and signs\n"
            "                                and decrypts with them itself; no combiner, no\n"
            "                                shares. This defeats splitkey: never deploy it.\n"
            "                                The keys can only be named here, not in CONFIG\n"
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

/*
 * edge_find_combiner sets cfg->combiner_binary, when the config names none,
 * to the `combiner` command the edge starts as `combiner run --config FILE`:
 * the one next to the edge binary (an installation), the build tree's
 * ../combiner/combiner, or the first in PATH.
 */
static void edge_find_combiner(struct edge_config *cfg, const char *self)
{
    char dir[PATH_MAX];
    char cand[PATH_MAX + 32];
    const char *path = getenv("PATH");
    char *slash;

    if (cfg->combiner_binary[0] != '\0') {
        return;
    }
    snprintf(dir, sizeof(dir), "%s", self);
    slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        snprintf(cand, sizeof(cand), "%s/combiner", dir);
        if (access(cand, X_OK) != 0) {
            snprintf(cand, sizeof(cand), "%s/../combiner/combiner", dir);
        }
        if (access(cand, X_OK) == 0 && strlen(cand) < sizeof(cfg->combiner_binary)) {
            memcpy(cfg->combiner_binary, cand, strlen(cand) + 1);
            return;
        }
    }
    while (path != NULL && *path != '\0') {
        size_t len = strcspn(path, ":");
        if (len > 0 && len < sizeof(dir)) {
            snprintf(cand, sizeof(cand), "%.*s/combiner", (int)len, path);
            if (access(cand, X_OK) == 0 && strlen(cand) < sizeof(cfg->combiner_binary)) {
                memcpy(cfg->combiner_binary, cand, strlen(cand) + 1);
                return;
            }
        }
        path += len;
        path += *path == ':';
    }
}

/* edge_main: the command with its configuration in |cfg| (zeroed, on the heap). */
static int edge_main(struct edge_config *cfg, int argc, char **argv)
{
    char self[PATH_MAX];
    ssize_t n;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        edge_usage(stdout);
        return 0;
    }
    if ((argc == 3 || (argc > 4 && strcmp(argv[3], "--benchmark-local-keys") == 0)) &&
        strcmp(argv[1], "run") == 0) {
        if (edge_load(cfg, argv[2]) != 0) {
            return 1;
        }
        if (argc > 4) {
            char why[EDGE_PATH_MAX + 128] = "";
            if (edge_bench_keys_load((const char *const *)&argv[4], (size_t)(argc - 4), why,
                                     sizeof(why)) != 0) {
                fprintf(stderr, "edge: %s\n", why);
                return 1;
            }
            fprintf(stderr,
                    "edge: WARNING: BENCHMARK-ONLY mode: %d whole private key(s) in "
                    "the TLS process, no combiner; never use this in production\n",
                    argc - 4);
        }
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            fprintf(stderr, "edge: cannot find its own binary\n");
            return 1;
        }
        self[n] = '\0';
        edge_find_combiner(cfg, self);
        return edge_run(cfg, argv[2], self);
    }
    if (argc == 3 && strcmp(argv[1], "check") == 0) {
        if (edge_load(cfg, argv[2]) != 0) {
            return 1;
        }
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        self[n > 0 ? n : 0] = '\0';
        edge_find_combiner(cfg, self);
        return edge_check(cfg, argv[2]);
    }
    edge_usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    struct edge_config *cfg = calloc(1, sizeof(*cfg));
    int r;

    if (cfg == NULL) {
        fprintf(stderr, "edge: out of memory\n");
        return 1;
    }
    r = edge_main(cfg, argc, argv);
    free(cfg);
    return r;
}
