/*
 * comb_conf_open.c: building a combiner from a loaded configuration: its
 * keys, its local shares (files and directories expanded, each sorted) and
 * one remote source per holder.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/comb_config.h"
#include "combiner/comb_private.h"
#include "split/split.h"

/* A list of file paths (directories expanded, each sorted), OPENSSL_strdup'd. */
struct conf_files {
    char **paths;
    size_t num;
};

static int conf_files_add(struct conf_files *fl, const char *path)
{
    char **n;

    if (fl->num >= COMB_CONF_KEYS_MAX) {
        return SPK_ERR_INVALID_ARG;
    }
    if (fl->paths == NULL || fl->num == comb_conf_cap(fl->num)) {
        if ((n = OPENSSL_realloc(fl->paths, comb_conf_cap(fl->num + 1) * sizeof(*n))) == NULL) {
            return SPK_ERR_NOMEM;
        }
        fl->paths = n;
    }
    if ((fl->paths[fl->num] = OPENSSL_strdup(path)) == NULL) {
        return SPK_ERR_NOMEM;
    }
    fl->num++;
    return 0;
}

static void conf_files_free(struct conf_files *fl)
{
    for (size_t i = 0; i < fl->num; i++) {
        OPENSSL_free(fl->paths[i]);
    }
    OPENSSL_free(fl->paths);
    fl->paths = NULL;
    fl->num = 0;
}

static int conf_path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool conf_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

/*
 * conf_expand adds |path| to |fl|, or, when it is a directory, each entry
 * whose name ends in |suffix|, in name order.
 */
static int conf_expand(struct conf_files *fl, const char *path, const char *suffix, char *why,
                       size_t why_len)
{
    DIR *d;
    struct dirent *de;
    char full[COMB_CONF_PATH_MAX];
    size_t first = fl->num;
    int r = 0;

    d = opendir(path);
    if (d == NULL) {
        if (errno == ENOTDIR || errno == ENOENT) {
            /* A file (a missing one is reported when it is read). */
            return conf_files_add(fl, path);
        }
        comb_conf_why(why, why_len, "cannot open '%s': %s", path, strerror(errno));
        return SPK_ERR_IO;
    }
    while ((de = readdir(d)) != NULL) {
        int n;

        if (de->d_name[0] == '.' || !conf_ends_with(de->d_name, suffix)) {
            continue;
        }
        n = snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(full)) {
            continue;
        }
        if ((r = conf_files_add(fl, full)) != 0) {
            comb_conf_why(why, why_len, "too many files in '%s'", path);
            break;
        }
    }
    closedir(d);
    if (r == 0 && fl->num > first) {
        qsort(fl->paths + first, fl->num - first, sizeof(*fl->paths), conf_path_cmp);
    }
    return r;
}

/* conf_open_file_shares adds one in-process file source per file share of
 * |conf|, after its keys (conf->keys) were added to |c|. */
static int conf_open_file_shares(struct comb_ctx *c, const struct comb_conf *conf, char *why,
                                 size_t why_len)
{
    struct proto_share_file *sf = NULL;
    struct proto_holder_secret *hk = NULL;
    struct comb_file_source *fs = NULL;
    int r = 0;

    if (conf->num_file_shares == 0) {
        return 0;
    }
    if ((sf = OPENSSL_zalloc(sizeof(*sf))) == NULL) {
        comb_conf_why(why, why_len, "out of memory");
        return SPK_ERR_NOMEM;
    }
    for (size_t i = 0; i < conf->num_file_shares; i++) {
        const struct comb_conf_file_share *fsh = &conf->file_shares[i];

        if ((r = proto_share_file_load(sf, fsh->path, why, why_len)) != 0) {
            break;
        }
        /* A share of another key is a mistake of whoever named it, not a holder's fault. */
        if (comb_conf_find_key(conf, sf->key_id) < 0) {
            comb_conf_why(why, why_len, "share '%s' is of another key than the records given",
                          fsh->path);
            r = SPK_ERR_UNKNOWN_KEY;
            break;
        }
        if ((r = split_holder_secret_load(&hk, fsh->key_path)) != 0) {
            comb_conf_why(why, why_len, "cannot load holder key '%s': %s", fsh->key_path,
                          spk_strerror(r));
            break;
        }
        if ((fs = comb_file_source_new(hk)) == NULL) {
            comb_conf_why(why, why_len, "out of locked memory");
            r = SPK_ERR_NOMEM;
            break;
        }
        if ((r = comb_file_source_add_share(fs, sf, false)) != 0) {
            if (sf->mode == PROTO_MODE_THRESHOLD) {
                comb_conf_why(why, why_len,
                              "share '%s' is a threshold-mode key share: only the first (the "
                              "combiner's own) is used in process; name the other holders in a "
                              "config file (--config)",
                              fsh->path);
                break;
            }
            comb_conf_why(why, why_len, "share '%s' cannot be served with holder key '%s': %s",
                          fsh->path, fsh->key_path, spk_strerror(r));
            break;
        }
        r = comb_add_file_source(c, NULL, sf->holder, fs);
        fs = NULL; /* the combiner owns it now, also on failure */
        if (r != 0) {
            comb_conf_why(why, why_len, "%s", comb_last_error(c));
            break;
        }
        spk_secret_free(hk);
        hk = NULL;
    }
    comb_file_source_free(fs);
    spk_secret_free(hk);
    OPENSSL_clear_free(sf, sizeof(*sf));
    return r;
}

/* conf_expand_all: conf_expand of each of |num| paths, into one list. */
static int conf_expand_all(struct conf_files *fl, char (*paths)[COMB_CONF_PATH_MAX], size_t num,
                           const char *suffix, char *why, size_t why_len)
{
    int r;

    for (size_t i = 0; i < num; i++) {
        if ((r = conf_expand(fl, paths[i], suffix, why, why_len)) != 0) {
            return r;
        }
    }
    return 0;
}

int comb_conf_open(struct comb_ctx **out, struct comb_conf *conf, void *zmq_ctx,
                   int connect_wait_ms, char *why, size_t why_len)
{
    struct comb_config cc;
    struct comb_ctx *c = NULL;
    struct proto_holder_secret *hk = NULL;
    struct proto_record *rec = NULL;
    struct proto_share_file *shares = NULL; /* still sealed */
    bool *share_used = NULL;
    struct conf_files recs = {NULL, 0}, shs = {NULL, 0};
    uint8_t(*ids)[PROTO_KEY_ID_LEN] = NULL; /* per holder: recs.num slots */
    size_t *num_ids = NULL;
    char suffix[PROTO_NAME_MAX + 16];
    size_t i, j;
    int r = SPK_ERR_INTERNAL;

    *out = NULL;
    OPENSSL_free(conf->keys);
    conf->keys = NULL;
    conf->num_keys = 0;

    comb_config_init(&cc);
    cc.timeout_ms = conf->timeout_ms != 0 ? conf->timeout_ms : COMB_CONF_TIMEOUT_DEFAULT;
    if (conf->max_pending != 0) {
        cc.max_pending = conf->max_pending;
    }
    if (conf->max_batch != 0) {
        cc.max_batch = conf->max_batch;
    }
    cc.fanout_all = conf->fanout_all;
    cc.crt_helper = conf->crt_threads == 2;
    if ((r = split_holder_secret_load(&hk, conf->key_path)) != 0) {
        comb_conf_why(why, why_len, "cannot load the combiner's key '%s': %s", conf->key_path,
                      spk_strerror(r));
        goto out;
    }
    if ((c = comb_new(&cc)) == NULL) {
        comb_conf_why(why, why_len, "cannot set up the combiner (out of locked memory?)");
        r = SPK_ERR_NOMEM;
        goto out;
    }
    snprintf(suffix, sizeof(suffix), ".%s.share", hk->pub.name);
    if ((r = conf_expand_all(&recs, conf->record_paths, conf->num_record_paths, ".record", why,
                             why_len)) != 0 ||
        (r = conf_expand_all(&shs, conf->share_paths, conf->num_share_paths, suffix, why,
                             why_len)) != 0) {
        goto out;
    }
    if (recs.num == 0) {
        comb_conf_why(why, why_len, "no key record found under the 'record' paths");
        r = SPK_ERR_INVALID_ARG;
        goto out;
    }
    rec = OPENSSL_zalloc(sizeof(*rec));
    conf->keys = OPENSSL_zalloc(recs.num * sizeof(*conf->keys));
    if (conf->num_holders > 0) {
        ids = OPENSSL_zalloc(conf->num_holders * recs.num * sizeof(*ids));
        num_ids = OPENSSL_zalloc(conf->num_holders * sizeof(*num_ids));
    }
    if (shs.num > 0) {
        shares = OPENSSL_zalloc(shs.num * sizeof(*shares));
        share_used = OPENSSL_zalloc(shs.num * sizeof(*share_used));
    }
    if (rec == NULL || conf->keys == NULL ||
        (conf->num_holders > 0 && (ids == NULL || num_ids == NULL)) ||
        (shs.num > 0 && (shares == NULL || share_used == NULL))) {
        comb_conf_why(why, why_len, "out of memory");
        r = SPK_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < shs.num; i++) {
        if ((r = proto_share_file_load(&shares[i], shs.paths[i], why, why_len)) != 0) {
            goto out;
        }
        if (strcmp(shares[i].holder, hk->pub.name) != 0) {
            comb_conf_why(why, why_len,
                          "local share '%s' belongs to '%s', not to this combiner ('%s')",
                          shs.paths[i], shares[i].holder, hk->pub.name);
            r = SPK_ERR_WRONG_HOLDER;
            goto out;
        }
    }
    for (i = 0; i < recs.num; i++) {
        const struct proto_share_file *local = NULL;
        size_t local_at = 0;

        if ((r = proto_record_load(rec, recs.paths[i], why, why_len)) != 0) {
            goto out;
        }
        for (j = 0; j < shs.num; j++) {
            if (sodium_memcmp(shares[j].key_id, rec->key_id, PROTO_KEY_ID_LEN) != 0) {
                continue;
            }
            if (local != NULL) {
                comb_conf_why(why, why_len, "two local shares of the key of '%s': '%s' and '%s'",
                              recs.paths[i], shs.paths[local_at], shs.paths[j]);
                r = SPK_ERR_EXISTS;
                goto out;
            }
            local = &shares[j];
            local_at = j;
        }
        if ((r = comb_add_key(c, rec, local, hk)) != 0) {
            comb_conf_why(why, why_len, "record '%s'%s%s: %s", recs.paths[i],
                          local != NULL ? " with share " : "",
                          local != NULL ? shs.paths[local_at] : "",
                          comb_last_error(c)[0] != '\0' ? comb_last_error(c) : spk_strerror(r));
            goto out;
        }
        if (local != NULL) {
            share_used[local_at] = true;
        }
        /* Ask a holder only for the keys whose record names it. */
        for (size_t h = 0; h < conf->num_holders; h++) {
            for (size_t s = 0; s < rec->num_shares; s++) {
                if (strcmp(rec->shares[s].holder, conf->holders[h].name) == 0) {
                    memcpy(ids[h * recs.num + num_ids[h]++], rec->key_id, PROTO_KEY_ID_LEN);
                    break;
                }
            }
        }
        memcpy(conf->keys[conf->num_keys].key_id, rec->key_id, PROTO_KEY_ID_LEN);
        conf->keys[conf->num_keys].modulus_len = rec->modulus_len;
        conf->keys[conf->num_keys].threshold = rec->threshold;
        conf->keys[conf->num_keys].mode = rec->mode;
        conf->keys[conf->num_keys].local = local != NULL;
        conf->num_keys++;
    }
    for (j = 0; j < shs.num; j++) {
        if (!share_used[j]) {
            comb_conf_why(why, why_len, "share '%s' has no key record among the 'record' paths",
                          shs.paths[j]);
            r = SPK_ERR_UNKNOWN_KEY;
            goto out;
        }
    }
    if ((r = conf_open_file_shares(c, conf, why, why_len)) != 0) {
        goto out;
    }
    for (i = 0; i < conf->num_holders; i++) {
        const struct comb_conf_holder *h = &conf->holders[i];

        const uint8_t(*h_ids)[PROTO_KEY_ID_LEN] = (const uint8_t(*)[PROTO_KEY_ID_LEN])ids;

        if ((r = comb_add_remote_source(c, NULL, zmq_ctx, hk, h, h_ids + i * recs.num, num_ids[i],
                                        conf->share_timeout_ms != 0 ? conf->share_timeout_ms
                                                                    : cc.timeout_ms)) != 0) {
            comb_conf_why(why, why_len, "holder '%s' at %s: %s", h->name, h->endpoint,
                          comb_last_error(c)[0] != '\0' ? comb_last_error(c) : spk_strerror(r));
            goto out;
        }
    }
    if (connect_wait_ms > 0 && conf->num_holders > 0) {
        (void)comb_remote_wait_connected(c, connect_wait_ms);
    }
    *out = c;
    c = NULL;
    r = 0;
out:
    comb_free(c);
    spk_secret_free(hk);
    OPENSSL_free(rec);
    if (shares != NULL) {
        OPENSSL_clear_free(shares, shs.num * sizeof(*shares));
    }
    OPENSSL_free(share_used);
    OPENSSL_free(ids);
    OPENSSL_free(num_ids);
    conf_files_free(&recs);
    conf_files_free(&shs);
    if (r != 0) {
        OPENSSL_free(conf->keys);
        conf->keys = NULL;
        conf->num_keys = 0;
    }
    return r;
}

int comb_conf_all_records(const struct comb_conf *conf,
                          bool (*pred)(const struct proto_record *rec, void *arg), void *arg,
                          char *why, size_t why_len)
{
    struct conf_files recs = {NULL, 0};
    struct proto_record *rec = OPENSSL_zalloc(sizeof(*rec));
    int r = SPK_ERR_NOMEM;

    if (rec == NULL) {
        goto out;
    }
    if ((r = conf_expand_all(&recs, conf->record_paths, conf->num_record_paths, ".record", why,
                             why_len)) != 0) {
        goto out;
    }
    r = recs.num > 0 ? 0 : SPK_ERR_UNSUPPORTED;
    for (size_t i = 0; r == 0 && i < recs.num; i++) {
        if ((r = proto_record_load(rec, recs.paths[i], why, why_len)) == 0 && !pred(rec, arg)) {
            r = SPK_ERR_UNSUPPORTED;
        }
    }
out:
    OPENSSL_free(rec);
    conf_files_free(&recs);
    return r;
}

int comb_open_config(struct comb_ctx **out, struct comb_conf *out_conf, const char *path, char *why,
                     size_t why_len)
{
    struct comb_conf conf;
    int r;

    *out = NULL;
    if ((r = comb_conf_load(&conf, path, NULL, NULL, why, why_len)) != 0) {
        if (out_conf != NULL) {
            memset(out_conf, 0, sizeof(*out_conf));
        }
        return r;
    }
    r = comb_conf_open(out, &conf, NULL, (int)conf.timeout_ms, why, why_len);
    if (out_conf != NULL && r == 0) {
        *out_conf = conf;
    } else {
        if (out_conf != NULL) {
            memset(out_conf, 0, sizeof(*out_conf));
        }
        comb_conf_cleanup(&conf);
    }
    return r;
}
