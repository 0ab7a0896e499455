/*
 * comb_config.c: the combiner's configuration file (proto/PROTOCOL.md
 * section 8): parsing through the bounded reader and loading the holder
 * public keys it names. comb_conf_open.c builds a combiner from it.
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/comb_config.h"
#include "combiner/comb_private.h"
#include "proto/spk_metrics.h"
#include "split/split.h"

#define CONF_LINE_MAX (COMB_CONF_PATH_MAX + 512)
#define CONF_WORDS_MAX 4
#define CONF_MAX_PENDING_MAX 1000000
#define CONF_MAX_BATCH_MAX 64

__attribute__((format(printf, 3, 4))) void comb_conf_why(char *why, size_t why_len, const char *fmt,
                                                         ...)
{
    va_list ap;

    if (why == NULL || why_len == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

void comb_conf_cleanup(struct comb_conf *conf)
{
    if (conf == NULL) {
        return;
    }
    OPENSSL_free(conf->record_paths);
    OPENSSL_free(conf->share_paths);
    OPENSSL_free(conf->holders);
    OPENSSL_free(conf->keys);
    OPENSSL_free(conf->clients);
    OPENSSL_free(conf->file_shares);
    memset(conf, 0, sizeof(*conf));
}

const struct comb_conf_client *comb_conf_find_client(const struct comb_conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->num_clients; i++) {
        if (strcmp(conf->clients[i].name, name) == 0) {
            return &conf->clients[i];
        }
    }
    return NULL;
}

long comb_conf_find_key(const struct comb_conf *conf, const uint8_t key_id[PROTO_KEY_ID_LEN])
{
    for (size_t i = 0; i < conf->num_keys; i++) {
        if (sodium_memcmp(conf->keys[i].key_id, key_id, PROTO_KEY_ID_LEN) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* ---- parsing ---------------------------------------------------------------- */

struct conf_parser {
    struct comb_conf *out;
    const char *base_dir;
    comb_conf_extra_fn extra;
    void *extra_arg;
    char *why;
    size_t why_len;
    unsigned line_no;
    bool seen_magic, seen_key, seen_timeout, seen_pending, seen_batch, seen_share_timeout;
    bool seen_listen, seen_metrics, seen_unlocked, seen_allow, seen_group, seen_fanout;
    bool seen_crt_threads, seen_exp_code;
};

/* conf_word_str copies |word| into |out| (|cap| bytes with the NUL). */
static bool conf_word_str(const struct proto_rd *word, char *out, size_t cap)
{
    struct proto_rd rd = *word;
    size_t n = proto_rd_len(word);

    if (n + 1 > cap) {
        return false;
    }
    if (!proto_rd_copy(&rd, (uint8_t *)out, n)) {
        return false;
    }
    out[n] = '\0';
    return true;
}

/* conf_path resolves |word| against the base directory into |out|. */
static int conf_path(struct conf_parser *p, const struct proto_rd *word,
                     char out[COMB_CONF_PATH_MAX])
{
    char path[COMB_CONF_PATH_MAX];
    int n;

    if (!conf_word_str(word, path, sizeof(path))) {
        comb_conf_why(p->why, p->why_len, "line %u: path longer than %d bytes", p->line_no,
                      COMB_CONF_PATH_MAX - 1);
        return SPK_ERR_MALFORMED;
    }
    if (path[0] == '/' || p->base_dir == NULL || p->base_dir[0] == '\0') {
        n = snprintf(out, COMB_CONF_PATH_MAX, "%s", path);
    } else {
        n = snprintf(out, COMB_CONF_PATH_MAX, "%s/%s", p->base_dir, path);
    }
    if (n < 0 || (size_t)n >= COMB_CONF_PATH_MAX) {
        comb_conf_why(p->why, p->why_len, "line %u: path longer than %d bytes", p->line_no,
                      COMB_CONF_PATH_MAX - 1);
        return SPK_ERR_MALFORMED;
    }
    return 0;
}

/* comb_conf_cap: the capacity an array of |num| elements has (grown by doubling). */
size_t comb_conf_cap(size_t num)
{
    size_t cap = 4;

    while (cap < num) {
        cap *= 2;
    }
    return cap;
}

/* conf_grow makes room for one more element in *arr of *num elements. */
static int conf_grow(struct conf_parser *p, void **arr, size_t num, size_t elem, const char *what)
{
    void *n;

    if (num >= COMB_CONF_ENTRIES_MAX) {
        comb_conf_why(p->why, p->why_len, "line %u: more than %d %s lines", p->line_no,
                      COMB_CONF_ENTRIES_MAX, what);
        return SPK_ERR_MALFORMED;
    }
    if (*arr == NULL || num == comb_conf_cap(num)) {
        if ((n = OPENSSL_realloc(*arr, comb_conf_cap(num + 1) * elem)) == NULL) {
            comb_conf_why(p->why, p->why_len, "out of memory");
            return SPK_ERR_NOMEM;
        }
        *arr = n;
    }
    memset((uint8_t *)*arr + num * elem, 0, elem);
    return 0;
}

static bool conf_endpoint_ok(const char *ep)
{
    return strncmp(ep, "tcp://", 6) == 0 || strncmp(ep, "ipc://", 6) == 0 ||
           strncmp(ep, "inproc://", 9) == 0;
}

static int conf_holder(struct conf_parser *p, const struct proto_rd *words, size_t num_words)
{
    struct comb_conf *out = p->out;
    struct comb_conf_holder *h;
    int r;

    if (num_words != 3) {
        comb_conf_why(p->why, p->why_len, "line %u: 'holder' takes NAME ENDPOINT PUBLIC-KEY",
                      p->line_no);
        return SPK_ERR_MALFORMED;
    }
    if ((r = conf_grow(p, (void **)&out->holders, out->num_holders, sizeof(*out->holders),
                       "holder")) != 0) {
        return r;
    }
    h = &out->holders[out->num_holders];
    if (!proto_name_copy(&words[0], h->name)) {
        comb_conf_why(
            p->why, p->why_len,
            "line %u: holder name must be 1-%d of A-Z a-z 0-9 . _ - not starting with '.'",
            p->line_no, PROTO_NAME_MAX);
        return SPK_ERR_MALFORMED;
    }
    for (size_t i = 0; i < out->num_holders; i++) {
        if (strcmp(out->holders[i].name, h->name) == 0) {
            comb_conf_why(p->why, p->why_len, "line %u: holder '%s' given twice", p->line_no,
                          h->name);
            return SPK_ERR_MALFORMED;
        }
    }
    if (!conf_word_str(&words[1], h->endpoint, sizeof(h->endpoint)) ||
        !conf_endpoint_ok(h->endpoint)) {
        comb_conf_why(
            p->why, p->why_len,
            "line %u: holder endpoint must be tcp://, ipc:// or inproc://, under %d bytes",
            p->line_no, COMB_CONF_ENDPOINT_MAX);
        return SPK_ERR_MALFORMED;
    }
    /* Exactly 40 characters that decode as Z85: the key itself; else a NAME.pub path. */
    if (proto_rd_len(&words[2]) == PROTO_Z85_KEY_LEN &&
        proto_z85_decode_key(&words[2], h->curve_pk)) {
        h->have_pk = true;
    } else if ((r = conf_path(p, &words[2], h->pub_path)) != 0) {
        return r;
    }
    out->num_holders++;
    return 0;
}

/* conf_once_str: an option taking one word, given at most once, into |out|. */
static int conf_once_str(struct conf_parser *p, const struct proto_rd *words, size_t num_words,
                         const char *option, bool *seen, char *out, size_t cap)
{
    if (*seen) {
        comb_conf_why(p->why, p->why_len, "line %u: '%s' given twice", p->line_no, option);
        return SPK_ERR_MALFORMED;
    }
    if (num_words != 1 || !conf_word_str(&words[0], out, cap) || out[0] == '\0') {
        comb_conf_why(p->why, p->why_len, "line %u: '%s' takes one word under %zu bytes",
                      p->line_no, option, cap);
        return SPK_ERR_MALFORMED;
    }
    *seen = true;
    return 0;
}

/*
 * conf_ops parses OPS: comma-separated "tls" (COMB_OPS_TLS), "sign" (every
 * signature) or operation names as comb_alg_from_name takes them
 * ("decrypt-raw", "pkcs1", "sign-pss-sha256", ...).
 */
static bool conf_ops(const struct proto_rd *word, uint64_t *out)
{
    char text[256];
    char *save = NULL;
    uint64_t ops = 0;

    if (!conf_word_str(word, text, sizeof(text))) {
        return false;
    }
    for (char *tok = strtok_r(text, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        enum comb_alg alg;

        if (strcmp(tok, "tls") == 0) {
            ops |= COMB_OPS_TLS;
            continue;
        }
        if (strcmp(tok, "sign") == 0) {
            for (int op = 1; op < 64; op++) {
                if (comb_alg_valid(op) && comb_alg_is_sign((enum comb_alg)op)) {
                    ops |= 1ull << op;
                }
            }
            continue;
        }
        alg = comb_alg_from_name(tok);
        if (alg == COMB_ALG_NONE || (int)alg >= 64) {
            return false;
        }
        ops |= 1ull << (int)alg;
    }
    *out = ops;
    return ops != 0;
}

/* `client NAME uid USER|UID OPS` or `client NAME curve OPS`. */
static int conf_client(struct conf_parser *p, const struct proto_rd *words, size_t num_words)
{
    struct comb_conf *out = p->out;
    struct comb_conf_client *cl;
    const struct proto_rd *ops;
    int r;

    if ((num_words != 4 || !proto_rd_equals(&words[1], "uid")) &&
        (num_words != 3 || !proto_rd_equals(&words[1], "curve"))) {
        comb_conf_why(p->why, p->why_len,
                      "line %u: 'client' takes NAME uid USER OPS or NAME curve OPS", p->line_no);
        return SPK_ERR_MALFORMED;
    }
    if ((r = conf_grow(p, (void **)&out->clients, out->num_clients, sizeof(*out->clients),
                       "client")) != 0) {
        return r;
    }
    cl = &out->clients[out->num_clients];
    if (!proto_name_copy(&words[0], cl->name)) {
        comb_conf_why(
            p->why, p->why_len,
            "line %u: client name must be 1-%d of A-Z a-z 0-9 . _ - not starting with '.'",
            p->line_no, PROTO_NAME_MAX);
        return SPK_ERR_MALFORMED;
    }
    if (comb_conf_find_client(out, cl->name) != NULL) {
        comb_conf_why(p->why, p->why_len, "line %u: client '%s' given twice", p->line_no, cl->name);
        return SPK_ERR_MALFORMED;
    }
    cl->by_uid = num_words == 4;
    if (cl->by_uid) {
        uint32_t uid = 0;
        struct proto_rd w = words[2];

        if (proto_dec_decode(&w, 0, UINT32_MAX - 1, &uid)) {
            cl->uid = uid;
        } else if (!proto_name_copy(&words[2], cl->user)) {
            comb_conf_why(p->why, p->why_len, "line %u: uid must be a number or a user name",
                          p->line_no);
            return SPK_ERR_MALFORMED;
        }
    }
    ops = &words[num_words - 1];
    if (!conf_ops(ops, &cl->ops)) {
        comb_conf_why(p->why, p->why_len,
                      "line %u: OPS is a comma-separated list of tls, sign and operation names "
                      "(decrypt-raw, decrypt-pkcs1, sign-pss-sha256, ...)",
                      p->line_no);
        return SPK_ERR_MALFORMED;
    }
    out->num_clients++;
    return 0;
}

static int conf_yes_no(struct conf_parser *p, const struct proto_rd *words, size_t num_words,
                       const char *option, bool *seen, bool *out)
{
    if (*seen) {
        comb_conf_why(p->why, p->why_len, "line %u: '%s' given twice", p->line_no, option);
        return SPK_ERR_MALFORMED;
    }
    if (num_words != 1 ||
        (!proto_rd_equals(&words[0], "yes") && !proto_rd_equals(&words[0], "no"))) {
        comb_conf_why(p->why, p->why_len, "line %u: '%s' takes yes or no", p->line_no, option);
        return SPK_ERR_MALFORMED;
    }
    *seen = true;
    *out = proto_rd_equals(&words[0], "yes");
    return 0;
}

static int conf_number(struct conf_parser *p, const struct proto_rd *words, size_t num_words,
                       const char *option, bool *seen, uint32_t min, uint32_t max, unsigned *out)
{
    uint32_t v;

    if (*seen) {
        comb_conf_why(p->why, p->why_len, "line %u: '%s' given twice", p->line_no, option);
        return SPK_ERR_MALFORMED;
    }
    if (num_words != 1 || !proto_dec_decode(&words[0], min, max, &v)) {
        comb_conf_why(p->why, p->why_len, "line %u: '%s' takes a number from %u to %u", p->line_no,
                      option, (unsigned)min, (unsigned)max);
        return SPK_ERR_MALFORMED;
    }
    *seen = true;
    *out = v;
    return 0;
}

static int conf_path_list(struct conf_parser *p, const struct proto_rd *words, size_t num_words,
                          const char *option, char (**arr)[COMB_CONF_PATH_MAX], size_t *num)
{
    int r;

    if (num_words != 1) {
        comb_conf_why(p->why, p->why_len, "line %u: '%s' takes one path", p->line_no, option);
        return SPK_ERR_MALFORMED;
    }
    if ((r = conf_grow(p, (void **)arr, *num, sizeof(**arr), option)) != 0) {
        return r;
    }
    if ((r = conf_path(p, &words[0], (*arr)[*num])) != 0) {
        return r;
    }
    (*num)++;
    return 0;
}

/* conf_extra hands an unknown option to the caller's hook. */
static int conf_extra(struct conf_parser *p, const struct proto_rd *option,
                      const struct proto_rd *rest)
{
    char opt[64];
    char value[CONF_LINE_MAX + 1];
    char reason[256] = "";
    int r = SPK_ERR_UNSUPPORTED;

    if (!conf_word_str(option, opt, sizeof(opt))) {
        snprintf(opt, sizeof(opt), "%s", "(long)");
    } else if (p->extra != NULL) {
        value[0] = '\0';
        if (proto_rd_len(rest) > 0 && !conf_word_str(rest, value, sizeof(value))) {
            r = SPK_ERR_MALFORMED;
            snprintf(reason, sizeof(reason), "value too long");
        } else {
            r = p->extra(p->extra_arg, opt, value, reason, sizeof(reason));
        }
    }
    if (r == 0) {
        return 0;
    }
    if (r == SPK_ERR_UNSUPPORTED) {
        comb_conf_why(p->why, p->why_len, "line %u: unknown option '%s'", p->line_no, opt);
        return SPK_ERR_MALFORMED;
    }
    comb_conf_why(p->why, p->why_len, "line %u: %s: %s", p->line_no, opt,
                  reason[0] != '\0' ? reason : spk_strerror(r));
    return r;
}

/* conf_line parses one line that is neither blank nor a comment. */
static int conf_line(struct conf_parser *p, struct proto_rd line)
{
    struct comb_conf *out = p->out;
    struct proto_rd option, rest, words[CONF_WORDS_MAX];
    size_t num_words = 0;

    if (!p->seen_magic) {
        struct proto_rd magic;
        uint32_t version = 0;

        if (!proto_rd_word(&line, &magic) || !proto_rd_equals(&magic, COMB_CONF_MAGIC) ||
            !proto_dec_decode(&line, 0, UINT32_MAX, &version)) {
            comb_conf_why(p->why, p->why_len,
                          "line %u: expected '%s %d' (not a combiner config file?)", p->line_no,
                          COMB_CONF_MAGIC, COMB_CONF_VERSION);
            return SPK_ERR_MALFORMED;
        }
        if (version != COMB_CONF_VERSION) {
            comb_conf_why(p->why, p->why_len,
                          "line %u: version %u of the format; this build reads version %d",
                          p->line_no, (unsigned)version, COMB_CONF_VERSION);
            return SPK_ERR_VERSION;
        }
        p->seen_magic = true;
        return 0;
    }
    if (!proto_rd_word(&line, &option)) {
        comb_conf_why(p->why, p->why_len, "line %u: leading space", p->line_no);
        return SPK_ERR_MALFORMED;
    }
    rest = line;
    while (proto_rd_len(&line) > 0) {
        if (num_words == CONF_WORDS_MAX || !proto_rd_word(&line, &words[num_words])) {
            comb_conf_why(p->why, p->why_len, "line %u: too many words or two spaces in a row",
                          p->line_no);
            return SPK_ERR_MALFORMED;
        }
        num_words++;
    }
    if (proto_rd_equals(&option, "key")) {
        if (p->seen_key) {
            comb_conf_why(p->why, p->why_len, "line %u: 'key' given twice", p->line_no);
            return SPK_ERR_MALFORMED;
        }
        if (num_words != 1) {
            comb_conf_why(p->why, p->why_len, "line %u: 'key' takes one path", p->line_no);
            return SPK_ERR_MALFORMED;
        }
        p->seen_key = true;
        return conf_path(p, &words[0], out->key_path);
    }
    if (proto_rd_equals(&option, "record")) {
        return conf_path_list(p, words, num_words, "record", &out->record_paths,
                              &out->num_record_paths);
    }
    if (proto_rd_equals(&option, "share")) {
        return conf_path_list(p, words, num_words, "share", &out->share_paths,
                              &out->num_share_paths);
    }
    if (proto_rd_equals(&option, "holder")) {
        return conf_holder(p, words, num_words);
    }
    if (proto_rd_equals(&option, "timeout-ms")) {
        return conf_number(p, words, num_words, "timeout-ms", &p->seen_timeout, 1,
                           COMB_CONF_TIMEOUT_MAX, &out->timeout_ms);
    }
    if (proto_rd_equals(&option, "max-pending")) {
        return conf_number(p, words, num_words, "max-pending", &p->seen_pending, 1,
                           CONF_MAX_PENDING_MAX, &out->max_pending);
    }
    if (proto_rd_equals(&option, "max-batch")) {
        return conf_number(p, words, num_words, "max-batch", &p->seen_batch, 1, CONF_MAX_BATCH_MAX,
                           &out->max_batch);
    }
    if (proto_rd_equals(&option, "holder-fanout")) {
        char v[8];
        int r = conf_once_str(p, words, num_words, "holder-fanout", &p->seen_fanout, v, sizeof(v));
        if (r == 0 && strcmp(v, "needed") != 0 && strcmp(v, "all") != 0) {
            comb_conf_why(p->why, p->why_len, "line %u: 'holder-fanout' is needed or all",
                          p->line_no);
            r = SPK_ERR_MALFORMED;
        }
        if (r == 0) {
            out->fanout_all = strcmp(v, "all") == 0;
        }
        return r;
    }
    if (proto_rd_equals(&option, "exp-code")) {
        char v[8];
        int r = conf_once_str(p, words, num_words, "exp-code", &p->seen_exp_code, v, sizeof(v));
        if (r == 0) {
            if (strcmp(v, "auto") == 0) {
                out->exp_code = COMB_EXP_CODE_AUTO;
            } else if (strcmp(v, "openssl") == 0) {
                out->exp_code = COMB_EXP_CODE_OPENSSL;
            } else if (strcmp(v, "avx2") == 0) {
                out->exp_code = COMB_EXP_CODE_AVX2;
            } else {
                comb_conf_why(p->why, p->why_len, "line %u: 'exp-code' is auto, openssl or avx2",
                              p->line_no);
                r = SPK_ERR_MALFORMED;
            }
        }
        return r;
    }
    if (proto_rd_equals(&option, "crt-threads")) {
        return conf_number(p, words, num_words, "crt-threads", &p->seen_crt_threads, 1, 2,
                           &out->crt_threads);
    }
    if (proto_rd_equals(&option, "share-timeout-ms")) {
        return conf_number(p, words, num_words, "share-timeout-ms", &p->seen_share_timeout, 1,
                           COMB_CONF_TIMEOUT_MAX, &out->share_timeout_ms);
    }
    if (proto_rd_equals(&option, "listen")) {
        int r = conf_once_str(p, words, num_words, "listen", &p->seen_listen, out->listen,
                              sizeof(out->listen));
        if (r == 0 && strncmp(out->listen, "tcp://", 6) != 0 &&
            strncmp(out->listen, "ipc://", 6) != 0 && !spk_endpoint_is_unix(out->listen)) {
            comb_conf_why(p->why, p->why_len, "line %u: listen must be unix://, ipc:// or tcp://",
                          p->line_no);
            return SPK_ERR_MALFORMED;
        }
        return r;
    }
    if (proto_rd_equals(&option, "metrics")) {
        int r = conf_once_str(p, words, num_words, "metrics", &p->seen_metrics, out->metrics,
                              sizeof(out->metrics));
        /* Plain HTTP: loopback only. */
        if (r == 0 && !spk_metrics_hostport_ok(out->metrics)) {
            comb_conf_why(
                p->why, p->why_len,
                "line %u: metrics must be a numeric loopback HOST:PORT (127.A.B.C:PORT or "
                "[::1]:PORT)",
                p->line_no);
            return SPK_ERR_MALFORMED;
        }
        return r;
    }
    if (proto_rd_equals(&option, "allow-unlocked")) {
        return conf_yes_no(p, words, num_words, "allow-unlocked", &p->seen_unlocked,
                           &out->allow_unlocked);
    }
    if (proto_rd_equals(&option, "allow")) {
        if (p->seen_allow || num_words != 1) {
            comb_conf_why(p->why, p->why_len, "line %u: 'allow' takes one path, once", p->line_no);
            return SPK_ERR_MALFORMED;
        }
        p->seen_allow = true;
        return conf_path(p, &words[0], out->allow_path);
    }
    if (proto_rd_equals(&option, "socket-group")) {
        if (p->seen_group || num_words != 1 || !proto_name_copy(&words[0], out->socket_group)) {
            comb_conf_why(p->why, p->why_len, "line %u: 'socket-group' takes one group name, once",
                          p->line_no);
            return SPK_ERR_MALFORMED;
        }
        p->seen_group = true;
        return 0;
    }
    if (proto_rd_equals(&option, "client")) {
        return conf_client(p, words, num_words);
    }
    return conf_extra(p, &option, &rest);
}

/* conf_chars_ok: printable ASCII and spaces only, no trailing space. */
static bool conf_chars_ok(const struct proto_rd *line)
{
    struct proto_rd rd = *line;
    uint8_t c = 0;

    while (proto_rd_len(&rd) > 0) {
        if (!proto_rd_u8(&rd, &c) || c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return c != ' ';
}

int comb_conf_parse(struct comb_conf *out, const uint8_t *in, size_t in_len, const char *base_dir,
                    comb_conf_extra_fn extra, void *extra_arg, char *why, size_t why_len)
{
    struct conf_parser p;
    struct proto_rd rd, line;
    int r = SPK_ERR_MALFORMED;

    memset(out, 0, sizeof(*out));
    memset(&p, 0, sizeof(p));
    p.out = out;
    p.base_dir = base_dir;
    p.extra = extra;
    p.extra_arg = extra_arg;
    p.why = why;
    p.why_len = why_len;
    comb_conf_why(why, why_len, "%s", "");
    out->timeout_ms = COMB_CONF_TIMEOUT_DEFAULT;
    out->fanout_all = false; /* holder-fanout needed unless the file says all */
    /* A second thread pays only where a second CPU is there to run it. */
    out->crt_threads = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 1;
    if (in_len > PROTO_FILE_MAX) {
        comb_conf_why(why, why_len, "larger than %d bytes", PROTO_FILE_MAX);
        goto out;
    }
    proto_rd_init(&rd, in, in_len);
    while (proto_rd_len(&rd) > 0) {
        uint8_t first = 0;
        struct proto_rd peek;

        p.line_no++;
        if (!proto_rd_line(&rd, &line)) {
            /* The last line may lack its '\n'; a '\r' or NUL is caught below. */
            line = rd;
            proto_rd_init(&rd, NULL, 0);
        }
        if (proto_rd_len(&line) > CONF_LINE_MAX) {
            comb_conf_why(why, why_len, "line %u: longer than %d bytes", p.line_no, CONF_LINE_MAX);
            goto out;
        }
        if (!conf_chars_ok(&line)) {
            comb_conf_why(
                why, why_len,
                "line %u: a byte that is not printable ASCII or space, or a trailing space",
                p.line_no);
            goto out;
        }
        peek = line;
        if (proto_rd_len(&line) == 0 || (proto_rd_u8(&peek, &first) && first == '#')) {
            continue;
        }
        if ((r = conf_line(&p, line)) != 0) {
            goto out;
        }
        r = SPK_ERR_MALFORMED;
    }
    if (!p.seen_magic) {
        comb_conf_why(why, why_len, "empty: expected '%s %d'", COMB_CONF_MAGIC, COMB_CONF_VERSION);
        goto out;
    }
    if (!p.seen_key) {
        comb_conf_why(why, why_len, "no 'key' line (the combiner's own NAME.key)");
        goto out;
    }
    if (out->num_record_paths == 0) {
        comb_conf_why(why, why_len, "no 'record' line");
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        comb_conf_cleanup(out);
    }
    return r;
}

/* ---- loading ------------------------------------------------------------------ */

int comb_conf_load(struct comb_conf *out, const char *path, comb_conf_extra_fn extra,
                   void *extra_arg, char *why, size_t why_len)
{
    char dir[COMB_CONF_PATH_MAX];
    char reason[COMB_CONF_WHY_MAX];
    struct proto_holder_pub pub;
    const char *slash;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    memset(out, 0, sizeof(*out));
    if (strlen(path) >= sizeof(dir)) {
        comb_conf_why(why, why_len, "config path too long");
        return SPK_ERR_INVALID_ARG;
    }
    errno = 0;
    if ((r = spk_file_read(path, PROTO_FILE_MAX, &buf, &len)) != 0) {
        comb_conf_why(why, why_len, "cannot read config '%s': %s", path,
                      r == SPK_ERR_IO && errno != 0 ? strerror(errno) : spk_strerror(r));
        return r;
    }
    slash = strrchr(path, '/');
    if (slash == NULL) {
        dir[0] = '\0';
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    }
    r = comb_conf_parse(out, buf, len, dir, extra, extra_arg, reason, sizeof(reason));
    spk_file_free(buf, len);
    if (r != 0) {
        comb_conf_why(why, why_len, "config '%s': %s", path, reason);
        return r;
    }
    for (size_t i = 0; i < out->num_holders; i++) {
        struct comb_conf_holder *h = &out->holders[i];

        if (h->have_pk) {
            continue;
        }
        if ((r = split_holder_pub_load(&pub, h->pub_path)) != 0) {
            comb_conf_why(why, why_len, "config '%s': holder '%s': cannot load '%s': %s", path,
                          h->name, h->pub_path, spk_strerror(r));
            comb_conf_cleanup(out);
            return r;
        }
        if (strcmp(pub.name, h->name) != 0) {
            comb_conf_why(why, why_len, "config '%s': holder '%s': '%s' is the key of '%s'", path,
                          h->name, h->pub_path, pub.name);
            comb_conf_cleanup(out);
            return SPK_ERR_WRONG_HOLDER;
        }
        memcpy(h->curve_pk, pub.curve_pk, PROTO_X25519_LEN);
        h->have_pk = true;
    }
    for (size_t i = 0; i < out->num_clients; i++) {
        struct comb_conf_client *cl = &out->clients[i];
        struct passwd pw, *found = NULL;
        char pwbuf[4096];

        if (!cl->by_uid || cl->user[0] == '\0') {
            continue;
        }
        if (getpwnam_r(cl->user, &pw, pwbuf, sizeof(pwbuf), &found) != 0 || found == NULL) {
            comb_conf_why(why, why_len, "config '%s': client '%s': no user '%s'", path, cl->name,
                          cl->user);
            comb_conf_cleanup(out);
            return SPK_ERR_INVALID_ARG;
        }
        cl->uid = (uint32_t)pw.pw_uid;
    }
    return 0;
}
