/*
 * combiner run: the combiner as a daemon (combiner/comb_server.c). It reads
 * the combiner's configuration file (proto/PROTOCOL.md section 8) and serves
 * OP_REQUEST at its `listen` endpoint to the clients its `client` lines
 * admit. `edge run` starts it with the file named by the edge's
 * combiner-config; under systemd it runs as its own user.
 *
 * main.c does not harden the process before this command: the file's
 * "allow-unlocked yes" must be known first, and comb_server_run hardens
 * (and locks memory) before any share is read. SPK_ALLOW_UNLOCKED in the
 * environment does not count for a daemon: only the flag or the file.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "combiner/cmd/cmd.h"
#include "combiner/comb_server.h"

static void run_usage(FILE *to)
{
    fprintf(
        to,
        "Usage: combiner run --config FILE [--listen ENDPOINT] [--no-metrics]\n"
        "                    [--allow-unlocked]\n"
        "\n"
        "Serves private-key operations (OP_REQUEST) at the file's listen endpoint until\n"
        "SIGTERM or SIGINT (it then answers what is in flight and exits 0), or until\n"
        "the process that started it (`edge run`) is gone. SIGHUP reads the file again.\n"
        "The file is the combiner config (proto/PROTOCOL.md section 8) with, for the\n"
        "daemon:\n"
        "  listen unix://PATH|ipc://PATH|tcp://HOST:PORT  where to serve: unix:// is a\n"
        "                                 SOCK_SEQPACKET socket (the cheapest channel,\n"
        "                                 for the edge and splitkey.so), ipc:// ZeroMQ,\n"
        "                                 both socket mode 0600; tcp:// ZeroMQ with CURVE\n"
        "  client NAME uid USER|UID OPS   a unix:// or ipc:// client, known by its peer uid\n"
        "  client NAME curve OPS          a tcp:// client: NAME's CURVE key in the allow file\n"
        "  allow FILE                     CURVE clients (the share-holder's allow-list format)\n"
        "  socket-group GROUP             unix:// and ipc:// socket mode 0660 for GROUP\n"
        "                                 instead of 0600\n"
        "  metrics HOST:PORT              Prometheus endpoint (GET /metrics), a numeric\n"
        "                                 loopback address only (127.A.B.C:PORT, [::1]:PORT)\n"
        "  allow-unlocked yes|no          run even if memory cannot be locked (no)\n"
        "  share-timeout-ms N             one share request (default: timeout-ms)\n"
        "  holder-fanout needed|all       needed (default): the local share and only as\n"
        "                                 many holders as the threshold needs, the fastest\n"
        "                                 first, the others after a sound holder's p95 or at\n"
        "                                 once on an error; all: every holder, every time\n"
        "  crt-threads 1|2                2 (default with more than one CPU): an RSA\n"
        "                                 operation that finds the combiner idle runs its\n"
        "                                 two CRT halves on two threads, where that is\n"
        "                                 faster (measured at start); 1: on one\n"
        "  exp-code auto|openssl|avx2     which of OpenSSL's constant-time code runs RSA\n"
        "                                 exponentiations; read at start: auto (default)\n"
        "                                 takes its AVX2 code when every key is RSA-2048\n"
        "                                 and it measures at least 5%% faster (then\n"
        "                                 this process runs itself again with\n"
        "                                 OPENSSL_ia32cap=:~0x80100; `combiner probe-exp`\n"
        "                                 shows the times); avx2 always (slower for larger\n"
        "                                 keys); openssl: OpenSSL's own choice\n"
        "OPS: comma-separated tls (PKCS#1 and PSS signatures, decrypt-tls-premaster),\n"
        "sign (every signature) and operation names (decrypt-raw, decrypt-pkcs1, ...).\n"
        "Without client lines a unix:// or ipc:// combiner serves the tls set to its own\n"
        "uid only; a tcp:// one needs allow and client lines. decrypt-raw and\n"
        "decrypt-pkcs1 are served to no one unless a client line names them.\n"
        "\n"
        "  --config FILE      the combiner config file\n"
        "  --listen ENDPOINT  serve here instead of the file's listen (`edge run` and\n"
        "                     `edge check` pass their combiner-endpoint)\n"
        "  --no-metrics       do not open the file's metrics endpoint\n"
        "  --allow-unlocked   run even if memory cannot be locked (or the file's\n"
        "                     allow-unlocked yes; the environment does not count)\n");
}

int comb_cmd_run(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
        {"no-metrics", no_argument, NULL, 'M'},   {"allow-unlocked", no_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *cmd = "run";
    struct comb_server_opts o;
    int ch;

    memset(&o, 0, sizeof(o));
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o.config_path = optarg;
            break;
        case 'l':
            o.listen = optarg;
            break;
        case 'M':
            o.no_metrics = true;
            break;
        case 'U':
            o.allow_unlocked = true;
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
    if (o.config_path == NULL) {
        return comb_cli_usage(cmd, "--config is required");
    }
    /* Before anything else: it may run this process again (exp.c). */
    comb_cli_exp_settle(o.config_path, comb_cli_argv);
    return comb_server_run(&o) == 0 ? COMB_CLI_OK : COMB_CLI_FAIL;
}
