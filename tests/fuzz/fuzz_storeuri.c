/*
 * splitkey: URIs (splitkey.so's OSSL_STORE loader, prov_store.c), which
 * come from the command line or a program's configuration: a URI taken
 * gives a path that is a suffix of it, with no control character, and a
 * refused one leaves the output empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provider/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[PROV_STORE_PATH_MAX + 1];
    size_t n;

    if (prov_store_uri_path(path, sizeof(path), (const char *)data, size) != 0) {
        if (path[0] != '\0') {
            abort();
        }
        return 0;
    }
    n = strlen(path);
    if (n == 0 || n > PROV_STORE_PATH_MAX || n > size || memcmp(path, data + (size - n), n) != 0) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)path[i] < 0x20 || (unsigned char)path[i] == 0x7f) {
            abort();
        }
    }
    return 0;
}
