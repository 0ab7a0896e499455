/*
 * The combiner's configuration text (comb_conf_parse), parsed against a base
 * directory that does not exist: the parser is pure and must not need it.
 * There is no encoder, so a text that parses is checked against what the
 * format promises (a key and at least one record, bounded counts, resolved
 * NUL-terminated paths, unique holder names, each holder with either its key
 * or a NAME.pub path), and a refused one must leave |out| zeroed. Unknown
 * options go to a hook: "x-extra" is taken, "refuse" fails with a reason,
 * anything else is unknown. The daemon's options (listen, client, ...) are
 * the parser's own and are checked like the rest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "combiner/comb_config.h"

#define FUZZ_BASE "/nonexistent-spk-fuzz-dir"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_extra(void *arg, const char *option, const char *value, char *why, size_t why_len)
{
    unsigned *calls = arg;

    (*calls)++;
    if (strlen(value) > COMB_CONF_PATH_MAX + 512) {
        abort();
    }
    if (strcmp(option, "x-extra") == 0) {
        return 0;
    }
    if (strcmp(option, "refuse") == 0) {
        (void)snprintf(why, why_len, "refused by the hook");
        return SPK_ERR_INVALID_ARG;
    }
    return SPK_ERR_UNSUPPORTED;
}

static void check_path(const char *path)
{
    size_t n = strnlen(path, COMB_CONF_PATH_MAX);

    if (n == 0 || n == COMB_CONF_PATH_MAX) {
        abort();
    }
    /* relative paths were resolved against the base */
    if (path[0] != '/') {
        abort();
    }
}

static void check_conf(const struct comb_conf *conf)
{
    check_path(conf->key_path);
    if (conf->num_record_paths == 0 || conf->num_record_paths > COMB_CONF_ENTRIES_MAX ||
        conf->num_share_paths > COMB_CONF_ENTRIES_MAX ||
        conf->num_holders > COMB_CONF_ENTRIES_MAX) {
        abort();
    }
    if (conf->timeout_ms < 1 || conf->timeout_ms > COMB_CONF_TIMEOUT_MAX || conf->max_batch > 64 ||
        conf->keys != NULL || conf->num_keys != 0) {
        abort();
    }
    for (size_t i = 0; i < conf->num_record_paths; i++) {
        check_path(conf->record_paths[i]);
    }
    for (size_t i = 0; i < conf->num_share_paths; i++) {
        check_path(conf->share_paths[i]);
    }
    for (size_t i = 0; i < conf->num_holders; i++) {
        const struct comb_conf_holder *h = &conf->holders[i];

        if (!proto_name_str_valid(h->name) ||
            strnlen(h->endpoint, COMB_CONF_ENDPOINT_MAX) == COMB_CONF_ENDPOINT_MAX) {
            abort();
        }
        if (h->have_pk) {
            if (h->pub_path[0] != '\0') {
                abort();
            }
        } else {
            check_path(h->pub_path);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(conf->holders[j].name, h->name) == 0) {
                abort();
            }
        }
    }
    if (conf->num_clients > COMB_CONF_ENTRIES_MAX ||
        (conf->listen[0] != '\0' && strncmp(conf->listen, "ipc://", 6) != 0 &&
         strncmp(conf->listen, "tcp://", 6) != 0 && !spk_endpoint_is_unix(conf->listen))) {
        abort();
    }
    for (size_t i = 0; i < conf->num_clients; i++) {
        const struct comb_conf_client *cl = &conf->clients[i];

        /* every client may ask for something, and only for real operations */
        if (!proto_name_str_valid(cl->name) || cl->ops == 0 || (cl->ops & 1u) != 0 ||
            comb_conf_find_client(conf, cl->name) != cl) {
            abort();
        }
        for (int op = 1; op < 64; op++) {
            if ((cl->ops & (1ull << op)) != 0 && !comb_alg_valid(op)) {
                abort();
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct comb_conf zero;
    static struct comb_conf conf;
    char why[COMB_CONF_WHY_MAX];
    unsigned calls = 0;
    int r;

    r = comb_conf_parse(&conf, data, size, FUZZ_BASE, fuzz_extra, &calls, why, sizeof(why));
    if (r != 0) {
        if (memcmp(&conf, &zero, sizeof(conf)) != 0 || why[0] == '\0') {
            abort();
        }
        return 0;
    }
    check_conf(&conf);
    comb_conf_cleanup(&conf);
    if (memcmp(&conf, &zero, sizeof(conf)) != 0) {
        abort();
    }

    /* Without a hook the same text parses only if no option went to it. */
    r = comb_conf_parse(&conf, data, size, NULL, NULL, NULL, why, sizeof(why));
    if ((r == 0) != (calls == 0)) {
        abort();
    }
    comb_conf_cleanup(&conf);
    return 0;
}
