/*
 * exp-code: which of OpenSSL's exponentiation code the combiner runs.
 *
 * OpenSSL 3.0 runs the 1024-bit constant-time exponentiations of an RSA-2048
 * private-key operation (its two CRT halves) with its MULX code whenever the
 * CPU has ADX and BMI2, and with its AVX2 code (RSAZ) only on CPUs that lack
 * them. On some CPUs that have them the AVX2 code is clearly faster (an AMD
 * EPYC without AVX-512: 370 against 465 us a half). Both are OpenSSL's own
 * constant-time code; only the speed differs. OpenSSL reads which code it
 * may use once, when the library loads, from OPENSSL_ia32cap in the
 * environment: so `combiner run` decides before it does anything else and
 * runs itself again (execv of /proc/self/exe: the same pid, arguments and
 * open descriptors) with the variable set. The mask that gives the 1024-bit
 * halves the AVX2 code takes the MULX code from everything else in the
 * process: the halves of larger keys (RSA-4096's are about a quarter
 * slower) and the check with the public exponent. Hence `auto` (the
 * default) only for a file whose keys are all RSA-2048 and only where a
 * measurement at start shows the AVX2 code faster; `avx2` and `openssl`
 * force one or the other.
 *
 * `combiner probe-exp` shows the measurement; `combiner probe-exp --self`
 * (what `run` and `probe-exp` start with the other setting) times one pair
 * of halves for each line it reads, so that the two processes can take
 * their runs in turns.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "combiner/cmd/cmd.h"
#include "combiner/comb_config.h"

extern char **environ;

/* Set by `run` for the process it becomes: what it chose, for its log. */
#define EXP_CHOSEN_ENV "SPK_COMBINER_EXP_CODE"
#define EXP_PROBE_RUNS 18u /* in each process, taken one and one */
#define EXP_PROBE_WAIT_MS 20000

/* exp_time_one_ns: one pair of 1024-bit halves on this process's code. */
static uint64_t exp_time_one_ns(void)
{
    return comb_rsa_time_ns(1024, true, 1);
}

/* The second process, `combiner probe-exp --self` with OPENSSL_ia32cap
 * masked: it times one pair for each line it reads. One stream socket is
 * its standard input and output, so that writing to a child that died
 * (MSG_NOSIGNAL) fails instead of raising SIGPIPE here. */
struct exp_child {
    pid_t pid;
    int fd;
};

static bool exp_child_start(struct exp_child *ch, char *why, size_t why_len)
{
    char arg0[] = "combiner", arg1[] = "probe-exp", arg2[] = "--self";
    char *const argv[] = {arg0, arg1, arg2, NULL};
    posix_spawn_file_actions_t fa;
    int sv[2];
    int r;

    ch->pid = -1;
    ch->fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, why_len, "socketpair: %s", strerror(errno));
        return false;
    }
    if ((r = posix_spawn_file_actions_init(&fa)) == 0) {
        (void)posix_spawn_file_actions_adddup2(&fa, sv[1], STDIN_FILENO);
        (void)posix_spawn_file_actions_adddup2(&fa, sv[1], STDOUT_FILENO);
        if (setenv("OPENSSL_ia32cap", COMB_EXP_AVX2_MASK, 1) != 0) {
            r = errno;
        } else {
            r = posix_spawn(&ch->pid, "/proc/self/exe", &fa, NULL, argv, environ);
            (void)unsetenv("OPENSSL_ia32cap");
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    close(sv[1]);
    if (r != 0) {
        close(sv[0]);
        ch->pid = -1;
        snprintf(why, why_len, "cannot start /proc/self/exe: %s", strerror(r));
        return false;
    }
    ch->fd = sv[0];
    return true;
}

/* exp_child_time_ns: the child's time for one pair; UINT64_MAX if it did
 * not answer with one (|why| says so). */
static uint64_t exp_child_time_ns(struct exp_child *ch, char *why, size_t why_len)
{
    char buf[32];
    size_t got = 0;
    char *end = NULL;
    unsigned long long v;

    if (send(ch->fd, "\n", 1, MSG_NOSIGNAL) != 1) {
        snprintf(why, why_len, "the measuring process is gone");
        return UINT64_MAX;
    }
    while (got == 0 || buf[got - 1] != '\n') {
        struct pollfd pfd = {ch->fd, POLLIN, 0};
        ssize_t n;

        if (got == sizeof(buf) - 1 || poll(&pfd, 1, EXP_PROBE_WAIT_MS) <= 0 ||
            (n = read(ch->fd, buf + got, sizeof(buf) - 1 - got)) <= 0) {
            snprintf(why, why_len, "the measuring process did not answer");
            return UINT64_MAX;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    errno = 0;
    v = strtoull(buf, &end, 10);
    if (errno != 0 || end == buf || *end != '\n' || v == 0) {
        snprintf(why, why_len, "the measuring process answered no time");
        return UINT64_MAX;
    }
    return (uint64_t)v;
}

/* exp_child_stop: the end of its input ends a child that answered; one
 * that did not is killed. */
static void exp_child_stop(struct exp_child *ch, bool answered)
{
    int status;

    close(ch->fd);
    if (!answered) {
        kill(ch->pid, SIGKILL);
    }
    while (waitpid(ch->pid, &status, 0) < 0 && errno == EINTR) {
    }
    ch->pid = -1;
}

/*
 * exp_measure: the fastest pair of halves with OpenSSL's own code (this
 * process) and with its AVX2 code (a second one), EXP_PROBE_RUNS each,
 * taken one and one, both processes held to the CPU this one is on. On a
 * shared host a busy moment or a busier CPU then falls on both codes
 * alike: measured in turns of a few runs per process, each on whichever
 * CPU it got, the two codes, about 20% apart here, once came out 2% apart
 * and once with the AVX2 code not a twentieth faster.
 */
static void exp_measure(uint64_t *openssl_ns, uint64_t *avx2_ns, char *why, size_t why_len)
{
    struct exp_child ch;
    cpu_set_t saved, one;
    bool pinned = false;
    int cpu = sched_getcpu();

    *openssl_ns = *avx2_ns = UINT64_MAX;
    if (cpu >= 0 && sched_getaffinity(0, sizeof(saved), &saved) == 0) {
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pinned = sched_setaffinity(0, sizeof(one), &one) == 0;
    }
    /* the child inherits the affinity of the moment it starts */
    if (exp_child_start(&ch, why, why_len)) {
        for (unsigned i = 0; i < EXP_PROBE_RUNS; i++) {
            uint64_t own = exp_time_one_ns(), other = exp_child_time_ns(&ch, why, why_len);

            if (other == UINT64_MAX) {
                *avx2_ns = UINT64_MAX;
                break;
            }
            *openssl_ns = own < *openssl_ns ? own : *openssl_ns;
            *avx2_ns = other < *avx2_ns ? other : *avx2_ns;
        }
        exp_child_stop(&ch, *avx2_ns != UINT64_MAX);
    }
    if (pinned) {
        (void)sched_setaffinity(0, sizeof(saved), &saved);
    }
}

/*
 * Whether the AVX2 code is worth taking: at least a twentieth faster. What
 * the mask costs elsewhere for RSA-2048 (the check with e, the blinding's
 * multiplications: about 10 us) is under 2% of a pair of halves; the margin
 * is for the noise of a shared host, where this measurement of a 20% gain
 * has come out anywhere from 10% to 35%.
 */
static bool exp_avx2_pays(uint64_t openssl_ns, uint64_t avx2_ns)
{
    return openssl_ns != UINT64_MAX && avx2_ns != UINT64_MAX && avx2_ns * 20 < openssl_ns * 19;
}

static bool exp_rsa2048_rebuild(const struct proto_record *rec, void *arg)
{
    (void)arg;
    return comb_exp_avx2_suits(rec->mode, rec->modulus_len);
}

/* Under valgrind /proc/self/exe is valgrind itself, and its times mean nothing. */
static bool exp_under_valgrind(void)
{
    const char *pre = getenv("LD_PRELOAD");

    return pre != NULL && strstr(pre, "vgpreload") != NULL;
}

/*
 * exp_decide: what exp-code asks of a process started with |conf| and the
 * environment as it is: true when it should run with the AVX2 code, and in
 * |line| what it runs and why (empty for exp-code openssl, which needs no
 * word). Measures (exp_measure) for auto.
 */
static bool exp_decide(const struct comb_conf *conf, char *line, size_t line_len)
{
    const char *cap = getenv("OPENSSL_ia32cap");
    enum comb_exp_code code = conf->exp_code;
    char why[512] = "";
    uint64_t openssl_ns, avx2_ns;
    int r;

    line[0] = '\0';
    if (code == COMB_EXP_CODE_OPENSSL) {
        return false;
    }
    if (cap != NULL) {
        snprintf(line, line_len, "OPENSSL_ia32cap is set (%s): exp-code %s not applied", cap,
                 code == COMB_EXP_CODE_AVX2 ? "avx2" : "auto");
        return false;
    }
    if (exp_under_valgrind()) {
        snprintf(line, line_len, "OpenSSL's own choice (under valgrind)");
        return false;
    }
    if (code == COMB_EXP_CODE_AVX2) {
        snprintf(line, line_len, "OpenSSL's AVX2 code (exp-code avx2)");
        return true;
    }
    r = comb_conf_all_records(conf, exp_rsa2048_rebuild, NULL, why, sizeof(why));
    if (r == SPK_ERR_UNSUPPORTED) {
        snprintf(line, line_len, "OpenSSL's own choice (exp-code auto: not every key is RSA-2048)");
        return false;
    }
    if (r != 0) {
        snprintf(line, line_len, "OpenSSL's own choice (exp-code auto: %s)", why);
        return false;
    }
    why[0] = '\0';
    exp_measure(&openssl_ns, &avx2_ns, why, sizeof(why));
    if (avx2_ns == UINT64_MAX) {
        snprintf(line, line_len,
                 "OpenSSL's own choice (exp-code auto: cannot measure its AVX2 code: %s)", why);
        return false;
    }
    if (!exp_avx2_pays(openssl_ns, avx2_ns)) {
        snprintf(line, line_len,
                 "OpenSSL's own choice (exp-code auto: %" PRIu64
                 " us a pair of 1024-bit halves, its AVX2 code %" PRIu64 " us)",
                 openssl_ns / 1000, avx2_ns / 1000);
        return false;
    }
    snprintf(line, line_len,
             "OpenSSL's AVX2 code (exp-code auto: %" PRIu64
             " us a pair of 1024-bit halves, against %" PRIu64 " us with its own choice)",
             avx2_ns / 1000, openssl_ns / 1000);
    return true;
}

void comb_cli_exp_settle(const char *config_path, char *argv[])
{
    const char *chosen = getenv(EXP_CHOSEN_ENV);
    const char *cap = getenv("OPENSSL_ia32cap");
    struct comb_conf conf;
    char why[512] = "";
    char line[256];
    bool avx2;

    if (chosen != NULL && cap != NULL && strcmp(cap, COMB_EXP_AVX2_MASK) == 0) {
        /* This process is the one `run` became: say what it runs, once. */
        spk_log("combiner", "RSA exponentiation: %s", chosen);
        (void)unsetenv(EXP_CHOSEN_ENV);
        return;
    }
    (void)unsetenv(EXP_CHOSEN_ENV);
    /* A file that does not load is reported by `run` itself, next. */
    if (comb_conf_load(&conf, config_path, NULL, NULL, why, sizeof(why)) != 0) {
        return;
    }
    avx2 = exp_decide(&conf, line, sizeof(line));
    comb_conf_cleanup(&conf);
    if (!avx2) {
        if (line[0] != '\0') {
            spk_log("combiner", "RSA exponentiation: %s", line);
        }
        return;
    }
    if (setenv("OPENSSL_ia32cap", COMB_EXP_AVX2_MASK, 1) == 0 &&
        setenv(EXP_CHOSEN_ENV, line, 1) == 0) {
        execv("/proc/self/exe", argv);
    }
    spk_log("combiner", "RSA exponentiation: OpenSSL's own choice (cannot run itself again: %s)",
            strerror(errno));
    (void)unsetenv("OPENSSL_ia32cap");
    (void)unsetenv(EXP_CHOSEN_ENV);
}

void comb_cli_exp_describe(const struct comb_conf *conf, char *out, size_t cap)
{
    char line[256];

    (void)exp_decide(conf, line, sizeof(line));
    snprintf(out, cap, "%s", line[0] != '\0' ? line : "OpenSSL's own choice (exp-code openssl)");
}

static void probe_usage(FILE *to)
{
    fprintf(to,
            "Usage: combiner probe-exp [--self]\n"
            "\n"
            "Times the two constant-time exponentiations of an RSA-2048 private-key\n"
            "operation (its 1024-bit CRT halves, on one thread) with OpenSSL's own choice of\n"
            "code for this CPU and with its AVX2 code (OPENSSL_ia32cap=" COMB_EXP_AVX2_MASK
            ", in a\n"
            "second process), the fastest of %u each, taken one in this process then one in\n"
            "the other, both held to one CPU, and says which one `combiner run` takes with\n"
            "exp-code auto for a file whose keys are all RSA-2048 (it measures the same\n"
            "way). Touches no key. With OPENSSL_ia32cap already set, times only that.\n"
            "\n"
            "  --self   for each line read on standard input, time one pair on this\n"
            "           process's code and print its nanoseconds on a line (what the\n"
            "           second process does)\n",
            EXP_PROBE_RUNS);
}

/* probe_self: one pair timed per line of input, until its end. */
static int probe_self(void)
{
    char line[64];

    while (fgets(line, sizeof(line), stdin) != NULL) {
        uint64_t ns = exp_time_one_ns();

        if (ns == UINT64_MAX) {
            return comb_cli_fail("probe-exp", "cannot time OpenSSL's exponentiation");
        }
        if (printf("%" PRIu64 "\n", ns) < 0 || fflush(stdout) != 0) {
            return COMB_CLI_FAIL;
        }
    }
    return COMB_CLI_OK;
}

int comb_cmd_probe_exp(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"self", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "probe-exp";
    const char *cap = getenv("OPENSSL_ia32cap");
    bool self = false;
    char why[256] = "";
    uint64_t own, avx2;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            self = true;
            break;
        case 'h':
            probe_usage(stdout);
            return COMB_CLI_OK;
        default:
            return comb_cli_bad_option(cmd, ch, argv);
        }
    }
    if (optind != argc) {
        return comb_cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (self) {
        return probe_self();
    }
    if (cap != NULL) {
        /* Only this process's code to time. */
        if ((own = comb_rsa_time_ns(1024, true, EXP_PROBE_RUNS)) == UINT64_MAX) {
            return comb_cli_fail(cmd, "cannot time OpenSSL's exponentiation");
        }
        printf("OPENSSL_ia32cap is set (%s): `combiner run` leaves it as it is.\n"
               "  this environment  %" PRIu64 " us a pair of 1024-bit halves\n",
               cap, own / 1000);
        return COMB_CLI_OK;
    }
    exp_measure(&own, &avx2, why, sizeof(why));
    if (own == UINT64_MAX || avx2 == UINT64_MAX) {
        return comb_cli_fail(cmd, "cannot time OpenSSL's exponentiation%s%s",
                             why[0] != '\0' ? ": " : "", why);
    }
    printf("A pair of 1024-bit constant-time exponentiations (RSA-2048's CRT halves), the\n"
           "fastest of %u each, taken in turns on one CPU:\n"
           "  openssl  %6" PRIu64 " us  OpenSSL's own choice for this CPU\n"
           "  avx2     %6" PRIu64 " us  its AVX2 code (OPENSSL_ia32cap=" COMB_EXP_AVX2_MASK ")\n"
           "exp-code auto runs: %s (when every key of the file is RSA-2048)\n",
           EXP_PROBE_RUNS, own / 1000, avx2 / 1000, exp_avx2_pays(own, avx2) ? "avx2" : "openssl");
    return COMB_CLI_OK;
}
