/*
 * bench_memscan_pid: looks for secrets in another process's memory, for the
 * edge's integration tests (run as root: the daemons are not dumpable).
 *
 *   bench_memscan_pid mask LABEL-PREFIX < "NAME HEX" lines  >> NEEDLES
 *       turns secrets given in hex (colons and blanks ignored, as
 *       `openssl rsa -text` prints them) into masked needle lines;
 *   bench_memscan_pid share LABEL SHARE-FILE HOLDER-KEY  >> NEEDLES
 *       opens a share file and writes its five y values as masked needles
 *       (LABEL.y1 .. LABEL.y5); for a threshold-mode share, its key share
 *       s_i (LABEL.s) and the exponent 2 Delta s_i a signer keeps instead
 *       (LABEL.e, Delta = n!);
 *   bench_memscan_pid scan PID NEEDLES [WINDOW]
 *       reads every resident page of PID (also PROT_NONE ones) (/proc/PID/smaps,
 *       /proc/PID/pagemap, /proc/PID/mem) and looks for any WINDOW-byte
 *       (default 16) piece of each needle, in four encodings: big-endian
 *       bytes, little-endian limb order (the bytes reversed, as GMP and
 *       OpenSSL keep numbers on x86-64), and lower- and upper-case hex.
 *       Prints one line per needle and encoding found and a summary; exit
 *       status 0: none found, 1: found, 2: could not scan;
 *   bench_memscan_pid selftest
 *       plants a random needle in a child process in three encodings (the
 *       hex one in a PROT_NONE page), scans
 *       it through a needle file, and must find each encoding, must not find
 *       a needle the child never had, and must not find the planted one once
 *       the child has wiped it.
 *
 * Needle lines are "needle LABEL MASK-HEX MASKED-HEX" (MASKED = value XOR
 * MASK), so the file and this program's arguments never hold a secret in
 * the clear; the scanner unmasks in its own memory only.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <sodium.h>

#include "proto/proto.h"
#include "split/split.h"
#include "split/split_rsa.h"
#include "base/base.h"

#define MS_NEEDLE_MAX 4096 /* bytes of one needle */
#define MS_NEEDLES_MAX 256
#define MS_LINE_MAX (4 * MS_NEEDLE_MAX + 512)
#define MS_CHUNK (1u << 20)
#define MS_REGION_MAX (64ull << 30) /* larger resident mappings are sanitizer shadow */
#define MS_ENC_NUM 4

static const char *const ms_enc_names[MS_ENC_NUM] = {"be", "le", "hex", "HEX"};

struct ms_needle {
    char label[128];
    uint8_t *enc[MS_ENC_NUM]; /* the needle in each encoding */
    size_t enc_len[MS_ENC_NUM];
    uint64_t hits[MS_ENC_NUM];
    uint64_t first_addr[MS_ENC_NUM];
};

struct ms_slot {
    uint64_t key; /* the window's first 8 bytes */
    uint32_t needle;
    uint16_t enc;
    uint16_t used;
    uint32_t off;
};

struct ms_set {
    struct ms_needle needles[MS_NEEDLES_MAX];
    size_t num;
    size_t window;
    struct ms_slot *slots;
    size_t mask; /* number of slots - 1 */
    uint64_t bytes_scanned;
    uint64_t regions, skipped;
};

static int ms_hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* ms_hex_decode: hex digits, skipping ':' and blanks. -1 on anything else. */
static long ms_hex_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;

    for (; *s != '\0' && *s != '\n'; s++) {
        int v;
        if (*s == ':' || *s == ' ' || *s == '\t' || *s == '\r') {
            continue;
        }
        if ((v = ms_hexval((unsigned char)*s)) < 0) {
            return -1;
        }
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == cap) {
            return -1;
        }
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    return hi < 0 ? (long)n : -1;
}

static void ms_hex_print(FILE *f, const uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        fprintf(f, "%02x", p[i]);
    }
}

/* ms_write_needle writes one masked needle line for |val|. */
static int ms_write_needle(FILE *f, const char *label, const uint8_t *val, size_t len)
{
    uint8_t mask[MS_NEEDLE_MAX];
    uint8_t masked[MS_NEEDLE_MAX];
    size_t i;

    if (len == 0 || len > MS_NEEDLE_MAX) {
        return -1;
    }
    randombytes_buf(mask, len);
    for (i = 0; i < len; i++) {
        masked[i] = val[i] ^ mask[i];
    }
    fprintf(f, "needle %s ", label);
    ms_hex_print(f, mask, len);
    fputc(' ', f);
    ms_hex_print(f, masked, len);
    fputc('\n', f);
    return 0;
}

static int ms_cmd_mask(const char *prefix)
{
    static char line[MS_LINE_MAX];
    static uint8_t val[MS_NEEDLE_MAX];
    int ret = 0;

    while (fgets(line, sizeof(line), stdin) != NULL) {
        char label[128];
        char *sp = strchr(line, ' ');
        long n;
        if (sp == NULL) {
            continue;
        }
        *sp = '\0';
        n = ms_hex_decode(sp + 1, val, sizeof(val));
        if (strlen(prefix) + strlen(line) >= sizeof(label)) {
            fprintf(stderr, "bench_memscan_pid: mask: name too long\n");
            ret = 2;
            continue;
        }
        memcpy(label, prefix, strlen(prefix));
        memcpy(label + strlen(prefix), line, strlen(line) + 1);
        if (n <= 0 || ms_write_needle(stdout, label, val, (size_t)n) != 0) {
            fprintf(stderr, "bench_memscan_pid: mask: bad value for %s\n", label);
            ret = 2;
        }
        sodium_memzero(val, sizeof(val));
    }
    sodium_memzero(line, sizeof(line));
    return ret;
}

/* ms_write_tss_needles writes the key share |s| of a threshold-mode share
 * of |num_shares| and the exponent 2 * num_shares! * s that
 * split_tss_signer_new derives from it. */
static int ms_write_tss_needles(const char *label, const uint8_t *s, size_t s_len,
                                unsigned num_shares)
{
    char name[160];
    BIGNUM *e = BN_secure_new();
    uint8_t *buf = spk_secret_new(PROTO_BN_MAX + 256);
    int len, ret = -1;

    snprintf(name, sizeof(name), "%s.s", label);
    if (e == NULL || buf == NULL || ms_write_needle(stdout, name, s, s_len) != 0 ||
        BN_bin2bn(s, (int)s_len, e) == NULL) {
        goto out;
    }
    for (unsigned i = 2; i <= num_shares; i++) {
        if (BN_mul_word(e, i) != 1) {
            goto out;
        }
    }
    if (BN_lshift1(e, e) != 1 || (len = BN_num_bytes(e)) > PROTO_BN_MAX + 256 ||
        BN_bn2bin(e, buf) != len) {
        goto out;
    }
    snprintf(name, sizeof(name), "%s.e", label);
    ret = ms_write_needle(stdout, name, buf, (size_t)len);
out:
    BN_clear_free(e);
    spk_secret_free(buf);
    return ret;
}

static int ms_cmd_share(const char *label, const char *share_path, const char *key_path)
{
    static struct proto_share_file sf;
    struct proto_holder_secret *key = NULL;
    char why[PROTO_PATH_WHY_MAX];
    uint8_t *y = NULL;
    size_t y_len, i;
    int ret = 2;
    int r;

    if (proto_share_file_load(&sf, share_path, why, sizeof(why)) != 0) {
        fprintf(stderr, "bench_memscan_pid: %s\n", why);
        goto out;
    }
    if ((r = split_holder_secret_load(&key, key_path)) != 0) {
        fprintf(stderr, "bench_memscan_pid: %s: %s\n", key_path, spk_strerror(r));
        goto out;
    }
    if (sf.mode == PROTO_MODE_THRESHOLD) {
        /* The sealed key share is as long as the modulus. */
        y_len = sf.sealed_len - crypto_box_SEALBYTES;
        y = spk_secret_new(y_len);
        if (y == NULL || (r = split_share_open(y, y_len, &sf, key)) != 0 ||
            ms_write_tss_needles(label, y, y_len, sf.num_shares) != 0) {
            fprintf(stderr, "bench_memscan_pid: %s does not open\n", share_path);
            goto out;
        }
        ret = 0;
        goto out;
    }
    y_len = proto_field_y_len(sf.field_bits);
    y = spk_secret_new(PROTO_NUM_SECRETS * y_len);
    if (y == NULL || (r = split_share_open(y, PROTO_NUM_SECRETS * y_len, &sf, key)) != 0) {
        fprintf(stderr, "bench_memscan_pid: %s does not open\n", share_path);
        goto out;
    }
    for (i = 0; i < PROTO_NUM_SECRETS; i++) {
        char name[160];
        snprintf(name, sizeof(name), "%s.y%zu", label, i + 1);
        if (ms_write_needle(stdout, name, y + i * y_len, y_len) != 0) {
            goto out;
        }
    }
    ret = 0;
out:
    spk_secret_free(y);
    spk_secret_free(key);
    return ret;
}

/* ---- the needle set ------------------------------------------------------------ */

static uint64_t ms_load64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static size_t ms_hash(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & mask;
}

/* ms_add_value adds a needle (big-endian bytes, leading zeros dropped). */
static int ms_add_value(struct ms_set *set, const char *label, const uint8_t *val, size_t len)
{
    struct ms_needle *nd;
    size_t i;

    while (len > 0 && val[0] == 0) {
        val++;
        len--;
    }
    if (set->num == MS_NEEDLES_MAX || len < set->window) {
        fprintf(stderr, "bench_memscan_pid: needle %s: too many or too short\n", label);
        return -1;
    }
    nd = &set->needles[set->num];
    snprintf(nd->label, sizeof(nd->label), "%s", label);
    nd->enc_len[0] = nd->enc_len[1] = len;
    nd->enc_len[2] = nd->enc_len[3] = 2 * len;
    for (i = 0; i < MS_ENC_NUM; i++) {
        nd->enc[i] = malloc(nd->enc_len[i]);
        if (nd->enc[i] == NULL) {
            return -1;
        }
    }
    for (i = 0; i < len; i++) {
        static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
        nd->enc[0][i] = val[i];
        nd->enc[1][len - 1 - i] = val[i];
        nd->enc[2][2 * i] = (uint8_t)lo[val[i] >> 4];
        nd->enc[2][2 * i + 1] = (uint8_t)lo[val[i] & 15];
        nd->enc[3][2 * i] = (uint8_t)up[val[i] >> 4];
        nd->enc[3][2 * i + 1] = (uint8_t)up[val[i] & 15];
    }
    set->num++;
    return 0;
}

static int ms_load_needles(struct ms_set *set, const char *path)
{
    static char line[MS_LINE_MAX];
    static uint8_t mask[MS_NEEDLE_MAX], val[MS_NEEDLE_MAX];
    FILE *f = fopen(path, "r");
    int ret = 0;

    if (f == NULL) {
        fprintf(stderr, "bench_memscan_pid: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (ret == 0 && fgets(line, sizeof(line), f) != NULL) {
        char label[128];
        char *p = line, *q;
        long ml, vl;
        size_t i;
        if (strncmp(p, "needle ", 7) != 0) {
            continue;
        }
        p += 7;
        q = strchr(p, ' ');
        if (q == NULL || (size_t)(q - p) >= sizeof(label)) {
            ret = -1;
            break;
        }
        memcpy(label, p, (size_t)(q - p));
        label[q - p] = '\0';
        p = q + 1;
        q = strchr(p, ' ');
        if (q == NULL) {
            ret = -1;
            break;
        }
        *q = '\0';
        ml = ms_hex_decode(p, mask, sizeof(mask));
        vl = ms_hex_decode(q + 1, val, sizeof(val));
        if (ml <= 0 || ml != vl) {
            ret = -1;
            break;
        }
        for (i = 0; i < (size_t)vl; i++) {
            val[i] ^= mask[i];
        }
        if (ms_add_value(set, label, val, (size_t)vl) != 0) {
            ret = -1;
        }
        sodium_memzero(val, sizeof(val));
    }
    fclose(f);
    if (ret != 0) {
        fprintf(stderr, "bench_memscan_pid: %s: bad needle line\n", path);
    }
    return ret;
}

/* ms_build puts every window of every encoding of every needle in the table. */
static int ms_build(struct ms_set *set)
{
    size_t count = 0, cap = 1024, i, e, off;

    for (i = 0; i < set->num; i++) {
        for (e = 0; e < MS_ENC_NUM; e++) {
            count += set->needles[i].enc_len[e] - set->window + 1;
        }
    }
    while (cap < 4 * count) {
        cap *= 2;
    }
    set->slots = calloc(cap, sizeof(*set->slots));
    if (set->slots == NULL) {
        return -1;
    }
    set->mask = cap - 1;
    for (i = 0; i < set->num; i++) {
        for (e = 0; e < MS_ENC_NUM; e++) {
            const struct ms_needle *nd = &set->needles[i];
            for (off = 0; off + set->window <= nd->enc_len[e]; off++) {
                uint64_t key = ms_load64(nd->enc[e] + off);
                size_t h = ms_hash(key, set->mask);
                if (key == 0) {
                    fprintf(stderr, "bench_memscan_pid: %s: eight zero bytes\n", nd->label);
                    return -1;
                }
                while (set->slots[h].used) {
                    h = (h + 1) & set->mask;
                }
                set->slots[h] = (struct ms_slot){key, (uint32_t)i, (uint16_t)e, 1, (uint32_t)off};
            }
        }
    }
    return 0;
}

/* ms_scan_buf looks for windows in |buf|, whose first byte is at |addr|. */
static void ms_scan_buf(struct ms_set *set, const uint8_t *buf, size_t len, uint64_t addr)
{
    size_t i, w = set->window;

    if (len < w) {
        return;
    }
    for (i = 0; i + w <= len; i++) {
        uint64_t key = ms_load64(buf + i);
        size_t h;
        if (key == 0) {
            /* Most of a process (and all of a sanitizer's shadow) is zero;
             * no window of a needle starts with eight zero bytes. */
            continue;
        }
        h = ms_hash(key, set->mask);
        while (set->slots[h].used) {
            const struct ms_slot *s = &set->slots[h];
            if (s->key == key) {
                struct ms_needle *nd = &set->needles[s->needle];
                if (memcmp(nd->enc[s->enc] + s->off + 8, buf + i + 8, w - 8) == 0) {
                    if (nd->hits[s->enc]++ == 0) {
                        nd->first_addr[s->enc] = addr + i;
                    }
                    break;
                }
            }
            h = (h + 1) & set->mask;
        }
    }
}

/*
 * ms_scan_region reads the resident pages of [start, end) and scans them,
 * carrying window-1 bytes across chunks of contiguous pages.
 */
static void ms_scan_region(struct ms_set *set, int memfd, int mapfd, uint64_t start, uint64_t end,
                           uint8_t *buf)
{
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    size_t carry = 0;
    uint64_t next_addr = 0; /* the address after the bytes in the carry */
    uint64_t a = start;

    while (a < end) {
        uint64_t pm[256];
        size_t npages = (size_t)((end - a) / page), i;
        if (npages > 256) {
            npages = 256;
        }
        if (mapfd >= 0) {
            ssize_t n = pread(mapfd, pm, npages * 8, (off_t)(a / page * 8));
            if (n != (ssize_t)(npages * 8)) {
                for (i = 0; i < npages; i++) {
                    pm[i] = 1ull << 63; /* unknown: read it */
                }
            }
        } else {
            for (i = 0; i < npages; i++) {
                pm[i] = 1ull << 63;
            }
        }
        for (i = 0; i < npages;) {
            size_t j = i;
            if (!(pm[i] >> 62)) { /* neither present nor swapped: never touched */
                i++;
                carry = 0;
                continue;
            }
            while (j < npages && (pm[j] >> 62)) {
                j++;
            }
            {
                uint64_t ra = a + i * page;
                size_t want = (size_t)((j - i) * page);
                ssize_t n;
                if (next_addr != ra) {
                    carry = 0;
                }
                n = pread(memfd, buf + carry, want, (off_t)ra);
                if (n <= 0) {
                    carry = 0;
                    next_addr = 0;
                } else {
                    size_t total = carry + (size_t)n;
                    ms_scan_buf(set, buf, total, ra - carry);
                    set->bytes_scanned += (uint64_t)n;
                    carry = total < set->window - 1 ? total : set->window - 1;
                    memmove(buf, buf + total - carry, carry);
                    next_addr = ra + (uint64_t)n;
                }
            }
            i = j;
        }
        a += npages * page;
    }
}

static int ms_scan_pid(struct ms_set *set, pid_t pid)
{
    char path[64];
    char line[1024];
    FILE *maps;
    int memfd, mapfd;
    uint8_t *buf = malloc(256 * 4096 + 64);
    unsigned long long start = 0, end = 0;
    bool have = false;

    snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
    maps = fopen(path, "r");
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
    memfd = open(path, O_RDONLY);
    snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
    mapfd = open(path, O_RDONLY);
    if (maps == NULL || memfd < 0 || buf == NULL) {
        fprintf(stderr, "bench_memscan_pid: cannot read process %d: %s\n", (int)pid,
                strerror(errno));
        if (maps != NULL) {
            fclose(maps);
        }
        if (memfd >= 0) {
            close(memfd);
        }
        if (mapfd >= 0) {
            close(mapfd);
        }
        free(buf);
        return -1;
    }
    while (fgets(line, sizeof(line), maps) != NULL) {
        unsigned long long s, e, rss;
        char perms[8] = "";
        /*
         * Every mapping with resident pages, not only readable ones: secret
         * memory may be PROT_NONE while unused (spk_secret_noaccess), and
         * /proc/PID/mem reads it anyway. smaps' Rss skips the sanitizers'
         * vast reservations at once; within a mapping, the pagemap skips
         * pages never touched.
         */
        if (sscanf(line, "%llx-%llx %7s", &s, &e, perms) == 3) {
            have = !(strstr(line, "[vvar]") != NULL || strstr(line, "[vsyscall]") != NULL);
            start = s;
            end = e;
            continue;
        }
        if (!have || sscanf(line, "Rss: %llu kB", &rss) != 1) {
            continue;
        }
        have = false;
        if (rss == 0) {
            continue;
        }
        if (end - start > MS_REGION_MAX) {
            set->skipped++; /* a sanitizer's shadow: not the program's data */
            continue;
        }
        set->regions++;
        ms_scan_region(set, memfd, mapfd, start, end, buf);
    }
    fclose(maps);
    close(memfd);
    if (mapfd >= 0) {
        close(mapfd);
    }
    free(buf);
    return 0;
}

static size_t ms_report(const struct ms_set *set, FILE *out)
{
    size_t found = 0, i, e;

    for (i = 0; i < set->num; i++) {
        for (e = 0; e < MS_ENC_NUM; e++) {
            const struct ms_needle *nd = &set->needles[i];
            if (nd->hits[e] == 0) {
                continue;
            }
            found++;
            if (out != NULL) {
                fprintf(out, "FOUND %s (%s): %" PRIu64 " window(s), first at 0x%" PRIx64 "\n",
                        nd->label, ms_enc_names[e], nd->hits[e], nd->first_addr[e]);
            }
        }
    }
    return found;
}

static void ms_reset_hits(struct ms_set *set)
{
    size_t i;

    for (i = 0; i < set->num; i++) {
        memset(set->needles[i].hits, 0, sizeof(set->needles[i].hits));
    }
    set->bytes_scanned = set->regions = set->skipped = 0;
}

static struct ms_set *ms_set_new(size_t window)
{
    struct ms_set *set = calloc(1, sizeof(*set));

    if (set != NULL) {
        set->window = window;
    }
    return set;
}

static void ms_set_free(struct ms_set *set)
{
    size_t i, e;

    if (set == NULL) {
        return;
    }
    for (i = 0; i < set->num; i++) {
        for (e = 0; e < MS_ENC_NUM; e++) {
            if (set->needles[i].enc[e] != NULL) {
                sodium_memzero(set->needles[i].enc[e], set->needles[i].enc_len[e]);
            }
            free(set->needles[i].enc[e]);
        }
    }
    free(set->slots);
    free(set);
}

static int ms_cmd_scan(pid_t pid, const char *needles, size_t window)
{
    struct ms_set *set = ms_set_new(window);
    size_t found;
    int ret = 2;

    if (set == NULL || window < 8 || window > 64 || ms_load_needles(set, needles) != 0 ||
        ms_build(set) != 0 || ms_scan_pid(set, pid) != 0) {
        goto out;
    }
    found = ms_report(set, stdout);
    printf("scanned pid %d: %zu needle(s), %" PRIu64 " region(s), %" PRIu64 " byte(s), %" PRIu64
           " huge mapping(s) skipped, %zu found\n",
           (int)pid, set->num, set->regions, set->bytes_scanned, set->skipped, found);
    ret = found == 0 ? 0 : 1;
out:
    ms_set_free(set);
    return ret;
}

/* ---- self-test -------------------------------------------------------------------- */

static int ms_selftest_child(int rfd, int wfd, const char *needles)
{
    static char line[MS_LINE_MAX];
    static uint8_t mask[MS_NEEDLE_MAX], masked[MS_NEEDLE_MAX];
    FILE *f = fopen(needles, "r");
    uint8_t *be = malloc(8192), *le = malloc(8192);
    /* The hex copy sits in a page made PROT_NONE, as unused secret memory is. */
    uint8_t *hex = mmap(NULL, 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char cmd = 0;
    long n = 0, i;

    if (f == NULL || be == NULL || le == NULL || hex == MAP_FAILED ||
        fgets(line, sizeof(line), f) == NULL) {
        return 1;
    }
    fclose(f);
    {
        char *a = strchr(line + 7, ' ');
        char *b = a != NULL ? strchr(a + 1, ' ') : NULL;
        if (b == NULL) {
            return 1;
        }
        *b = '\0';
        n = ms_hex_decode(a + 1, mask, sizeof(mask));
        if (n <= 0 || ms_hex_decode(b + 1, masked, sizeof(masked)) != n) {
            return 1;
        }
    }
    /* Odd offsets: the scanner must not depend on alignment. */
    for (i = 0; i < n; i++) {
        uint8_t v = masked[i] ^ mask[i];
        be[3 + i] = v;
        le[5 + n - 1 - i] = v;
        hex[7 + 2 * i] = "0123456789abcdef"[v >> 4];
        hex[7 + 2 * i + 1] = "0123456789abcdef"[v & 15];
    }
    if (mprotect(hex, 16384, PROT_NONE) != 0 || write(wfd, "r", 1) != 1 ||
        read(rfd, &cmd, 1) != 1 || mprotect(hex, 16384, PROT_READ | PROT_WRITE) != 0) {
        return 1;
    }
    sodium_memzero(be, 8192);
    sodium_memzero(le, 8192);
    sodium_memzero(hex, 16384);
    if (write(wfd, "w", 1) != 1) {
        return 1;
    }
    return read(rfd, &cmd, 1) == 1 ? 0 : 1;
}

static int ms_selftest(void)
{
    char path[] = "/tmp/memscan-selftest.XXXXXX";
    uint8_t val[200];
    int to_child[2], to_parent[2];
    struct ms_set *set = NULL;
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    char ack = 0;
    pid_t pid;
    int ok = 0, checks = 0, status;
    size_t e;

    if (f == NULL || pipe(to_child) != 0 || pipe(to_parent) != 0) {
        fprintf(stderr, "selftest: set-up failed\n");
        return 2;
    }
    randombytes_buf(val, sizeof(val));
    val[0] |= 1; /* no leading zero byte to strip */
    if (ms_write_needle(f, "planted", val, sizeof(val)) != 0) {
        return 2;
    }
    fflush(f);
    sodium_memzero(val, sizeof(val));
    pid = fork();
    if (pid == 0) {
        _exit(ms_selftest_child(to_child[0], to_parent[1], path));
    }
    /* Generated after the fork: the child never had it. */
    randombytes_buf(val, sizeof(val));
    val[0] |= 1;
    if (pid < 0 || ms_write_needle(f, "absent", val, sizeof(val)) != 0) {
        return 2;
    }
    fclose(f);
    sodium_memzero(val, sizeof(val));
    set = ms_set_new(16);
    if (set == NULL || read(to_parent[0], &ack, 1) != 1 || ms_load_needles(set, path) != 0 ||
        ms_build(set) != 0 || ms_scan_pid(set, pid) != 0) {
        fprintf(stderr, "selftest: first scan failed\n");
        kill(pid, SIGKILL);
        return 2;
    }
    for (e = 0; e < 3; e++) {
        bool hit = set->needles[0].hits[e] > 0;
        printf("selftest: planted needle found (%s): %s\n", ms_enc_names[e], hit ? "yes" : "NO");
        ok += hit;
        checks++;
    }
    {
        bool none = ms_report(set, NULL) == 3 && set->needles[1].hits[0] == 0 &&
                    set->needles[1].hits[1] == 0 && set->needles[1].hits[2] == 0;
        printf("selftest: needle the child never had not found: %s\n", none ? "yes" : "NO");
        ok += none;
        checks++;
    }
    ms_reset_hits(set);
    if (write(to_child[1], "w", 1) != 1 || read(to_parent[0], &ack, 1) != 1 ||
        ms_scan_pid(set, pid) != 0) {
        kill(pid, SIGKILL);
        return 2;
    }
    {
        bool gone = ms_report(set, NULL) == 0;
        printf("selftest: planted needle gone after the child wiped it: %s\n", gone ? "yes" : "NO");
        ok += gone;
        checks++;
    }
    if (write(to_child[1], "x", 1) != 1) {
        kill(pid, SIGKILL);
    }
    waitpid(pid, &status, 0);
    unlink(path);
    ms_set_free(set);
    printf("selftest: %d of %d checks passed\n", ok, checks);
    return ok == checks ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        return 2;
    }
    if (argc == 3 && strcmp(argv[1], "mask") == 0) {
        return ms_cmd_mask(argv[2]);
    }
    if (argc == 5 && strcmp(argv[1], "share") == 0) {
        return ms_cmd_share(argv[2], argv[3], argv[4]);
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "scan") == 0) {
        return ms_cmd_scan((pid_t)atoi(argv[2]), argv[3],
                           argc == 5 ? (size_t)atoi(argv[4]) : (size_t)16);
    }
    if (argc == 2 && strcmp(argv[1], "selftest") == 0) {
        return ms_selftest();
    }
    fprintf(stderr, "usage: bench_memscan_pid mask LABEL-PREFIX < 'NAME HEX' lines\n"
                    "       bench_memscan_pid share LABEL SHARE-FILE HOLDER-KEY\n"
                    "       bench_memscan_pid scan PID NEEDLES [WINDOW]\n"
                    "       bench_memscan_pid selftest\n");
    return 2;
}
