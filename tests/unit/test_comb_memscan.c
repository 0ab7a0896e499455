/*
 * "Nothing left behind": after 1,000 operations through the combiner, the
 * process's own memory (every readable mapping of /proc/self/maps, read
 * through /proc/self/mem: heap, stacks, libraries' data, anonymous maps)
 * holds none of p, q, d, dp, dq, qinv, nor any y value of the remote shares,
 * in big-endian bytes or in the little-endian limb order of GMP and OpenSSL
 * (on this little-endian machine, the byte-reversed value). Pages of an
 * anonymous mapping that were never touched (/proc/self/pagemap) hold zeros
 * and are scanned as such without being read: a sanitizer build reserves
 * gigabytes of them.
 *
 * The local share's y values are kept by the combiner by design (opened once
 * into locked memory, noaccess between operations): they are left out of the
 * first scan, and a second scan after comb_free looks for them too.
 *
 * The scanner must not itself keep what it looks for: each needle is a
 * window of NEEDLE_LEN bytes of a value, stored only XOR-masked with its own
 * random mask; a position matches when (memory ^ mask) == masked. A
 * prefilter bitmap is indexed by a keyed bijection of the first 8 bytes, so
 * it holds no raw bytes either. The values themselves are read from
 * keysplit's loader into locked memory and wiped as soon as the needles are
 * made. A self-check plants a needle in the clear on the heap and on the
 * stack and requires the scanner to find both before they are wiped.
 *
 * Under valgrind (SPK_UNDER_VALGRIND=1, as tools/check runs it) memcheck
 * costs ~250 ms per operation and ~40 s per scan here, so the test runs
 * OPS_VALGRIND operations and skips the scan inside a callback. Valgrind
 * keeps the guest's vector registers in its own memory, which the scan also
 * reads: right after the needles are made the self-check may list a few
 * hits there besides the planted ones (the registers that last held a share),
 * which is why it asserts only that the planted ones are found.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "combiner/combiner.h"
#include "split/split.h"
#include "testutil.h"

#define NEEDLE_LEN 16
#define WINDOWS_PER_VALUE 3 /* at 1/4, 1/2 and 3/4 of each value */
#define NEEDLES_MAX 256
#define HOLDERS 3
#define TLS_PREMASTER_LEN 48
#define THRESHOLD 2
#define OPS 1000
#define OPS_VALGRIND 60
#define BITMAP_BITS (1u << 20)
#define SCAN_CHUNK (1u << 20)
#define HUGE_MAPPING (64ull << 30) /* sanitizer shadow reservations */
#define HITS_MAX 32

enum needle_phase {
    PHASE_ALWAYS = 0, /* must be found nowhere, ever */
    PHASE_AFTER_FREE, /* the local share: absent only once the combiner is freed */
};

struct needle {
    char name[48];
    enum needle_phase phase;
    uint8_t mask[NEEDLE_LEN];
    uint8_t masked[NEEDLE_LEN]; /* value ^ mask */
};

struct hit {
    size_t needle;
    uintptr_t addr;
    char where[80];
};

struct scan_report {
    uint64_t bytes;
    uint64_t unreadable;
    uint64_t huge_skipped;
    uint64_t untouched; /* pages never touched: they read as zeros */
    size_t mappings;
    bool saw_heap;
    bool saw_stack;
    size_t num_hits;
    struct hit hits[HITS_MAX];
};

static struct needle needles[NEEDLES_MAX];
static size_t num_needles;
static uint64_t pf_key;  /* odd multiplier of the prefilter bijection */
static uint64_t pf_xor;  /* and its XOR key */
static uint8_t *bitmap;  /* BITMAP_BITS bits */
static uint8_t *scanbuf; /* mmap'd, skipped by the scan */
static size_t scanbuf_len;
static bool under_valgrind;

/* ---- needles ---------------------------------------------------------------------- */

static uint64_t pf_hash(uint64_t w)
{
    return (w ^ pf_xor) * pf_key;
}

static void bitmap_set(uint64_t h)
{
    uint32_t bit = (uint32_t)(h >> 44);

    bitmap[bit >> 3] |= (uint8_t)(1u << (bit & 7));
}

static bool bitmap_test(uint64_t h)
{
    uint32_t bit = (uint32_t)(h >> 44);

    return (bitmap[bit >> 3] >> (bit & 7)) & 1;
}

/*
 * needle_add_window records the NEEDLE_LEN bytes at |src| (big-endian) and
 * their reversal (little-endian limbs) as two masked needles.
 */
__attribute__((noinline)) static void needle_add_window(const char *name, enum needle_phase phase,
                                                        const uint8_t *src)
{
    for (int le = 0; le < 2; le++) {
        struct needle *nd;
        uint64_t w;

        assert_true(num_needles < NEEDLES_MAX);
        nd = &needles[num_needles++];
        snprintf(nd->name, sizeof(nd->name), "%s %s", name, le ? "LE" : "BE");
        nd->phase = phase;
        randombytes_buf(nd->mask, NEEDLE_LEN);
        for (size_t i = 0; i < NEEDLE_LEN; i++) {
            uint8_t b = le ? src[NEEDLE_LEN - 1 - i] : src[i];

            nd->masked[i] = b ^ nd->mask[i];
        }
        /* The prefilter word is rebuilt from the masked form, in a register. */
        w = 0;
        for (size_t i = 0; i < 8; i++) {
            w |= (uint64_t)(nd->masked[i] ^ nd->mask[i]) << (8 * i);
        }
        bitmap_set(pf_hash(w));
        w = 0;
    }
}

/*
 * needle_add_value: WINDOWS_PER_VALUE windows of the value |v| (|len| bytes,
 * big-endian, maybe left-padded with zeros, which are skipped).
 */
static void needle_add_value(const char *name, enum needle_phase phase, const uint8_t *v,
                             size_t len)
{
    size_t start = 0;

    while (start < len && v[start] == 0) {
        start++;
    }
    assert_true(len - start >= 4 * NEEDLE_LEN);
    for (size_t w = 1; w <= WINDOWS_PER_VALUE; w++) {
        size_t mid = start + (len - start) * w / (WINDOWS_PER_VALUE + 1);
        char wname[40];

        snprintf(wname, sizeof(wname), "%s@%zu/%d", name, w, WINDOWS_PER_VALUE + 1);
        needle_add_window(wname, phase, v + mid - NEEDLE_LEN / 2);
    }
}

/* ---- the scanner -------------------------------------------------------------------- */

static bool needle_at(const struct needle *nd, const uint8_t *p)
{
    uint8_t diff = 0;

    for (size_t i = 0; i < NEEDLE_LEN; i++) {
        diff |= (uint8_t)((p[i] ^ nd->mask[i]) ^ nd->masked[i]);
    }
    return diff == 0;
}

static void report_hit(struct scan_report *rep, size_t ni, uintptr_t addr, const char *where)
{
    if (rep->num_hits < HITS_MAX) {
        struct hit *h = &rep->hits[rep->num_hits];

        h->needle = ni;
        h->addr = addr;
        snprintf(h->where, sizeof(h->where), "%s", where);
    }
    rep->num_hits++;
}

/* scan_bytes looks for the needles of |phase_max| or below in |len| bytes read from |addr|. */
static void scan_bytes(struct scan_report *rep, const uint8_t *buf, size_t len, uintptr_t addr,
                       enum needle_phase phase_max, const char *where)
{
    if (len < NEEDLE_LEN) {
        return;
    }
    for (size_t off = 0; off + NEEDLE_LEN <= len; off++) {
        uint64_t w;

        memcpy(&w, buf + off, sizeof(w));
        if (!bitmap_test(pf_hash(w))) {
            continue;
        }
        for (size_t ni = 0; ni < num_needles; ni++) {
            if (needles[ni].phase <= phase_max && needle_at(&needles[ni], buf + off)) {
                report_hit(rep, ni, addr + off, where);
            }
        }
    }
}

/* chunk_untouched: /proc/self/pagemap (|pagemap_fd|) says that no page of
 * [a, a + len) was ever touched (neither present nor swapped out), so that
 * all of it reads as zeros. False when that cannot be told. */
static bool chunk_untouched(int pagemap_fd, uintptr_t a, size_t len)
{
    uint64_t entries[SCAN_CHUNK / 4096];
    size_t first = a / 4096, num = (a + len + 4095) / 4096 - first;

    if (pagemap_fd < 0 || num > sizeof(entries) / sizeof(entries[0]) ||
        pread(pagemap_fd, entries, num * 8, (off_t)(first * 8)) != (ssize_t)(num * 8)) {
        return false;
    }
    for (size_t i = 0; i < num; i++) {
        if ((entries[i] >> 62) != 0) { /* bit 63 present, bit 62 swapped */
            return false;
        }
    }
    return true;
}

/* scan_range reads [start, end) of our own memory through |fd| in chunks, page by page where a
 * chunk fails. A chunk never touched (an anonymous mapping's, |pagemap_fd| >= 0) is not read:
 * it is scanned as the zeros it holds. A sanitizer build reserves gigabytes that way. */
static void scan_range(struct scan_report *rep, int fd, int pagemap_fd, uintptr_t start,
                       uintptr_t end, enum needle_phase phase_max, const char *where)
{
    const size_t carry_max = NEEDLE_LEN - 1;
    size_t carry = 0;
    uintptr_t a = start;

    while (a < end) {
        size_t want = end - a < SCAN_CHUNK ? end - a : SCAN_CHUNK;
        ssize_t got;

        if (chunk_untouched(pagemap_fd, a, want)) {
            /* What the carry holds, then zeros: as if the zeros were read. */
            memset(scanbuf + carry, 0, carry_max);
            scan_bytes(rep, scanbuf, carry + carry_max, a - carry, phase_max, where);
            memset(scanbuf, 0, carry_max);
            carry = carry_max;
            rep->untouched += want;
            a += want;
            continue;
        }
        got = pread(fd, scanbuf + carry, want, (off_t)a);
        if (got == (ssize_t)want) {
            scan_bytes(rep, scanbuf, carry + want, a - carry, phase_max, where);
            rep->bytes += want;
            a += want;
        } else {
            /* Page by page through this chunk; a page that fails breaks the run. */
            uintptr_t stop = a + want;

            while (a < stop) {
                size_t pw = 4096 - (a & 4095);

                pw = pw < stop - a ? pw : stop - a;
                got = pread(fd, scanbuf + carry, pw, (off_t)a);
                if (got == (ssize_t)pw) {
                    scan_bytes(rep, scanbuf, carry + pw, a - carry, phase_max, where);
                    rep->bytes += pw;
                    memmove(scanbuf, scanbuf + carry + pw - carry_max, carry_max);
                    carry = carry_max;
                } else {
                    rep->unreadable += pw;
                    carry = 0;
                }
                a += pw;
            }
            continue;
        }
        memmove(scanbuf, scanbuf + carry + want - carry_max, carry_max);
        carry = carry_max;
    }
}

/*
 * scan_memory reads every readable mapping in /proc/self/maps except the
 * scanner's own buffer, [vvar] and [vsyscall], and records the needles of
 * |phase_max| or below that it finds.
 */
static void scan_memory(struct scan_report *rep, enum needle_phase phase_max)
{
    static char lines[4096][160];
    size_t num_lines = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    int fd = open("/proc/self/mem", O_RDONLY);
    int pagemap_fd = open("/proc/self/pagemap", O_RDONLY);

    memset(rep, 0, sizeof(*rep));
    assert_non_null(maps);
    assert_true(fd >= 0);
    /* Read the whole list first: scanning allocates nothing, but fgets does. */
    while (num_lines < sizeof(lines) / sizeof(lines[0]) &&
           fgets(lines[num_lines], sizeof(lines[0]), maps) != NULL) {
        size_t l = strlen(lines[num_lines]);

        if (l > 0 && lines[num_lines][l - 1] != '\n' && !feof(maps)) {
            /* A long path: drop the rest of the line. */
            int ch;

            while ((ch = fgetc(maps)) != EOF && ch != '\n') {
            }
        }
        num_lines++;
    }
    fclose(maps);
    assert_true(num_lines < sizeof(lines) / sizeof(lines[0]));

    for (size_t i = 0; i < num_lines; i++) {
        unsigned long long start, end;
        char perms[8] = "";
        char name[128] = "";
        int n = sscanf(lines[i], "%llx-%llx %7s %*s %*s %*s %127[^\n]", &start, &end, perms, name);

        assert_true(n >= 3);
        if (perms[0] != 'r' || strcmp(name, "[vvar]") == 0 || strcmp(name, "[vsyscall]") == 0) {
            continue;
        }
        if ((uintptr_t)start <= (uintptr_t)scanbuf && (uintptr_t)scanbuf < (uintptr_t)end) {
            /* Our own buffer: it holds copies of whatever was scanned last. Scan around it. */
            scan_range(rep, fd, -1, (uintptr_t)start, (uintptr_t)scanbuf, phase_max, name);
            scan_range(rep, fd, -1, (uintptr_t)scanbuf + scanbuf_len, (uintptr_t)end, phase_max,
                       name);
            rep->mappings++;
            continue;
        }
        if (end - start >= HUGE_MAPPING) {
            rep->huge_skipped += end - start;
            continue;
        }
        rep->saw_heap |= strcmp(name, "[heap]") == 0;
        rep->saw_stack |= strcmp(name, "[stack]") == 0;
        /* A file's page never touched here reads as the file, not as zeros. */
        scan_range(rep, fd, name[0] == '/' ? -1 : pagemap_fd, (uintptr_t)start, (uintptr_t)end,
                   phase_max, name[0] != '\0' ? name : "[anon]");
        rep->mappings++;
    }
    if (pagemap_fd >= 0) {
        close(pagemap_fd);
    }
    close(fd);
}

static void print_report(const char *what, const struct scan_report *rep)
{
    printf("%s: %zu needles, %zu mappings, %.1f MiB scanned, %.1f MiB unreadable, "
           "%.1f GiB of sanitizer reservations skipped, %.1f MiB never touched, %zu hits\n",
           what, num_needles, rep->mappings, (double)rep->bytes / (1 << 20),
           (double)rep->unreadable / (1 << 20), (double)rep->huge_skipped / (1 << 30),
           (double)rep->untouched / (1 << 20), rep->num_hits);
    for (size_t i = 0; i < rep->num_hits && i < HITS_MAX; i++) {
        printf("  FOUND %s at %#lx in %s\n", needles[rep->hits[i].needle].name,
               (unsigned long)rep->hits[i].addr, rep->hits[i].where);
    }
    fflush(stdout);
}

static bool report_has(const struct scan_report *rep, size_t ni, const void *addr)
{
    for (size_t i = 0; i < rep->num_hits && i < HITS_MAX; i++) {
        if (rep->hits[i].needle == ni && rep->hits[i].addr == (uintptr_t)addr) {
            return true;
        }
    }
    return false;
}

/* ---- the key, its split and the needles ------------------------------------------------ */

static struct proto_holder_secret *holder_sk[HOLDERS];
static struct proto_holder_pub holder_pk[HOLDERS];
static struct proto_record *rec;
static struct proto_share_file *shares;

/*
 * make_needles loads rsa2048.pem, records p, q, dp, dq, qinv (from the tuple
 * keysplit exports) and d, splits the key 2-of-3, and records every share's
 * y values; every buffer that held a value is locked memory and is freed
 * (wiped) here.
 */
__attribute__((noinline)) static void make_needles(void)
{
    static const char *const names[SPLIT_NUM_SECRETS] = {"p", "q", "dp", "dq", "qinv"};
    struct split_rsa_key key;
    struct split_field f;
    char why[SPLIT_WHY_MAX];
    uint8_t *tuple, *d_bin, *y;
    BIGNUM *d = NULL;
    size_t tlen;
    int d_len;

    assert_int_equal(
        split_rsa_key_load(&key, testutil_data_path("rsa2048.pem"), NULL, why, sizeof(why)), 0);
    assert_int_equal(split_field_for_primes(&f, key.prime_bits), 0);
    tlen = split_tuple_len(&f);
    tuple = spk_secret_new(tlen);
    d_bin = spk_secret_new(PROTO_BN_MAX);
    y = spk_secret_new(tlen);
    assert_non_null(tuple);
    assert_non_null(d_bin);
    assert_non_null(y);

    assert_int_equal(split_rsa_tuple_export(tuple, &f, &key), 0);
    for (size_t j = 0; j < SPLIT_NUM_SECRETS; j++) {
        needle_add_value(names[j], PHASE_ALWAYS, tuple + j * f.y_len, f.y_len);
    }
    assert_int_equal(EVP_PKEY_get_bn_param(key.pkey, OSSL_PKEY_PARAM_RSA_D, &d), 1);
    d_len = BN_bn2bin(d, d_bin);
    assert_true(d_len > 0);
    BN_clear_free(d);
    needle_add_value("d", PHASE_ALWAYS, d_bin, (size_t)d_len);

    assert_int_equal(
        split_key_split(rec, shares, &key, THRESHOLD, holder_pk, HOLDERS, why, sizeof(why)), 0);
    for (size_t i = 0; i < HOLDERS; i++) {
        assert_int_equal(split_share_open(y, tlen, &shares[i], holder_sk[i]), 0);
        for (size_t j = 0; j < SPLIT_NUM_SECRETS; j++) {
            char name[32];

            snprintf(name, sizeof(name), "share%u.y%zu", shares[i].index, j + 1);
            needle_add_value(name, i == 0 ? PHASE_AFTER_FREE : PHASE_ALWAYS, y + j * f.y_len,
                             f.y_len);
        }
    }
    split_rsa_key_cleanup(&key);
    spk_secret_free(tuple);
    spk_secret_free(d_bin);
    spk_secret_free(y);
}

/* ---- the operations --------------------------------------------------------------------- */

struct async_state {
    size_t done;
    size_t good;
    const uint8_t *digest;
    EVP_PKEY *pub;
    struct scan_report *scan; /* if set: scan from the first callback */
    size_t scan_hits;
};

static bool verify_sig(EVP_PKEY *pub, bool pss, const uint8_t *sig, size_t sig_len,
                       const uint8_t *digest)
{
    EVP_PKEY_CTX *vctx = EVP_PKEY_CTX_new(pub, NULL);
    bool ok =
        vctx != NULL && EVP_PKEY_verify_init(vctx) == 1 &&
        EVP_PKEY_CTX_set_rsa_padding(vctx, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) == 1 &&
        EVP_PKEY_CTX_set_signature_md(vctx, EVP_sha256()) == 1 &&
        (!pss || EVP_PKEY_CTX_set_rsa_pss_saltlen(vctx, RSA_PSS_SALTLEN_DIGEST) == 1) &&
        EVP_PKEY_verify(vctx, sig, sig_len, digest, 32) == 1;

    EVP_PKEY_CTX_free(vctx);
    return ok;
}

static void async_done(void *arg, const struct comb_result *res)
{
    struct async_state *st = arg;

    if (st->scan != NULL && st->done == 0) {
        /*
         * Inside a completion callback: the batch's key was rebuilt, used and
         * must already be wiped, with the results still to be handed out.
         */
        scan_memory(st->scan, PHASE_ALWAYS);
        print_report("inside a completion callback", st->scan);
        st->scan_hits = st->scan->num_hits;
    }
    st->done++;
    if (res->status == 0 && verify_sig(st->pub, false, res->out, res->out_len, st->digest)) {
        st->good++;
    }
}

/*
 * run_ops: |ops| operations, a third each PKCS#1 v1.5 and PSS signatures
 * (SHA-256) and TLS premaster decryptions; every 50th step queues a small
 * batch asynchronously; the last fifth runs with holder-a first failing,
 * then serving corrupted shares (it answers first, so its bad share is
 * received and dropped before holder-b's is used): the error paths run too.
 */
static void run_ops(struct comb_ctx *c, struct comb_file_source *fs_a, EVP_PKEY *pub, size_t ops)
{
    const uint8_t *key_id = rec->key_id;
    size_t n_len = rec->modulus_len;
    size_t good = 0;

    for (size_t i = 0; i < ops; i++) {
        uint8_t digest[32];
        uint8_t out[PROTO_BN_MAX];
        size_t out_len = 0;

        if (i == ops * 8 / 10) {
            comb_file_source_set_fault(fs_a, COMB_FAULT_FAIL);
        } else if (i == ops * 9 / 10) {
            comb_file_source_set_fault(fs_a, COMB_FAULT_CORRUPT_Y);
        }
        randombytes_buf(digest, sizeof(digest));
        if (i % 50 == 49) {
            struct async_state st = {0, 0, digest, pub, NULL, 0};

            if (i == 49 && !under_valgrind) {
                st.scan = calloc(1, sizeof(*st.scan));
                assert_non_null(st.scan);
            }

            for (size_t j = 0; j < 4; j++) {
                assert_int_equal(comb_sign(c, NULL, key_id, COMB_ALG_PKCS1_SHA256, digest,
                                           sizeof(digest), async_done, &st),
                                 0);
            }
            assert_int_equal(comb_wait(c, 10000), 0);
            assert_int_equal(st.done, 4);
            assert_int_equal(st.good, 4);
            if (st.scan != NULL) {
                assert_true(st.scan->bytes > 0);
                assert_int_equal(st.scan_hits, 0);
                free(st.scan);
            }
            good++;
            continue;
        }
        switch (i % 3) {
        case 0:
        case 1: {
            bool pss = i % 3 == 1;

            assert_int_equal(comb_sign_sync(c, out, sizeof(out), &out_len, key_id,
                                            pss ? COMB_ALG_PSS_SHA256 : COMB_ALG_PKCS1_SHA256,
                                            digest, sizeof(digest)),
                             0);
            assert_int_equal(out_len, n_len);
            assert_true(verify_sig(pub, pss, out, out_len, digest));
            break;
        }
        default: {
            uint8_t pms[TLS_PREMASTER_LEN];
            uint8_t ct[PROTO_BN_MAX];
            size_t ct_len = sizeof(ct);
            EVP_PKEY_CTX *ectx = EVP_PKEY_CTX_new(pub, NULL);
            struct comb_decrypt_params params = {.tls_version = 0x0303};

            randombytes_buf(pms, sizeof(pms));
            pms[0] = 0x03;
            pms[1] = 0x03;
            assert_non_null(ectx);
            assert_int_equal(EVP_PKEY_encrypt_init(ectx), 1);
            assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ectx, RSA_PKCS1_PADDING), 1);
            assert_int_equal(EVP_PKEY_encrypt(ectx, ct, &ct_len, pms, sizeof(pms)), 1);
            EVP_PKEY_CTX_free(ectx);
            if (i % 100 == 2) {
                /* A bad ciphertext: 48 random bytes, not the premaster. */
                ct[ct_len / 2] ^= 1;
            }
            assert_int_equal(comb_decrypt_sync(c, out, sizeof(out), &out_len, key_id,
                                               COMB_ALG_DECRYPT_TLS, ct, ct_len, &params),
                             0);
            assert_int_equal(out_len, TLS_PREMASTER_LEN);
            if (i % 100 == 2) {
                assert_true(memcmp(out, pms, sizeof(pms)) != 0);
            } else {
                assert_true(memcmp(out, pms, sizeof(pms)) == 0);
            }
            sodium_memzero(pms, sizeof(pms));
            break;
        }
        }
        sodium_memzero(out, sizeof(out));
        good++;
    }
    assert_int_equal(good, ops);
}

/* ---- the test ------------------------------------------------------------------------------ */

/* plant_and_scan plants needle |ni| in the clear at |at| and scans; wipes it after. */
__attribute__((noinline)) static void plant(uint8_t *at, size_t ni)
{
    for (size_t i = 0; i < NEEDLE_LEN; i++) {
        at[i] = needles[ni].masked[i] ^ needles[ni].mask[i];
    }
}

__attribute__((noinline)) static void self_check(void)
{
    uint8_t on_stack[64];
    uint8_t *on_heap = malloc(64);
    struct scan_report *rep = calloc(1, sizeof(*rep));
    size_t ni_heap = 0;
    size_t ni_stack = num_needles - 1;

    assert_non_null(on_heap);
    assert_non_null(rep);
    plant(on_heap + 8, ni_heap);
    plant(on_stack + 24, ni_stack);
    scan_memory(rep, PHASE_AFTER_FREE);
    print_report("self-check (two needles planted)", rep);
    assert_true(report_has(rep, ni_heap, on_heap + 8));
    assert_true(report_has(rep, ni_stack, on_stack + 24));
    /* (Under ASan or valgrind malloc's memory is an anonymous map, not [heap]: the
     * planted heap needle is what shows that the heap is read.) */
    assert_true(rep->saw_stack);
    sodium_memzero(on_heap, 64);
    sodium_memzero(on_stack, sizeof(on_stack));
    free(on_heap);
    free(rep);
}

static void test_nothing_left_behind(void **state)
{
    struct comb_ctx *c;
    struct comb_file_source *fs[HOLDERS] = {NULL};
    struct scan_report *rep = calloc(1, sizeof(*rep));
    EVP_PKEY *pub = NULL;
    size_t ops = under_valgrind ? OPS_VALGRIND : OPS;
    struct comb_stats st;

    (void)state;
    assert_non_null(rep);
    make_needles();
    /* make_needles' frames are below ours: clear them, they were the test's, not the combiner's. */
    spk_stack_wipe(65536);
    printf("%zu needles (%d-byte windows, BE and LE, %d per value)\n", num_needles, NEEDLE_LEN,
           WINDOWS_PER_VALUE);
    self_check();

    assert_int_equal(split_rsa_pkey_public(&pub, rec->modulus, rec->modulus_len, rec->exponent,
                                           rec->exponent_len),
                     0);
    c = comb_new(NULL);
    assert_non_null(c);
    assert_int_equal(comb_add_key(c, rec, &shares[0], holder_sk[0]), 0);
    for (size_t i = 1; i < HOLDERS; i++) {
        fs[i] = comb_file_source_new(holder_sk[i]);
        assert_non_null(fs[i]);
        /* Opened per request, as a share arriving from a remote holder would be. */
        assert_int_equal(comb_file_source_add_share(fs[i], &shares[i], false), 0);
        assert_int_equal(comb_add_file_source(c, NULL, NULL, fs[i]), 0);
    }
    run_ops(c, fs[1], pub, ops);
    comb_stats_get(c, &st);
    printf("%zu operations: ok %llu, failed %llu, batches %llu, shares good %llu bad %llu "
           "error %llu, key lifetime p50 %.0f us p99 %.0f us\n",
           ops, (unsigned long long)st.ops_ok, (unsigned long long)st.ops_failed,
           (unsigned long long)st.batches, (unsigned long long)st.shares_good,
           (unsigned long long)st.shares_bad, (unsigned long long)st.shares_error,
           st.lifetime.p50_us, st.lifetime.p99_us);
    assert_true(st.shares_bad > 0);

    scan_memory(rep, PHASE_ALWAYS);
    print_report("after the operations, combiner alive", rep);
    assert_int_equal(rep->num_hits, 0);
    assert_true(rep->bytes > (1u << 20));

    comb_free(c);
    scan_memory(rep, PHASE_AFTER_FREE);
    print_report("after comb_free, local share included", rep);
    assert_int_equal(rep->num_hits, 0);

    EVP_PKEY_free(pub);
    free(rep);
}

static int setup(void **state)
{
    static const char *const names[HOLDERS] = {"edge", "holder-a", "holder-b"};

    (void)state;
    bitmap = calloc(BITMAP_BITS / 8, 1);
    rec = calloc(1, sizeof(*rec));
    shares = calloc(HOLDERS, sizeof(*shares));
    assert_non_null(bitmap);
    assert_non_null(rec);
    assert_non_null(shares);
    scanbuf_len = SCAN_CHUNK + NEEDLE_LEN;
    scanbuf = mmap(NULL, scanbuf_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(scanbuf != MAP_FAILED);
    randombytes_buf(&pf_key, sizeof(pf_key));
    randombytes_buf(&pf_xor, sizeof(pf_xor));
    pf_key |= 1;
    for (size_t i = 0; i < HOLDERS; i++) {
        holder_sk[i] = spk_secret_new(sizeof(*holder_sk[i]));
        assert_non_null(holder_sk[i]);
        assert_int_equal(split_holder_keygen(holder_sk[i], names[i]), 0);
        holder_pk[i] = holder_sk[i]->pub;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < HOLDERS; i++) {
        spk_secret_free(holder_sk[i]);
    }
    munmap(scanbuf, scanbuf_len);
    free(bitmap);
    free(rec);
    free(shares);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_left_behind),
    };

    if (spk_mem_init() != 0) {
        fprintf(stderr, "spk_mem_init failed\n");
        return 1;
    }
    under_valgrind = testutil_under_valgrind();
    return cmocka_run_group_tests(tests, setup, teardown);
}
