/*
 * Secret memory: wipe-on-free hooks for GMP and OpenSSL, locked buffers, the
 * per-operation arena, and process hardening.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gmp.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "base/internal.h"
#include "base/base.h"

/*
 * OpenSSL's free hook is not told the size of the block, so every block it
 * gets from us carries a header holding the size. 16 bytes keep the user
 * pointer as aligned as malloc's own (16 on x86_64 and aarch64 glibc).
 */
#define SPK_OSSL_HDR 16

/* The outcome of the first spk_mem_init call; later calls return it. */
static int mem_init_state = 1; /* 1: not yet called */
static bool memory_locked;
/* Set when spk_process_harden was told to run on without locked memory. */
static bool unlocked_allowed;

/* ---- GMP hooks -------------------------------------------------------------- */

/*
 * GMP cannot handle an allocation failure (its own default allocator aborts
 * too), so neither can we: we abort with a message rather than return NULL.
 */
static void *spk_gmp_fail(void)
{
    static const char msg[] = "splitkey: out of memory in GMP\n";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);

    (void)ignored;
    abort();
}

void *spk_gmp_alloc(size_t len)
{
    void *p = malloc(len == 0 ? 1 : len);

    if (p == NULL) {
        return spk_gmp_fail();
    }
    return p;
}

/* Never libc realloc: it may move the block and leave the old copy unwiped. */
void *spk_gmp_realloc(void *old, size_t old_len, size_t new_len)
{
    void *p;

    if (old == NULL) {
        return spk_gmp_alloc(new_len);
    }
    p = spk_gmp_alloc(new_len);
    memcpy(p, old, old_len < new_len ? old_len : new_len);
    sodium_memzero(old, old_len);
    free(old);
    return p;
}

void spk_gmp_free(void *p, size_t len)
{
    if (p == NULL) {
        return;
    }
    sodium_memzero(p, len);
    free(p);
}

/* ---- OpenSSL hooks ------------------------------------------------------------ */

void *spk_ossl_malloc(size_t len, const char *file, int line)
{
    uint8_t *block;

    (void)file;
    (void)line;
    /* CRYPTO_malloc's own behaviour for 0 bytes. */
    if (len == 0 || len > SIZE_MAX - SPK_OSSL_HDR) {
        return NULL;
    }
    block = malloc(SPK_OSSL_HDR + len);
    if (block == NULL) {
        return NULL;
    }
    memcpy(block, &len, sizeof(len));
    return block + SPK_OSSL_HDR;
}

static size_t ossl_block_len(const void *p, uint8_t **block)
{
    size_t len;

    *block = (uint8_t *)(uintptr_t)p - SPK_OSSL_HDR;
    memcpy(&len, *block, sizeof(len));
    return len;
}

void spk_ossl_free(void *p, const char *file, int line)
{
    uint8_t *block;
    size_t len;

    (void)file;
    (void)line;
    if (p == NULL) {
        return;
    }
    len = ossl_block_len(p, &block);
    sodium_memzero(block, SPK_OSSL_HDR + len);
    free(block);
}

void *spk_ossl_realloc(void *old, size_t len, const char *file, int line)
{
    uint8_t *block;
    size_t old_len;
    void *p;

    if (old == NULL) {
        return spk_ossl_malloc(len, file, line);
    }
    if (len == 0) {
        spk_ossl_free(old, file, line);
        return NULL;
    }
    old_len = ossl_block_len(old, &block);
    p = spk_ossl_malloc(len, file, line);
    if (p == NULL) {
        /* realloc semantics: the old block stays valid. */
        return NULL;
    }
    memcpy(p, old, old_len < len ? old_len : len);
    spk_ossl_free(old, file, line);
    return p;
}

/* ---- init and hardening ------------------------------------------------------ */

/*
 * spk_mem_init: the first call decides. GMP's hooks can always be installed;
 * OpenSSL refuses CRYPTO_set_mem_functions once it has allocated anything, so
 * if the first call comes too late it returns SPK_ERR_INTERNAL (the GMP hooks
 * and libsodium are still set up), and every later call returns that same
 * error rather than pretend. A later call after a successful first one
 * returns 0 without touching the hooks again (OpenSSL would refuse them then).
 * Not thread-safe: call it from main before starting threads.
 */
int spk_mem_init(void)
{
    int r = SPK_ERR_INTERNAL;

    if (mem_init_state != 1) {
        return mem_init_state;
    }
    if (sodium_init() < 0) {
        r = SPK_ERR_CRYPTO;
        goto out;
    }
    mp_set_memory_functions(spk_gmp_alloc, spk_gmp_realloc, spk_gmp_free);
    if (CRYPTO_set_mem_functions(spk_ossl_malloc, spk_ossl_realloc, spk_ossl_free) != 1) {
        r = SPK_ERR_INTERNAL;
        goto out;
    }
    r = 0;
out:
    mem_init_state = r;
    return r;
}

int spk_process_harden(bool allow_unlocked, char *why, size_t why_len)
{
    struct rlimit rl = {0, 0};
    int r = SPK_ERR_INTERNAL;
    int rc;

    if (why != NULL && why_len > 0) {
        why[0] = '\0';
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        if (why != NULL) {
            snprintf(why, why_len, "prctl(PR_SET_DUMPABLE, 0) failed: %s", strerror(errno));
        }
        goto out;
    }
    if (setrlimit(RLIMIT_CORE, &rl) != 0) {
        if (why != NULL) {
            snprintf(why, why_len, "setrlimit(RLIMIT_CORE, 0) failed: %s", strerror(errno));
        }
        goto out;
    }
    rc = mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
    if (rc != 0 && errno == EINVAL) {
        /* A kernel before 4.4 has no MCL_ONFAULT. */
        rc = mlockall(MCL_CURRENT | MCL_FUTURE);
    }
    if (rc != 0) {
        int e = errno;

        if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
            rl.rlim_cur = 0;
        }
        if (why != NULL) {
            if (rl.rlim_cur == RLIM_INFINITY) {
                snprintf(why, why_len,
                         "mlockall failed: %s (RLIMIT_MEMLOCK is unlimited; check "
                         "CAP_IPC_LOCK and available memory)",
                         strerror(e));
            } else {
                snprintf(why, why_len,
                         "mlockall failed: %s; RLIMIT_MEMLOCK is %llu KiB: raise it "
                         "(ulimit -l, LimitMEMLOCK= in the service unit)%s",
                         strerror(e), (unsigned long long)(rl.rlim_cur / 1024),
                         allow_unlocked ? "; running with memory UNLOCKED" : "");
            }
        }
        if (!allow_unlocked) {
            r = SPK_ERR_MLOCK;
            goto out;
        }
        unlocked_allowed = true;
    } else {
        memory_locked = true;
    }
    r = 0;
out:
    return r;
}

bool spk_memory_locked(void)
{
    return memory_locked;
}

/*
 * sodium_malloc calls mlock on its region but ignores a failure. Once
 * mlockall(MCL_FUTURE) is in force every new mapping is locked or its mmap
 * fails, so nothing more is needed; otherwise we lock the region ourselves
 * (sodium_mlock: mlock plus MADV_DONTDUMP) and fail closed if that fails.
 * Locking a page twice is harmless: Linux page locks do not nest. After
 * spk_process_harden(allow_unlocked = true) failed to lock, the operator chose
 * to run unlocked, and a failed mlock here is tolerated too.
 */
static bool region_locked(void *p, size_t len)
{
    if (memory_locked) {
        return true;
    }
    return sodium_mlock(p, len) == 0 || unlocked_allowed;
}

void *spk_secret_new(size_t len)
{
    void *p;

    if (len == 0) {
        len = 1;
    }
    p = sodium_malloc(len);
    if (p == NULL) {
        return NULL;
    }
    if (!region_locked(p, len)) {
        sodium_free(p);
        return NULL;
    }
    /* sodium_malloc fills with 0xdb. */
    sodium_memzero(p, len);
    return p;
}

void spk_secret_free(void *p)
{
    /* sodium_free wipes the whole region before unmapping it. */
    sodium_free(p);
}

int spk_secret_noaccess(void *p)
{
    return sodium_mprotect_noaccess(p) == 0 ? 0 : SPK_ERR_INTERNAL;
}

int spk_secret_readwrite(void *p)
{
    return sodium_mprotect_readwrite(p) == 0 ? 0 : SPK_ERR_INTERNAL;
}

/* ---- arena ---------------------------------------------------------------- */

#define SPK_ARENA_ALIGN 64

struct spk_arena {
    uint8_t *base; /* sodium_malloc'd, cap bytes, 64-aligned, zero past used */
    size_t cap;
    size_t used;
};

struct spk_arena *spk_arena_new(size_t cap)
{
    struct spk_arena *arena = NULL;

    if (cap == 0 || cap > SIZE_MAX - SPK_ARENA_ALIGN) {
        return NULL;
    }
    /*
     * sodium_malloc puts the block at the end of its pages, so a size that is
     * a multiple of 64 gives a 64-aligned start.
     */
    cap = (cap + SPK_ARENA_ALIGN - 1) & ~(size_t)(SPK_ARENA_ALIGN - 1);
    arena = calloc(1, sizeof(*arena));
    if (arena == NULL) {
        return NULL;
    }
    arena->base = spk_secret_new(cap);
    if (arena->base == NULL) {
        free(arena);
        return NULL;
    }
    arena->cap = cap;
    return arena;
}

void *spk_arena_alloc(struct spk_arena *arena, size_t len)
{
    size_t start;

    if (arena == NULL) {
        return NULL;
    }
    start = (arena->used + SPK_ARENA_ALIGN - 1) & ~(size_t)(SPK_ARENA_ALIGN - 1);
    if (start > arena->cap || len > arena->cap - start) {
        return NULL;
    }
    arena->used = start + len;
    /* Already zero: reset wipes everything that was handed out. */
    return arena->base + start;
}

size_t spk_arena_used(const struct spk_arena *arena)
{
    return arena == NULL ? 0 : arena->used;
}

void spk_arena_reset(struct spk_arena *arena)
{
    if (arena == NULL) {
        return;
    }
    sodium_memzero(arena->base, arena->used);
    arena->used = 0;
}

void spk_arena_free(struct spk_arena *arena)
{
    if (arena == NULL) {
        return;
    }
    spk_secret_free(arena->base);
    sodium_memzero(arena, sizeof(*arena));
    free(arena);
}

void spk_stack_wipe(size_t len)
{
    sodium_stackzero(len);
}
