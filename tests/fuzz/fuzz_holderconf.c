/*
 * The share-holder's --config file (sh_config_load). The parser takes only a
 * path, so each input is written to one memfd made at the first call and read
 * back through /proc/self/fd. There is no encoder: a file that loads must give
 * values in their ranges and NUL-terminated paths, and loading it over
 * options already set (as the command line does) must leave those alone.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "share-holder/share-holder.h"

#include "fuzz_memfd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_paths(const struct sh_options *opt)
{
    if (strnlen(opt->key_path, SH_PATH_MAX) == SH_PATH_MAX ||
        strnlen(opt->shares_dir, SH_PATH_MAX) == SH_PATH_MAX ||
        strnlen(opt->allow_path, SH_PATH_MAX) == SH_PATH_MAX ||
        strnlen(opt->bind, SH_PATH_MAX) == SH_PATH_MAX ||
        strnlen(opt->audit_path, SH_PATH_MAX) == SH_PATH_MAX) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sh_options opt;
    static struct sh_options cli;
    char why[512];
    int r;

    input_to_file(data, size);
    sh_options_init(&opt);
    why[0] = '\0';
    r = sh_config_load(&opt, fuzz_path, why, sizeof(why));
    if (r != 0) {
        if (why[0] == '\0') {
            abort();
        }
        return 0;
    }
    check_paths(&opt);
    if (opt.rate < 1 || opt.rate > 1000000 || opt.burst < 1 || opt.burst > 1000000) {
        abort();
    }

    /* The same file under a command line that set everything it can. */
    sh_options_init(&cli);
    memcpy(cli.key_path, "cli.key", sizeof("cli.key"));
    memcpy(cli.shares_dir, "cli-shares", sizeof("cli-shares"));
    memcpy(cli.allow_path, "cli.allow", sizeof("cli.allow"));
    memcpy(cli.bind, "tcp://127.0.0.1:1", sizeof("tcp://127.0.0.1:1"));
    memcpy(cli.audit_path, "cli.audit", sizeof("cli.audit"));
    cli.rate = 7;
    cli.burst = 9;
    cli.set_rate = true;
    cli.set_burst = true;
    if (sh_config_load(&cli, fuzz_path, why, sizeof(why)) != 0 ||
        strcmp(cli.key_path, "cli.key") != 0 || strcmp(cli.shares_dir, "cli-shares") != 0 ||
        strcmp(cli.allow_path, "cli.allow") != 0 || strcmp(cli.bind, "tcp://127.0.0.1:1") != 0 ||
        strcmp(cli.audit_path, "cli.audit") != 0 || cli.rate != 7 || cli.burst != 9 ||
        cli.allow_unlocked != opt.allow_unlocked) {
        abort();
    }
    return 0;
}
