/*
 * combiner check: goes through what `combiner run` would do with a config
 * file, without serving, and says in plain words what would not work: the
 * file, the allow file and the client users; every record and local share
 * (comb_conf_open refuses a bad one with its reason); every share-holder
 * (does it accept the combiner's key); and one test signature per key,
 * which the engine checks with the record's public key before it is
 * released. The test combiner runs inside this process: no socket at all,
 * so nothing else can reach it. Exit 0 only when all is well.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/cmd/cmd.h"
#include "combiner/comb_config.h"
#include "share-holder/share-holder.h"

struct check_state {
    unsigned problems;
};

__attribute__((format(printf, 2, 3))) static void check_bad(struct check_state *k, const char *fmt,
                                                            ...)
{
    va_list ap;

    k->problems++;
    fputs("combiner check: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* check_tcp: can a TCP connection to a tcp://HOST:PORT endpoint be made? 0 or errno. */
static int check_tcp(const char *endpoint)
{
    char host[COMB_CONF_ENDPOINT_MAX];
    const char *hp, *colon;
    struct addrinfo hints, *res = NULL;
    int fd, r = 0;

    if (strncmp(endpoint, "tcp://", 6) != 0) {
        return 0;
    }
    hp = endpoint + 6;
    colon = strrchr(hp, ':');
    if (colon == NULL || (size_t)(colon - hp) >= sizeof(host)) {
        return EINVAL;
    }
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL) {
        return EHOSTUNREACH;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        r = errno;
    }
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return r;
}

static void check_holder(void *arg, const char *name, const char *endpoint, bool connected,
                         const struct spk_hist *latency)
{
    struct check_state *k = arg;
    int e;

    (void)latency;
    if (connected) {
        printf("combiner check: holder %s at %s: accepts the combiner's key\n", name, endpoint);
        return;
    }
    e = check_tcp(endpoint);
    if (e != 0) {
        check_bad(k, "holder %s at %s: unreachable (%s)", name, endpoint, strerror(e));
    } else {
        check_bad(k,
                  "holder %s at %s: reachable, but does not accept the combiner: it refuses "
                  "the combiner's key (is the combiner's curve-public key in its allow-list?), "
                  "or the holder's curve key on the holder line is wrong",
                  name, endpoint);
    }
}

/* check_sign: one PKCS#1 SHA-256 signature per key; the engine verifies it
 * with the record's public key before releasing it. */
static void check_sign(struct check_state *k, struct comb_ctx *c, const struct comb_conf *conf)
{
    static const char msg[] = "splitkey combiner check";
    uint8_t dgst[crypto_hash_sha256_BYTES];
    uint8_t *sig = OPENSSL_malloc(PROTO_BN_MAX);

    if (sig == NULL) {
        check_bad(k, "no memory");
        return;
    }
    crypto_hash_sha256(dgst, (const uint8_t *)msg, sizeof(msg) - 1);
    for (size_t i = 0; i < conf->num_keys; i++) {
        char hex[17];
        size_t sig_len = 0;

        sodium_bin2hex(hex, sizeof(hex), conf->keys[i].key_id, 8);
        if (comb_sign_sync(c, sig, PROTO_BN_MAX, &sig_len, conf->keys[i].key_id,
                           COMB_ALG_PKCS1_SHA256, dgst, sizeof(dgst)) != 0) {
            check_bad(k, "key %s...: no test signature: %s", hex, comb_last_error(c));
            continue;
        }
        printf("combiner check: key %s... (%s mode, %u of its shares needed, %s): test "
               "signature made and checked with the record's public key\n",
               hex,
               conf->keys[i].mode == PROTO_MODE_THRESHOLD ? "threshold (signs only)" : "rebuild",
               conf->keys[i].threshold, conf->keys[i].local ? "one local" : "none local");
    }
    OPENSSL_free(sig);
}

static void check_usage(FILE *to)
{
    fprintf(to, "Usage: combiner check --config FILE [--allow-unlocked]\n"
                "\n"
                "Checks FILE as `combiner run` would use it, like `nginx -t`: the file, its\n"
                "allow file and client users, every record and local share, every holder\n"
                "(does it accept the combiner's key), and one test signature per key made\n"
                "inside this process and checked with the record's public key; then says\n"
                "which of OpenSSL's exponentiation code `run` would take (exp-code). Exit 0\n"
                "only if all would work.\n"
                "\n"
                "  --config FILE     the combiner config file (`combiner run --help`)\n"
                "  --allow-unlocked  run even if memory cannot be locked (or the file's\n"
                "                    allow-unlocked yes)\n");
}

int comb_cmd_check(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"allow-unlocked", no_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "check";
    const char *path = NULL;
    bool allow_unlocked = false;
    struct check_state k = {0};
    struct comb_conf conf;
    struct comb_ctx *c = NULL;
    struct sh_allow allow;
    char why[COMB_CONF_WHY_MAX * 2] = "";
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'U':
            allow_unlocked = true;
            break;
        case 'h':
            check_usage(stdout);
            return COMB_CLI_OK;
        default:
            return comb_cli_bad_option(cmd, ch, argv);
        }
    }
    if (optind != argc) {
        return comb_cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (path == NULL) {
        return comb_cli_usage(cmd, "--config is required");
    }
    memset(&allow, 0, sizeof(allow));
    if (comb_conf_load(&conf, path, NULL, NULL, why, sizeof(why)) != 0) {
        return comb_cli_fail(cmd, "%s", why);
    }
    if (spk_process_harden(allow_unlocked || conf.allow_unlocked, why, sizeof(why)) != 0) {
        comb_conf_cleanup(&conf);
        return comb_cli_fail(cmd,
                             "%s (allow-unlocked yes or --allow-unlocked runs without "
                             "locked memory)",
                             why);
    }
    if (conf.listen[0] == '\0') {
        printf("combiner check: no listen line: `combiner run` then needs --listen (as `edge "
               "run` gives it)\n");
    }
    if (conf.allow_path[0] != '\0' &&
        sh_allow_load(&allow, conf.allow_path, why, sizeof(why)) != 0) {
        check_bad(&k, "allow file %s: %s", conf.allow_path, why);
    }
    for (size_t i = 0; i < conf.num_clients; i++) {
        const struct comb_conf_client *cl = &conf.clients[i];
        bool found = cl->by_uid;

        for (size_t j = 0; !found && j < allow.num_clients; j++) {
            found = strcmp(allow.clients[j].name, cl->name) == 0;
        }
        if (!found) {
            check_bad(&k, "client %s curve: no client of that name in the allow file", cl->name);
        }
    }
    if (strncmp(conf.listen, "tcp://", 6) == 0 && conf.allow_path[0] == '\0') {
        check_bad(&k, "listen %s: tcp:// needs an allow file and client NAME curve lines",
                  conf.listen);
    }
    if (comb_conf_open(&c, &conf, NULL, (int)conf.timeout_ms, why, sizeof(why)) != 0) {
        check_bad(&k, "%s", why);
    } else {
        (void)comb_remote_each(c, check_holder, &k);
        check_sign(&k, c, &conf);
    }
    comb_free(c);
    sh_allow_cleanup(&allow);
    if (k.problems != 0) {
        printf("combiner check: %s: %u problem(s); `combiner run` would not work as "
               "configured\n",
               path, k.problems);
        comb_conf_cleanup(&conf);
        return COMB_CLI_FAIL;
    }
    comb_cli_exp_describe(&conf, why, sizeof(why));
    printf("combiner check: RSA exponentiation: %s\n", why);
    printf("combiner check: %s: ok (%zu key(s), %zu holder(s), %zu client line(s))\n", path,
           conf.num_keys, conf.num_holders, conf.num_clients);
    comb_conf_cleanup(&conf);
    return COMB_CLI_OK;
}
