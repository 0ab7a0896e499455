#ifndef SPK_TESTUTIL_H
#define SPK_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* testutil_read_file: the whole file in a malloc'd buffer (NUL-terminated,
 * not counted in *out_len), or the test fails. */
uint8_t *testutil_read_file(const char *path, size_t *out_len);
/* testutil_under_valgrind: SPK_UNDER_VALGRIND=1, as tools/check sets it
 * under memcheck, where a test may do less of what only repeats itself. */
bool testutil_under_valgrind(void);
/* testutil_data_path: SPK_TEST_DATA "/" name, in a static buffer. */
const char *testutil_data_path(const char *name);

/* A decoder under test: returns the decoder's result; on success it must also
 * have checked that re-encoding gives back exactly |in|. */
typedef int (*testutil_decode_fn)(const uint8_t *in, size_t len);

/* testutil_check_file_mutations: |fn| accepts the text file |in| and refuses
 * (SPK_ERR_MALFORMED or SPK_ERR_VERSION) every truncation, every line
 * missing, duplicated or swapped, bad framing (trailing bytes, CR, doubled
 * spaces, other versions, over PROTO_FILE_MAX); single-byte substitutions
 * are refused or accepted only where |fn|'s re-encoding check passes. Each
 * call gets a heap copy of exactly the bytes, so ASan sees over-reads. */
void testutil_check_file_mutations(testutil_decode_fn fn, const uint8_t *in, size_t len);
/* testutil_with_line: |in| with line |n| (0-based) replaced by |line| (no
 * '\n'), written to |out| (|cap| bytes); returns the length. */
size_t testutil_with_line(uint8_t *out, size_t cap, const uint8_t *in, size_t len, size_t n,
                          const char *line);

#endif
