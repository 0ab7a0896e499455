#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/spk_metrics.h"
#include "share-holder/share-holder.h"

/* share-holder: parse argv (and --config), then sh_run. */

static void usage(FILE *f)
{
    fputs("usage: share-holder run --key NAME.key --shares DIR --allow FILE --bind ENDPOINT\n"
          "                        --audit-log FILE|stderr [--rate N] [--burst N]\n"
          "                        [--metrics HOST:PORT] [--allow-unlocked] [--config FILE]\n"
          "       share-holder check --allow FILE\n"
          "       share-holder --help\n"
          "\n"
          "Serves this holder's shares (KEYID.NAME.share files in DIR, sealed to NAME.key)\n"
          "over ZeroMQ with CURVE to the clients of the allow-list FILE, one line each:\n"
          "  client NAME CURVE_PUBLIC_Z85 KEYIDS [ADDRESS_RANGES]\n"
          "KEYIDS is * or comma-separated hex key ids; ADDRESS_RANGES comma-separated CIDR.\n"
          "\n"
          "  --audit-log FILE   append one line per released share, synced to the disk before\n"
          "                     the share leaves, and per client and minute one summary of\n"
          "                     what was refused; required (\"stderr\" writes it there);\n"
          "                     reopened on SIGHUP (logrotate); never through a symlink\n"
          "  --rate N           share requests per second per client (default 1000)\n"
          "  --burst N          requests a client may send at once (default 2000)\n"
          "  --metrics HOST:PORT\n"
          "                     serve the counters (releases, refusals, rate-limited, failed\n"
          "                     reloads, sessions) as Prometheus text over plain HTTP at\n"
          "                     http://HOST:PORT/metrics; numeric loopback only\n"
          "                     (127.A.B.C:PORT or [::1]:PORT)\n"
          "  --allow-unlocked   run even if memory cannot be locked (or allow-unlocked yes in\n"
          "                     --config; the environment does not count)\n"
          "  --config FILE      \"OPTION VALUE\" lines; the command line wins\n"
          "\n"
          "SIGHUP reloads the allow-list and the shares; a file that does not parse keeps\n"
          "the previous list in force and is logged as an ERROR (check it first with\n"
          "share-holder check --allow FILE, which exits 1 with the reason). SIGTERM\n"
          "drains and exits.\n",
          f);
}

static int set_path(char *dst, const char *src)
{
    if (strlen(src) >= SH_PATH_MAX) {
        fprintf(stderr, "share-holder: path too long: %s\n", src);
        return -1;
    }
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

static int parse_count(const char *s, const char *what, unsigned long *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);

    if (s[0] < '0' || s[0] > '9' || end == NULL || *end != '\0' || v == 0 || v > 1000000) {
        fprintf(stderr, "share-holder: %s must be a number from 1 to 1000000\n", what);
        return -1;
    }
    *out = v;
    return 0;
}

/* holder_main: the command with its options in |opt| (zeroed, on the heap). */
static int holder_main(struct sh_options *opt, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, 'k'},
        {"shares", required_argument, NULL, 's'},
        {"allow", required_argument, NULL, 'a'},
        {"bind", required_argument, NULL, 'b'},
        {"audit-log", required_argument, NULL, 'l'},
        {"rate", required_argument, NULL, 'r'},
        {"burst", required_argument, NULL, 'B'},
        {"metrics", required_argument, NULL, 'm'},
        {"allow-unlocked", no_argument, NULL, 'U'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    unsigned long v;
    int c;

    sh_options_init(opt);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "check") == 0 && strcmp(argv[2], "--allow") == 0) {
        return sh_allow_check(argv[3]);
    }
    if (argc < 2 || strcmp(argv[1], "run") != 0) {
        usage(stderr);
        return 2;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int r = 0;

        switch (c) {
        case 'k':
            r = set_path(opt->key_path, optarg);
            break;
        case 's':
            r = set_path(opt->shares_dir, optarg);
            break;
        case 'a':
            r = set_path(opt->allow_path, optarg);
            break;
        case 'b':
            r = set_path(opt->bind, optarg);
            break;
        case 'l':
            r = set_path(opt->audit_path, optarg);
            break;
        case 'r':
            r = parse_count(optarg, "--rate", &v);
            opt->rate = (double)v;
            opt->set_rate = true;
            break;
        case 'B':
            r = parse_count(optarg, "--burst", &v);
            opt->burst = (unsigned)v;
            opt->set_burst = true;
            break;
        case 'm':
            r = set_path(opt->metrics, optarg);
            break;
        case 'U':
            opt->allow_unlocked = true;
            break;
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (r != 0) {
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "share-holder: unexpected argument: %s\n", argv[optind]);
        return 2;
    }
    if (config != NULL) {
        char why[PROTO_PATH_WHY_MAX] = "";

        if (sh_config_load(opt, config, why, sizeof(why)) != 0) {
            fprintf(stderr, "share-holder: config %s\n", why);
            return 2;
        }
    }
    /* the endpoint is plain HTTP without authentication: loopback only */
    if (opt->metrics[0] != '\0' && !spk_metrics_hostport_ok(opt->metrics)) {
        fprintf(stderr,
                "share-holder: metrics %s: must be a numeric loopback HOST:PORT "
                "(127.A.B.C:PORT or [::1]:PORT)\n",
                opt->metrics);
        return 2;
    }
    return sh_run(opt);
}

int main(int argc, char **argv)
{
    struct sh_options *opt = calloc(1, sizeof(*opt));
    int r;

    if (opt == NULL) {
        fprintf(stderr, "share-holder: out of memory\n");
        return 1;
    }
    r = holder_main(opt, argc, argv);
    free(opt);
    return r;
}
