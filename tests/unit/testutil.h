#ifndef SPK_TESTUTIL_H
#define SPK_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* testutil_read_file: the whole file in a malloc'd buffer (NUL-terminated,
 * not counted in *out_len), or the test fails. */
uint8_t *testutil_read_file(const char *path, size_t *out_len);
/* testutil_data_path: SPK_TEST_DATA "/" name, in a static buffer. */
const char *testutil_data_path(const char *name);

#endif
