#ifndef SPK_SECRET_H
#define SPK_SECRET_H

/*
 * Secret memory for every part of splitkey: wipe-on-free allocation hooks for
 * GMP and OpenSSL, locked guard-paged buffers, a per-operation arena, and the
 * process hardening every daemon and tool that touches a share runs first.
 */

#include <stdbool.h>
#include <stddef.h>

#include "proto/proto.h"

/*
 * spk_mem_init installs wipe-on-free allocators into GMP
 * (mp_set_memory_functions) and OpenSSL (CRYPTO_set_mem_functions) and
 * initialises libsodium. Call it first in main, before anything allocates
 * through OpenSSL, and before starting threads. Safe to call more than once:
 * the first call decides and later calls return its result. If OpenSSL had
 * already allocated at the first call, its hooks cannot be installed and the
 * result is SPK_ERR_INTERNAL (GMP's hooks and libsodium are set up anyway).
 * Returns 0 or SPK_ERR_*.
 */
SPK_WUR int spk_mem_init(void);

/*
 * spk_process_harden sets PR_SET_DUMPABLE 0 and RLIMIT_CORE 0, then locks all
 * memory with mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT). When locking
 * fails it returns SPK_ERR_MLOCK unless |allow_unlocked|, and writes a clear
 * one-line reason (naming RLIMIT_MEMLOCK) into |why|.
 */
SPK_WUR int spk_process_harden(bool allow_unlocked, char *why, size_t why_len);

/* spk_memory_locked reports whether spk_process_harden locked memory. */
bool spk_memory_locked(void);

/*
 * spk_secret_new returns |len| zeroed bytes in guard-paged, mlock'ed,
 * MADV_DONTDUMP memory (sodium_malloc, with the mlock checked), or NULL, also
 * when the memory cannot be locked (unless spk_process_harden was allowed to
 * run unlocked). The start is 64-aligned when |len| is a multiple of 64. Free
 * with spk_secret_free, which wipes. For long-lived secrets (holder keys,
 * local shares); per-operation temporaries belong in a struct spk_arena.
 */
void *spk_secret_new(size_t len);
void spk_secret_free(void *p);
/* Toggle access to an idle secret (sodium_mprotect_*). 0 or SPK_ERR_*. */
int spk_secret_noaccess(void *p);
int spk_secret_readwrite(void *p);

/*
 * struct spk_arena is one locked, guard-paged region that an operation bump-
 * allocates from; spk_arena_reset wipes what was used. One per combiner
 * thread, so an operation costs no sodium_malloc.
 */
struct spk_arena;

/*
 * spk_arena_new returns an arena of |cap| bytes (rounded up to 64) in
 * spk_secret_new memory, or NULL (no memory, or it could not be locked).
 */
struct spk_arena *spk_arena_new(size_t cap);
/* spk_arena_alloc returns |len| zeroed bytes aligned to 64, or NULL when full. */
void *spk_arena_alloc(struct spk_arena *arena, size_t len);
/* spk_arena_used: bytes handed out since the last reset. */
size_t spk_arena_used(const struct spk_arena *arena);
void spk_arena_reset(struct spk_arena *arena);
void spk_arena_free(struct spk_arena *arena);

/*
 * spk_stack_wipe clears |len| bytes of stack below the caller, where GMP and
 * OpenSSL leave temporaries. Call after secret arithmetic.
 */
void spk_stack_wipe(size_t len);

/* ---- files ---------------------------------------------------------------- */

/*
 * spk_file_read reads at most |max| bytes of |path| into a new heap buffer
 * from OPENSSL_malloc (*out; free it with spk_file_free, or OPENSSL_free,
 * which wipes once spk_mem_init has installed its hooks). Fails with
 * SPK_ERR_IO, or SPK_ERR_MALFORMED when the file is larger than |max|.
 */
SPK_WUR int spk_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len);
/* spk_file_free wipes |len| bytes of a spk_file_read buffer and frees it (NULL is fine). */
void spk_file_free(uint8_t *buf, size_t len);
/* spk_file_read_secret: the same into spk_secret_new memory (free with spk_secret_free). */
SPK_WUR int spk_file_read_secret(const char *path, size_t max, uint8_t **out, size_t *out_len);
/*
 * spk_file_write_new creates |path| with |mode| (O_EXCL: SPK_ERR_EXISTS if it
 * is there), writes |len| bytes and fsyncs. On any failure it removes what it
 * created.
 */
SPK_WUR int spk_file_write_new(const char *path, unsigned mode, const uint8_t *data, size_t len);

#endif
