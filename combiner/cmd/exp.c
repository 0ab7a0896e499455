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
 * (what `run` and `probe-exp` start with the other setting) prints this
 * process's time alone.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "combiner/cmd/cmd.h"
#include "combiner/comb_config.h"

extern char **environ;

/* Set by `run` for the process it becomes: what it chose, for its log. */
#define EXP_CHOSEN_ENV "SPK_COMBINER_EXP_CODE"
#define EXP_PROBE_RUNS 6u  /* per turn, in each process */
#define EXP_PROBE_TURNS 3u /* turns of this process, then the other */
#define EXP_PROBE_WAIT_MS 20000

/* exp_probe_self_ns: this process's time for a pair of 1024-bit halves. */
static uint64_t exp_probe_self_ns(void)
{
    return comb_rsa_time_ns(1024, true, EXP_PROBE_RUNS);
}

/*
 * exp_probe_avx2_ns runs `combiner probe-exp --self` with OPENSSL_ia32cap
 * masked and reads its time; UINT64_MAX if it could not tell.
 */
static uint64_t exp_probe_avx2_ns(char *why, size_t why_len)
{
    char arg0[] = "combiner", arg1[] = "probe-exp", arg2[] = "--self";
    char *const argv[] = {arg0, arg1, arg2, NULL};
    posix_spawn_file_actions_t fa;
    char buf[32] = "";
    size_t got = 0;
    int fds[2];
    pid_t pid = -1;
    int status = 0;
    uint64_t ns = UINT64_MAX;
    int r;

    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(why, why_len, "pipe: %s", strerror(errno));
        return UINT64_MAX;
    }
    if (posix_spawn_file_actions_init(&fa) != 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(why, why_len, "out of memory");
        return UINT64_MAX;
    }
    (void)posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    if (setenv("OPENSSL_ia32cap", COMB_EXP_AVX2_MASK, 1) != 0) {
        r = errno;
    } else {
        r = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
        (void)unsetenv("OPENSSL_ia32cap");
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (r != 0) {
        close(fds[0]);
        snprintf(why, why_len, "cannot start /proc/self/exe: %s", strerror(r));
        return UINT64_MAX;
    }
    for (;;) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        ssize_t n;

        if (poll(&pfd, 1, EXP_PROBE_WAIT_MS) <= 0) {
            snprintf(why, why_len, "the measuring process did not answer");
            kill(pid, SIGKILL);
            break;
        }
        n = read(fds[0], buf + got, sizeof(buf) - 1 - got);
        if (n <= 0 || (got += (size_t)n) == sizeof(buf) - 1) {
            break;
        }
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    buf[got] = '\0';
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        v = strtoull(buf, &end, 10);
        if (errno == 0 && end != buf && *end == '\n' && v > 0) {
            ns = (uint64_t)v;
        }
    }
    if (ns == UINT64_MAX && why[0] == '\0') {
        snprintf(why, why_len, "the measuring process failed");
    }
    return ns;
}

/*
 * exp_measure: the fastest pair of halves with OpenSSL's own code (this
 * process) and with its AVX2 code (a second one), taken in turns, this
 * process then the other, EXP_PROBE_TURNS times: on a shared host one
 * process's runs can all fall in a busy moment (one measurement taken at
 * once had the two codes 2% apart, where they are about 20% apart), the
 * fastest over turns spread out in time much less often.
 */
static void exp_measure(uint64_t *openssl_ns, uint64_t *avx2_ns, char *why, size_t why_len)
{
    *openssl_ns = *avx2_ns = UINT64_MAX;
    for (unsigned i = 0; i < EXP_PROBE_TURNS; i++) {
        uint64_t own = exp_probe_self_ns(), other = exp_probe_avx2_ns(why, why_len);

        if (other == UINT64_MAX) {
            *avx2_ns = UINT64_MAX;
            return;
        }
        *openssl_ns = own < *openssl_ns ? own : *openssl_ns;
        *avx2_ns = other < *avx2_ns ? other : *avx2_ns;
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
 * word). Measures (exp_probe_*) for auto.
 */
static bool exp_decide(const struct comb_conf *conf, char *line, size_t line_len)
{
    const char *cap = getenv("OPENSSL_ia32cap");
    enum comb_exp_code code = conf->exp_code;
    char why[512] = "";
    uint64_t openssl_ns, avx2_ns;

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
    if (comb_conf_all_records(conf, exp_rsa2048_rebuild, NULL, why, sizeof(why)) != 0) {
        snprintf(line, line_len, "OpenSSL's own choice (exp-code auto: not every key is RSA-2048)");
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
            "second process), the fastest of %u each in %u turns of one process then the\n"
            "other, and says which one `combiner run` takes with exp-code auto for a file\n"
            "whose keys are all RSA-2048 (it measures the same way). Touches no key.\n"
            "\n"
            "  --self   print only this process's time in nanoseconds, the fastest of %u\n"
            "           (what the second process does in each turn)\n",
            EXP_PROBE_RUNS * EXP_PROBE_TURNS, EXP_PROBE_TURNS, EXP_PROBE_RUNS);
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
    if (self || cap != NULL) {
        /* Only this process's code to time. */
        if ((own = exp_probe_self_ns()) == UINT64_MAX) {
            return comb_cli_fail(cmd, "cannot time OpenSSL's exponentiation");
        }
        if (self) {
            printf("%" PRIu64 "\n", own);
            return fflush(stdout) == 0 ? COMB_CLI_OK : COMB_CLI_FAIL;
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
           "fastest of %u in %u turns:\n"
           "  openssl  %6" PRIu64 " us  OpenSSL's own choice for this CPU\n"
           "  avx2     %6" PRIu64 " us  its AVX2 code (OPENSSL_ia32cap=" COMB_EXP_AVX2_MASK ")\n"
           "exp-code auto runs: %s (when every key of the file is RSA-2048)\n",
           EXP_PROBE_RUNS * EXP_PROBE_TURNS, EXP_PROBE_TURNS, own / 1000, avx2 / 1000,
           exp_avx2_pays(own, avx2) ? "avx2" : "openssl");
    return COMB_CLI_OK;
}
