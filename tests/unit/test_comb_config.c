#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/comb_config.h"
#include "split/split.h"
#include "testutil.h"

/*
 * The combiner config file (proto/PROTOCOL.md section 8): what it accepts,
 * every refusal, truncations, the extra-option hook, and building a
 * combiner from real files whose remote holders are not running (operations
 * fail fast, and succeed once k shares are reachable by another source).
 */

#define Z85_A "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"

static const char good_conf[] = "# a comment first\n"
                                "\n"
                                "splitkey-combiner 1\n"
                                "key edge.key\n"
                                "# records\n"
                                "record keys/\n"
                                "record /abs/k.record\n"
                                "share keys\n"
                                "holder h1 tcp://127.0.0.1:7001 " Z85_A "\n"
                                "holder h-2 ipc:///run/h2.sock pubs/h2.pub\n"
                                "timeout-ms 750\n"
                                "max-pending 99\n"
                                "max-batch 1\n"
                                "crt-threads 1\n"
                                "exp-code avx2"; /* no final newline */

static int parse(struct comb_conf *conf, const char *text, char *why, size_t why_len)
{
    return comb_conf_parse(conf, (const uint8_t *)text, strlen(text), "/base", NULL, NULL, why,
                           why_len);
}

static void test_parse_good(void **state)
{
    struct comb_conf conf;
    char why[COMB_CONF_WHY_MAX];
    uint8_t pk[32];
    struct proto_rd rd;

    (void)state;
    assert_int_equal(parse(&conf, good_conf, why, sizeof(why)), 0);
    assert_string_equal(conf.key_path, "/base/edge.key");
    assert_int_equal(conf.num_record_paths, 2);
    assert_string_equal(conf.record_paths[0], "/base/keys/");
    assert_string_equal(conf.record_paths[1], "/abs/k.record");
    assert_int_equal(conf.num_share_paths, 1);
    assert_string_equal(conf.share_paths[0], "/base/keys");
    assert_int_equal(conf.num_holders, 2);
    assert_string_equal(conf.holders[0].name, "h1");
    assert_string_equal(conf.holders[0].endpoint, "tcp://127.0.0.1:7001");
    assert_true(conf.holders[0].have_pk);
    proto_rd_init(&rd, (const uint8_t *)Z85_A, 40);
    assert_true(proto_z85_decode_key(&rd, pk));
    assert_memory_equal(conf.holders[0].curve_pk, pk, 32);
    assert_string_equal(conf.holders[0].pub_path, "");
    assert_string_equal(conf.holders[1].name, "h-2");
    assert_string_equal(conf.holders[1].endpoint, "ipc:///run/h2.sock");
    assert_false(conf.holders[1].have_pk);
    assert_string_equal(conf.holders[1].pub_path, "/base/pubs/h2.pub");
    assert_int_equal(conf.timeout_ms, 750);
    assert_int_equal(conf.max_pending, 99);
    assert_int_equal(conf.max_batch, 1);
    assert_false(conf.fanout_all); /* holder-fanout needed unless the file says all */
    assert_int_equal(conf.crt_threads, 1);
    assert_int_equal(conf.exp_code, COMB_EXP_CODE_AVX2);
    comb_conf_cleanup(&conf);
    comb_conf_cleanup(&conf); /* twice is fine */

    /* defaults, and no base directory: paths as given */
    assert_int_equal(comb_conf_parse(&conf,
                                     (const uint8_t *)"splitkey-combiner 1\nkey k\nrecord r\n", 35,
                                     NULL, NULL, NULL, why, sizeof(why)),
                     0);
    assert_int_equal(conf.timeout_ms, COMB_CONF_TIMEOUT_DEFAULT);
    assert_int_equal(conf.max_pending, 0);
    assert_int_equal(conf.num_holders, 0);
    assert_string_equal(conf.key_path, "k");
    /* two threads for the CRT halves where there is a second CPU */
    assert_int_equal(conf.crt_threads, sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 1);
    assert_int_equal(conf.exp_code, COMB_EXP_CODE_AUTO);
    comb_conf_cleanup(&conf);
    assert_int_equal(
        parse(&conf, "splitkey-combiner 1\nkey k\nrecord r\nexp-code openssl\n", why, sizeof(why)),
        0);
    assert_int_equal(conf.exp_code, COMB_EXP_CODE_OPENSSL);
    comb_conf_cleanup(&conf);
    assert_int_equal(
        parse(&conf, "splitkey-combiner 1\nkey k\nrecord r\nexp-code auto\n", why, sizeof(why)), 0);
    assert_int_equal(conf.exp_code, COMB_EXP_CODE_AUTO);
    comb_conf_cleanup(&conf);
}

struct bad_case {
    const char *text;
    int err;
    const char *why; /* a part of the reason */
};

#define HDR "splitkey-combiner 1\n"
#define MIN "key k\nrecord r\n"

static const struct bad_case bad_cases[] = {
    {"", SPK_ERR_MALFORMED, "empty"},
    {"# only a comment\n", SPK_ERR_MALFORMED, "empty"},
    {"splitkey-combiner 2\n" MIN, SPK_ERR_VERSION, "version 2"},
    {"splitkey-combiner 01\n" MIN, SPK_ERR_MALFORMED, "line 1"},
    {"splitkey-record 1\n" MIN, SPK_ERR_MALFORMED, "not a combiner config"},
    {"splitkey-combiner  1\n" MIN, SPK_ERR_MALFORMED, "line 1"},
    {MIN, SPK_ERR_MALFORMED, "line 1"},
    {HDR "record r\n", SPK_ERR_MALFORMED, "no 'key'"},
    {HDR "key k\n", SPK_ERR_MALFORMED, "no 'record'"},
    {HDR MIN "key k2\n", SPK_ERR_MALFORMED, "line 4: 'key' given twice"},
    {HDR MIN "bogus 1\n", SPK_ERR_MALFORMED, "line 4: unknown option 'bogus'"},
    {HDR MIN " timeout-ms 5\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "timeout-ms  5\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "timeout-ms 5 \n", SPK_ERR_MALFORMED, "trailing space"},
    {HDR MIN "timeout-ms\t5\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "timeout-ms 5\r\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "# caf\xc3\xa9\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "timeout-ms 0\n", SPK_ERR_MALFORMED, "from 1 to 600000"},
    {HDR MIN "timeout-ms 600001\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "timeout-ms 05\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "timeout-ms -5\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "timeout-ms\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "timeout-ms 5\ntimeout-ms 6\n", SPK_ERR_MALFORMED, "line 5: 'timeout-ms' given twice"},
    {HDR MIN "max-batch 65\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "max-pending 0\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "crt-threads 0\n", SPK_ERR_MALFORMED, "from 1 to 2"},
    {HDR MIN "crt-threads 3\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "crt-threads two\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "crt-threads 2\ncrt-threads 2\n", SPK_ERR_MALFORMED, "'crt-threads' given twice"},
    {HDR MIN "exp-code fast\n", SPK_ERR_MALFORMED, "'exp-code' is auto, openssl or avx2"},
    {HDR MIN "exp-code\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "exp-code auto openssl\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "exp-code avx2\nexp-code avx2\n", SPK_ERR_MALFORMED, "'exp-code' given twice"},
    {HDR MIN "record\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "record a b\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "key\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "holder h1 tcp://127.0.0.1:1\n", SPK_ERR_MALFORMED, "NAME ENDPOINT PUBLIC-KEY"},
    {HDR MIN "holder h1 tcp://127.0.0.1:1 " Z85_A " x\n", SPK_ERR_MALFORMED, "line 4"},
    {HDR MIN "holder .h1 tcp://127.0.0.1:1 " Z85_A "\n", SPK_ERR_MALFORMED, "holder name"},
    {HDR MIN "holder h/1 tcp://127.0.0.1:1 " Z85_A "\n", SPK_ERR_MALFORMED, "holder name"},
    {HDR MIN "holder h1 http://127.0.0.1:1 " Z85_A "\n", SPK_ERR_MALFORMED, "endpoint"},
    {HDR MIN "holder h1 tcp://a " Z85_A "\nholder h1 tcp://b " Z85_A "\n", SPK_ERR_MALFORMED,
     "line 5: holder 'h1' given twice"},
};

static void test_parse_refusals(void **state)
{
    struct comb_conf conf;
    char why[COMB_CONF_WHY_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        int r = parse(&conf, bad_cases[i].text, why, sizeof(why));

        if (r != bad_cases[i].err || strstr(why, bad_cases[i].why) == NULL) {
            fail_msg("case %zu: got %d '%s', want %d '%s'", i, r, why, bad_cases[i].err,
                     bad_cases[i].why);
        }
        /* nothing is left behind on failure */
        assert_null(conf.record_paths);
        assert_null(conf.holders);
        assert_int_equal(conf.num_record_paths, 0);
    }
}

static void test_parse_limits(void **state)
{
    struct comb_conf conf;
    char why[COMB_CONF_WHY_MAX];
    char *big;
    size_t n = 0;
    size_t cap = 64 * (COMB_CONF_ENTRIES_MAX + 8);

    (void)state;
    big = malloc(cap);
    assert_non_null(big);
    n += (size_t)snprintf(big + n, cap - n, HDR "key k\n");
    for (unsigned i = 0; i <= COMB_CONF_ENTRIES_MAX; i++) {
        n += (size_t)snprintf(big + n, cap - n, "record r%u\n", i);
    }
    assert_int_equal(
        comb_conf_parse(&conf, (const uint8_t *)big, n, NULL, NULL, NULL, why, sizeof(why)),
        SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "more than"));
    /* a path longer than COMB_CONF_PATH_MAX - 1 */
    n = (size_t)snprintf(big, cap, HDR "record r\nkey ");
    memset(big + n, 'a', COMB_CONF_PATH_MAX);
    n += COMB_CONF_PATH_MAX;
    big[n++] = '\n';
    assert_int_equal(
        comb_conf_parse(&conf, (const uint8_t *)big, n, NULL, NULL, NULL, why, sizeof(why)),
        SPK_ERR_MALFORMED);
    /* more than PROTO_FILE_MAX */
    assert_int_equal(comb_conf_parse(&conf, (const uint8_t *)big, PROTO_FILE_MAX + 1, NULL, NULL,
                                     NULL, why, sizeof(why)),
                     SPK_ERR_MALFORMED);
    free(big);
}

/* Every prefix of a good file either parses or is refused cleanly. */
static void test_parse_truncations(void **state)
{
    struct comb_conf conf;
    char why[COMB_CONF_WHY_MAX];
    size_t len = strlen(good_conf);
    size_t num_ok = 0;

    (void)state;
    for (size_t i = 0; i <= len; i++) {
        uint8_t *copy = malloc(i + 1); /* exact size, so ASan sees any overread */

        assert_non_null(copy);
        memcpy(copy, good_conf, i);
        if (comb_conf_parse(&conf, copy, i, "/b", NULL, NULL, why, sizeof(why)) == 0) {
            num_ok++;
            assert_true(conf.num_record_paths >= 1);
            comb_conf_cleanup(&conf);
        } else {
            assert_int_equal(conf.num_holders, 0);
        }
        free(copy);
    }
    /* from the first record line on, most prefixes are complete files */
    assert_true(num_ok > 0 && num_ok < len);
}

static int extra_hook(void *arg, const char *option, const char *value, char *why, size_t why_len)
{
    char *listen = arg;

    if (strcmp(option, "x-listen") == 0) {
        if (strncmp(value, "ipc://", 6) != 0) {
            snprintf(why, why_len, "'%s' is not an ipc:// endpoint", value);
            return SPK_ERR_INVALID_ARG;
        }
        snprintf(listen, 128, "%s", value);
        return 0;
    }
    return SPK_ERR_UNSUPPORTED;
}

static void test_extra_hook(void **state)
{
    static const char text[] = HDR MIN "x-listen ipc:///run/comb.sock\n";
    static const char bad[] = HDR MIN "x-listen tcp://x\n";
    static const char unknown[] = HDR MIN "other 1\n";
    struct comb_conf conf;
    char why[COMB_CONF_WHY_MAX];
    char listen[128] = "";

    (void)state;
    assert_int_equal(parse(&conf, text, why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "unknown option 'x-listen'"));
    assert_int_equal(comb_conf_parse(&conf, (const uint8_t *)text, strlen(text), NULL, extra_hook,
                                     listen, why, sizeof(why)),
                     0);
    assert_string_equal(listen, "ipc:///run/comb.sock");
    comb_conf_cleanup(&conf);
    assert_int_equal(comb_conf_parse(&conf, (const uint8_t *)bad, strlen(bad), NULL, extra_hook,
                                     listen, why, sizeof(why)),
                     SPK_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "line 4: x-listen: 'tcp://x' is not an ipc:// endpoint"));
    assert_int_equal(comb_conf_parse(&conf, (const uint8_t *)unknown, strlen(unknown), NULL,
                                     extra_hook, listen, why, sizeof(why)),
                     SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "unknown option 'other'"));
}

/* The daemon's own lines: where it listens and who may ask for what. */
static void test_daemon_options(void **state)
{
    static const char text[] =
        HDR MIN "listen ipc:///run/c.sock\nmetrics 127.0.0.1:9102\nallow-unlocked yes\n"
                "share-timeout-ms 700\nallow clients.allow\nsocket-group spk-edge\n"
                "client edge uid 998 tls\nclient ops uid root sign,decrypt-raw\n"
                "client far curve sign-pss-sha256\nholder-fanout all\n";
    static const struct {
        const char *line;
        const char *why;
    } bad[] = {
        {"listen inproc://x\n", "listen must be unix://, ipc:// or tcp://"},
        {"metrics 10.0.0.1:9102\n", "loopback"},
        {"metrics 127.attacker.example:9102\n", "numeric loopback"},
        {"metrics localhost:9102\n", "numeric loopback"},
        {"allow-unlocked maybe\n", "yes or no"},
        {"client edge uid 998\n", "'client' takes"},
        {"client edge uid 998 tls,frobnicate\n", "OPS is a comma-separated"},
        {"client edge curve tls\nclient edge uid 1 tls\n", "client 'edge' given twice"},
        {"client .x uid 1 tls\n", "client name"},
        {"client edge pid 1 tls\n", "'client' takes"},
    };
    struct comb_conf conf;
    char why[COMB_CONF_WHY_MAX];
    const struct comb_conf_client *cl;

    (void)state;
    assert_int_equal(parse(&conf, text, why, sizeof(why)), 0);
    assert_string_equal(conf.listen, "ipc:///run/c.sock");
    assert_string_equal(conf.metrics, "127.0.0.1:9102");
    assert_true(conf.allow_unlocked);
    assert_int_equal(conf.share_timeout_ms, 700);
    assert_true(conf.fanout_all);
    assert_string_equal(conf.socket_group, "spk-edge");
    assert_int_equal(conf.num_clients, 3);
    cl = comb_conf_find_client(&conf, "edge");
    assert_non_null(cl);
    assert_true(cl->by_uid);
    assert_int_equal(cl->uid, 998);
    assert_true(cl->ops == COMB_OPS_TLS);
    /* the TLS set has no raw RSA and no padding-oracle decryption */
    assert_false(cl->ops & (1ull << PROTO_OP_DECRYPT_RAW));
    assert_false(cl->ops & (1ull << PROTO_OP_DECRYPT_PKCS1));
    cl = comb_conf_find_client(&conf, "ops");
    assert_non_null(cl);
    assert_string_equal(cl->user, "root");
    assert_true(cl->ops & (1ull << PROTO_OP_DECRYPT_RAW));
    assert_true(cl->ops & (1ull << PROTO_OP_SIGN_PSS_SHA512));
    assert_false(cl->ops & (1ull << PROTO_OP_DECRYPT_TLS_PREMASTER));
    cl = comb_conf_find_client(&conf, "far");
    assert_non_null(cl);
    assert_false(cl->by_uid);
    assert_true(cl->ops == (1ull << PROTO_OP_SIGN_PSS_SHA256));
    assert_null(comb_conf_find_client(&conf, "nobody"));
    comb_conf_cleanup(&conf);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[256];

        snprintf(line, sizeof(line), HDR MIN "%s", bad[i].line);
        assert_int_not_equal(parse(&conf, line, why, sizeof(why)), 0);
        if (strstr(why, bad[i].why) == NULL) {
            fail_msg("'%s': got '%s'", bad[i].line, why);
        }
        assert_int_equal(conf.num_clients, 0);
    }
}

/* ---- with real files ----------------------------------------------------------------- */

struct files {
    char dir[64];
    struct proto_holder_secret *keys[3]; /* edge, h1, h2 */
    struct proto_record rec;
    struct proto_share_file shares[3];
};

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
    /* key and share files are secret: readable by their owner only */
    assert_int_equal(chmod(path, 0600), 0);
}

static int files_setup(void **state)
{
    static const char *names[3] = {"edge", "h1", "h2"};
    struct files *f = calloc(1, sizeof(*f));
    struct split_rsa_key key;
    struct proto_holder_pub pubs[3];
    static uint8_t buf[PROTO_FILE_MAX];
    char name[128], hex[65], why[256];
    size_t len;

    assert_non_null(f);
    memset(&key, 0, sizeof(key));
    snprintf(f->dir, sizeof(f->dir), "/tmp/spk-comb-config.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    for (int i = 0; i < 3; i++) {
        f->keys[i] = spk_secret_new(sizeof(*f->keys[i]));
        assert_non_null(f->keys[i]);
        assert_int_equal(split_holder_keygen(f->keys[i], names[i]), 0);
        pubs[i] = f->keys[i]->pub;
        assert_int_equal(proto_holder_secret_encode(buf, sizeof(buf), &len, f->keys[i]), 0);
        snprintf(name, sizeof(name), "%s.key", names[i]);
        write_file(f->dir, name, buf, len);
        assert_int_equal(proto_holder_pub_encode(buf, sizeof(buf), &len, &pubs[i]), 0);
        snprintf(name, sizeof(name), "%s.pub", names[i]);
        write_file(f->dir, name, buf, len);
    }
    assert_int_equal(
        split_rsa_key_load(&key, testutil_data_path("rsa2048.pem"), NULL, why, sizeof(why)), 0);
    assert_int_equal(split_key_split(&f->rec, f->shares, &key, 2, pubs, 3, why, sizeof(why)), 0);
    split_rsa_key_cleanup(&key);
    sodium_bin2hex(hex, sizeof(hex), f->rec.key_id, 32);
    assert_int_equal(proto_record_encode(buf, sizeof(buf), &len, &f->rec), 0);
    snprintf(name, sizeof(name), "%s.record", hex);
    write_file(f->dir, name, buf, len);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(proto_share_file_encode(buf, sizeof(buf), &len, &f->shares[i]), 0);
        snprintf(name, sizeof(name), "%s.%s.share", hex, names[i]);
        write_file(f->dir, name, buf, len);
    }
    *state = f;
    return 0;
}

static int files_teardown(void **state)
{
    struct files *f = *state;
    char cmd[128];

    for (int i = 0; i < 3; i++) {
        spk_secret_free(f->keys[i]);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void write_conf(struct files *f, const char *text)
{
    write_file(f->dir, "comb.conf", (const uint8_t *)text, strlen(text));
}

static void test_open_dead_holders(void **state)
{
    struct files *f = *state;
    struct comb_ctx *c = NULL;
    struct comb_conf conf;
    struct comb_file_source *fs;
    struct comb_source_stats st;
    char path[128], why[COMB_CONF_WHY_MAX], text[512];
    uint8_t digest[32] = {1, 2, 3};
    uint8_t sig[512];
    size_t sig_len = 0;
    double t0;

    /* Holders on ports where nothing listens: one by NAME.pub, one in Z85. */
    snprintf(text, sizeof(text),
             HDR "key edge.key\nrecord .\nshare .\n"
                 "holder h1 tcp://127.0.0.1:1 h1.pub\n"
                 "holder h2 tcp://127.0.0.1:2 %s\n"
                 "timeout-ms 3000\n",
             "0000000000000000000000000000000000000000");
    write_conf(f, text);
    snprintf(path, sizeof(path), "%s/comb.conf", f->dir);
    t0 = now_ms();
    assert_int_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), 0);
    /* It waited for the holders, but not far beyond the timeout: the bound is
     * loose because valgrind and a busy machine slow everything down. */
    assert_true(now_ms() - t0 < 2 * 3000);
    assert_int_equal(conf.num_keys, 1);
    assert_memory_equal(conf.keys[0].key_id, f->rec.key_id, 32);
    assert_true(conf.keys[0].local);
    assert_int_equal(conf.keys[0].threshold, 2);
    assert_int_equal(conf.keys[0].modulus_len, 256);
    assert_int_equal(comb_conf_find_key(&conf, f->rec.key_id), 0);
    assert_int_equal(comb_num_sources(c), 3); /* local, h1, h2 */

    /* Nobody there: the operation fails fast (unavailable, not after the
     * timeout), naming both. */
    t0 = now_ms();
    assert_int_equal(comb_sign_sync(c, sig, sizeof(sig), &sig_len, f->rec.key_id,
                                    COMB_ALG_PKCS1_SHA256, digest, sizeof(digest)),
                     SPK_ERR_THRESHOLD);
    assert_true(now_ms() - t0 < 3000);
    assert_non_null(strstr(comb_last_error(c), "h1"));
    assert_non_null(strstr(comb_last_error(c), "h2"));
    assert_int_equal(comb_source_stats(c, 1, &st), 0);
    assert_string_equal(st.name, "h1");
    assert_int_equal(st.last_error, SPK_ERR_UNAVAILABLE);

    /* With h1's share reachable another way, the dead holders cost nothing. */
    fs = comb_file_source_new(f->keys[1]);
    assert_non_null(fs);
    assert_int_equal(comb_file_source_add_share(fs, &f->shares[1], true), 0);
    assert_int_equal(comb_add_file_source(c, NULL, "h1-file", fs), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(comb_sign_sync(c, sig, sizeof(sig), &sig_len, f->rec.key_id,
                                        COMB_ALG_PKCS1_SHA256, digest, sizeof(digest)),
                         0);
        assert_int_equal(sig_len, 256);
    }
    comb_free(c);
    comb_conf_cleanup(&conf);
}

static void test_open_refusals(void **state)
{
    struct files *f = *state;
    struct comb_ctx *c = NULL;
    struct comb_conf conf;
    char path[128], why[COMB_CONF_WHY_MAX], hex[65], text[512];

    sodium_bin2hex(hex, sizeof(hex), f->rec.key_id, 32);
    snprintf(path, sizeof(path), "%s/comb.conf", f->dir);

    /* a share that is not the combiner's */
    snprintf(text, sizeof(text), HDR "key edge.key\nrecord .\nshare %s.h1.share\n", hex);
    write_conf(f, text);
    assert_int_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), SPK_ERR_WRONG_HOLDER);
    assert_null(c);
    assert_non_null(strstr(why, "belongs to 'h1'"));

    /* a NAME.pub of another holder */
    write_conf(f, HDR "key edge.key\nrecord .\nholder h1 tcp://127.0.0.1:1 h2.pub\n");
    assert_int_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), SPK_ERR_WRONG_HOLDER);
    assert_non_null(strstr(why, "is the key of 'h2'"));

    /* missing files */
    write_conf(f, HDR "key edge.key\nrecord nothere.record\n");
    assert_int_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), SPK_ERR_IO);
    assert_non_null(strstr(why, "nothere.record"));
    write_conf(f, HDR "key nothere.key\nrecord .\n");
    assert_int_not_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "nothere.key"));
    write_conf(f, HDR "key edge.key\nrecord .\nholder h1 tcp://127.0.0.1:1 nothere.pub\n");
    assert_int_not_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "nothere.pub"));
    /* a record file that is not one */
    write_conf(f, HDR "key edge.key\nrecord edge.pub\n");
    assert_int_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "not a key record"));
    /* the same key twice */
    snprintf(text, sizeof(text), HDR "key edge.key\nrecord .\nrecord %s.record\n", hex);
    write_conf(f, text);
    assert_int_not_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), 0);
    /* an empty directory of records */
    write_conf(f, HDR "key edge.key\nrecord /proc/self/fdinfo\n");
    assert_int_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), SPK_ERR_INVALID_ARG);
    assert_non_null(strstr(why, "no key record"));
    /* a config that does not parse names the file */
    write_conf(f, "splitkey-combiner 1\nkey edge.key\n");
    assert_int_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), SPK_ERR_MALFORMED);
    assert_non_null(strstr(why, "comb.conf"));
    /* no local share at all is fine: every share is remote */
    write_conf(f, HDR "key edge.key\nrecord .\n");
    assert_int_equal(comb_open_config(&c, &conf, path, why, sizeof(why)), 0);
    assert_false(conf.keys[0].local);
    comb_free(c);
    comb_conf_cleanup(&conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_parse_truncations),
        cmocka_unit_test(test_extra_hook),
        cmocka_unit_test(test_daemon_options),
        cmocka_unit_test_setup_teardown(test_open_dead_holders, files_setup, files_teardown),
        cmocka_unit_test_setup_teardown(test_open_refusals, files_setup, files_teardown),
    };
    char why[256];

    if (spk_mem_init() != 0 || spk_process_harden(true, why, sizeof(why)) != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
