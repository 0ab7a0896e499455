#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "share-holder/internal.h"
#include "split/split.h"

/*
 * Loading the shares a holder serves. Each opened y lives in its own
 * spk_secret_new buffer, noaccess except while responses are being sealed
 * (and SH_SHARE_IDLE_MS after; see internal.h).
 */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* list_shares: the sorted names of *.share files in |dir| (caller frees). */
static int list_shares(const char *dir, char ***out, size_t *out_num)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t num = 0;
    int r = SPK_ERR_INTERNAL;

    if (d == NULL) {
        return SPK_ERR_IO;
    }
    while ((de = readdir(d)) != NULL) {
        char **grown;

        if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".share")) {
            continue;
        }
        grown = realloc(names, (num + 1) * sizeof(*names));
        if (grown == NULL) {
            r = SPK_ERR_NOMEM;
            goto out;
        }
        names = grown;
        names[num] = strdup(de->d_name);
        if (names[num] == NULL) {
            r = SPK_ERR_NOMEM;
            goto out;
        }
        num++;
    }
    if (num > 0) {
        qsort(names, num, sizeof(*names), name_cmp);
    }
    *out = names;
    *out_num = num;
    names = NULL;
    num = 0;
    r = 0;
out:
    for (size_t i = 0; i < num; i++) {
        free(names[i]);
    }
    free(names);
    closedir(d);
    return r;
}

/* record_check: when DIR/KEYID.record exists, the share must be one of it. */
static int record_check(const char *dir, const struct sh_share *sh, const char *holder, char *why,
                        size_t why_len)
{
    char path[SH_PATH_MAX];
    char hex[2 * PROTO_KEY_ID_LEN + 1];
    struct proto_record *rec = NULL;
    struct split_field f;
    struct split_opened_share os;
    int r = SPK_ERR_INTERNAL;

    sodium_bin2hex(hex, sizeof(hex), sh->key_id, PROTO_KEY_ID_LEN);
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.record", dir, hex) >= sizeof(path)) {
        return SPK_ERR_INVALID_ARG;
    }
    rec = calloc(1, sizeof(*rec));
    if (rec == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    if ((r = proto_record_load(rec, path, why, why_len)) != 0) {
        if (r == SPK_ERR_IO) {
            why[0] = '\0';
            r = 0; /* no record: nothing to check against */
        }
        goto out;
    }
    if ((r = split_field_init(&f, rec->field_bits)) != 0) {
        goto out;
    }
    if (f.bits != sh->field_bits || split_tuple_len(&f) != sh->y_len) {
        (void)snprintf(why, why_len, "its field differs from the record's");
        r = SPK_ERR_MIXED_SPLIT;
        goto out;
    }
    memset(&os, 0, sizeof(os));
    memcpy(os.key_id, sh->key_id, sizeof(os.key_id));
    memcpy(os.split_id, sh->split_id, sizeof(os.split_id));
    os.index = sh->index;
    os.holder = holder;
    os.y = sh->y;
    if ((r = split_share_check(rec, &f, &os)) != 0) {
        (void)snprintf(why, why_len, "it does not match the record (%s)", spk_strerror(r));
        goto out;
    }
    r = 0;
out:
    free(rec);
    return r;
}

/* load_one: open DIR/NAME; 0 and *loaded, or 0 and !*loaded with a reason
 * reported, or SPK_ERR_NOMEM. */
static int load_one(struct sh_share *sh, bool *loaded, const char *dir, const char *name,
                    const struct proto_holder_secret *key, FILE *report)
{
    char path[SH_PATH_MAX];
    char why[PROTO_PATH_WHY_MAX] = "";
    struct proto_share_file *sf = NULL;
    struct split_field f;
    int r = SPK_ERR_INTERNAL;

    *loaded = false;
    memset(sh, 0, sizeof(*sh));
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
        (void)snprintf(why, sizeof(why), "path too long");
        r = 0;
        goto out;
    }
    sf = calloc(1, sizeof(*sf));
    if (sf == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    if (proto_share_file_load(sf, path, why, sizeof(why)) != 0) {
        r = 0;
        goto out;
    }
    if (strcmp(sf->holder, key->pub.name) != 0) {
        (void)snprintf(why, sizeof(why), "addressed to holder %s, not %s", sf->holder,
                       key->pub.name);
        r = 0;
        goto out;
    }
    if (sf->mode == PROTO_MODE_THRESHOLD) {
        r = sh_sigshare_load(sh, sf, dir, key, why, sizeof(why));
        *loaded = r == 0;
        r = r == SPK_ERR_NOMEM ? r : 0;
        goto out;
    }
    if (split_field_init(&f, sf->field_bits) != 0) {
        (void)snprintf(why, sizeof(why), "unknown field 2^%u-1", sf->field_bits);
        r = 0;
        goto out;
    }
    sh->y_len = split_tuple_len(&f);
    sh->y = spk_secret_new(sh->y_len);
    if (sh->y == NULL) {
        r = SPK_ERR_NOMEM;
        goto out;
    }
    if ((r = split_share_open(sh->y, sh->y_len, sf, key)) != 0) {
        (void)snprintf(why, sizeof(why), "%s: %s",
                       r == SPK_ERR_MALFORMED ? "a value of the share is not below the field's M"
                                              : "cannot open it",
                       spk_strerror(r));
        r = 0;
        goto out;
    }
    memcpy(sh->key_id, sf->key_id, sizeof(sh->key_id));
    memcpy(sh->split_id, sf->split_id, sizeof(sh->split_id));
    sh->index = sf->index;
    sh->field_bits = sf->field_bits;
    sh->threshold = sf->threshold;
    sh->num_shares = sf->num_shares;
    if (record_check(dir, sh, key->pub.name, why, sizeof(why)) != 0) {
        r = 0;
        goto out;
    }
    if (spk_secret_noaccess(sh->y) != 0) {
        r = SPK_ERR_INTERNAL;
        goto out;
    }
    *loaded = true;
    r = 0;
out:
    if (!*loaded) {
        spk_secret_free(sh->y);
        sh->y = NULL;
        if (why[0] != '\0' && report != NULL) {
            fprintf(report, "share-holder: skipping %s: %s\n", name, why);
        }
    }
    free(sf);
    return r;
}

int sh_store_load(struct sh_store *out, const char *dir, const struct proto_holder_secret *key,
                  FILE *report)
{
    char **names = NULL;
    size_t num_names = 0;
    int r = SPK_ERR_INTERNAL;

    memset(out, 0, sizeof(*out));
    if ((r = list_shares(dir, &names, &num_names)) != 0) {
        if (report != NULL) {
            fprintf(report, "share-holder: cannot read the share directory %s\n", dir);
        }
        goto out;
    }
    if (num_names > 0) {
        out->shares = calloc(num_names, sizeof(*out->shares));
        if (out->shares == NULL) {
            r = SPK_ERR_NOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < num_names; i++) {
        struct sh_share *sh = &out->shares[out->num_shares];
        bool loaded = false;

        if ((r = load_one(sh, &loaded, dir, names[i], key, report)) != 0) {
            goto out;
        }
        if (!loaded) {
            out->num_skipped++;
            continue;
        }
        if (sh_store_find(out, sh->key_id) != NULL) {
            if (report != NULL) {
                fprintf(report, "share-holder: skipping %s: another share of this key came first\n",
                        names[i]);
            }
            spk_secret_free(sh->y);
            split_tss_signer_free(sh->signer);
            memset(sh, 0, sizeof(*sh));
            out->num_skipped++;
            continue;
        }
        out->num_shares++;
    }
    r = out->num_shares > 0 ? 0 : SPK_ERR_UNKNOWN_KEY;
out:
    for (size_t i = 0; i < num_names; i++) {
        free(names[i]);
    }
    free(names);
    if (r != 0) {
        sh_store_cleanup(out);
    }
    return r;
}

void sh_store_cleanup(struct sh_store *store)
{
    for (size_t i = 0; i < store->num_shares; i++) {
        spk_secret_free(store->shares[i].y);
        split_tss_signer_free(store->shares[i].signer);
    }
    free(store->shares);
    memset(store, 0, sizeof(*store));
}

struct sh_share *sh_store_find(const struct sh_store *store, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    for (size_t i = 0; i < store->num_shares; i++) {
        if (sodium_memcmp(store->shares[i].key_id, key_id, PROTO_KEY_ID_LEN) == 0) {
            return &store->shares[i];
        }
    }
    return NULL;
}

int sh_store_share_open(struct sh_store *store, struct sh_share *share, uint64_t now_ms)
{
    if (!share->readable) {
        if (spk_secret_readwrite(share->y) != 0) {
            return SPK_ERR_INTERNAL;
        }
        share->readable = true;
        if (store->num_open++ == 0) {
            store->opened_ms = now_ms;
        }
    }
    store->used_ms = now_ms;
    return 0;
}

long sh_store_close_in_ms(const struct sh_store *store, uint64_t now_ms)
{
    uint64_t idle_end = store->used_ms + SH_SHARE_IDLE_MS;
    uint64_t open_end = store->opened_ms + SH_SHARE_OPEN_MAX_MS;
    uint64_t end = idle_end < open_end ? idle_end : open_end;

    if (store->num_open == 0) {
        return -1;
    }
    return end <= now_ms ? 0 : (long)(end - now_ms);
}

int sh_store_close(struct sh_store *store)
{
    int r = 0;

    for (size_t i = 0; i < store->num_shares && store->num_open > 0; i++) {
        struct sh_share *sh = &store->shares[i];

        if (!sh->readable) {
            continue;
        }
        if (spk_secret_noaccess(sh->y) != 0) {
            r = SPK_ERR_INTERNAL;
            continue;
        }
        sh->readable = false;
        store->num_open--;
    }
    return r;
}
