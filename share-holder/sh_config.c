#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "share-holder/internal.h"
#include "base/base.h"

/* The --config file: "OPTION VALUE" lines with the long option names. */

#define CONFIG_MAX (64 * 1024)

void sh_options_init(struct sh_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->rate = SH_RATE_DEFAULT;
    opt->burst = SH_BURST_DEFAULT;
}

static bool set_path(char *dst, const struct proto_rd *value)
{
    struct proto_rd v = *value;
    size_t n = proto_rd_len(value);
    char tmp[SH_PATH_MAX];

    if (n == 0 || n >= SH_PATH_MAX || !proto_rd_copy(&v, (uint8_t *)tmp, n)) {
        return false;
    }
    tmp[n] = '\0';
    if (strlen(tmp) != n) {
        return false;
    }
    if (dst[0] == '\0') {
        memcpy(dst, tmp, n + 1);
    }
    return true;
}

int sh_config_load(struct sh_options *opt, const char *path, char *why, size_t why_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct proto_rd rd;
    struct proto_rd line;
    unsigned lineno = 0;
    int r;

    if ((r = spk_file_read(path, CONFIG_MAX, &buf, &len)) != 0) {
        (void)snprintf(why, why_len, "cannot read %s: %s", path, spk_strerror(r));
        return r;
    }
    proto_rd_init(&rd, buf, len);
    r = SPK_ERR_MALFORMED;
    while (proto_rd_len(&rd) > 0) {
        struct proto_rd key;
        struct proto_rd value;
        struct proto_rd first;
        uint8_t ch = 0;
        uint32_t num = 0;
        bool ok;

        lineno++;
        if (!proto_rd_line(&rd, &line)) {
            (void)snprintf(why, why_len, "%s: line %u: no newline, or a CR or NUL", path, lineno);
            goto out;
        }
        first = line;
        if (proto_rd_len(&line) == 0 || (proto_rd_u8(&first, &ch) && ch == '#')) {
            continue;
        }
        if (!proto_rd_word(&line, &key) || !proto_rd_sub(&line, &value, proto_rd_len(&line))) {
            (void)snprintf(why, why_len, "%s: line %u: want \"OPTION VALUE\"", path, lineno);
            goto out;
        }
        if (proto_rd_equals(&key, "key")) {
            ok = set_path(opt->key_path, &value);
        } else if (proto_rd_equals(&key, "shares")) {
            ok = set_path(opt->shares_dir, &value);
        } else if (proto_rd_equals(&key, "allow")) {
            ok = set_path(opt->allow_path, &value);
        } else if (proto_rd_equals(&key, "bind")) {
            ok = set_path(opt->bind, &value);
        } else if (proto_rd_equals(&key, "audit-log")) {
            ok = set_path(opt->audit_path, &value);
        } else if (proto_rd_equals(&key, "metrics")) {
            ok = set_path(opt->metrics, &value);
        } else if (proto_rd_equals(&key, "rate")) {
            ok = proto_dec_decode(&value, 1, 1000000, &num);
            if (ok && !opt->set_rate) {
                opt->rate = num;
            }
        } else if (proto_rd_equals(&key, "burst")) {
            ok = proto_dec_decode(&value, 1, 1000000, &num);
            if (ok && !opt->set_burst) {
                opt->burst = num;
            }
        } else if (proto_rd_equals(&key, "allow-unlocked")) {
            ok = proto_rd_equals(&value, "yes") || proto_rd_equals(&value, "no");
            if (proto_rd_equals(&value, "yes")) {
                opt->allow_unlocked = true;
            }
        } else {
            (void)snprintf(why, why_len, "%s: line %u: unknown option", path, lineno);
            goto out;
        }
        if (!ok) {
            (void)snprintf(why, why_len, "%s: line %u: bad value", path, lineno);
            goto out;
        }
    }
    r = 0;
out:
    spk_file_free(buf, len);
    return r;
}
