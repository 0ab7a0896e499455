#ifndef SPK_BASE_INTERNAL_H
#define SPK_BASE_INTERNAL_H

/* Private declarations of the base library, visible to its unit tests. */

#include <stddef.h>

#include "base/base.h"

/* The allocation hooks spk_mem_init installs (exposed for tests). */
void *spk_gmp_alloc(size_t len);
void *spk_gmp_realloc(void *old, size_t old_len, size_t new_len);
void spk_gmp_free(void *p, size_t len);
void *spk_ossl_malloc(size_t len, const char *file, int line);
void *spk_ossl_realloc(void *old, size_t len, const char *file, int line);
void spk_ossl_free(void *p, const char *file, int line);

#endif
