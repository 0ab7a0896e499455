/*
 * The server_name extension of a ClientHello (edge_sni_parse), the first
 * bytes of a connection the edge reads itself rather than through OpenSSL.
 * A name that parses is 1..255 bytes of printable ASCII without upper case
 * letters and without a trailing dot, and its session context does not
 * depend on anything but the name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[EDGE_SNI_NAME_MAX + 1];
    uint8_t ctx1[EDGE_SNI_CTX_LEN], ctx2[EDGE_SNI_CTX_LEN];
    size_t len, i;

    memset(name, 'x', sizeof(name));
    if (edge_sni_parse(name, data, size) != 0) {
        return 0;
    }
    len = strnlen(name, sizeof(name));
    if (len > EDGE_SNI_NAME_MAX || (len > 0 && name[len - 1] == '.')) {
        abort();
    }
    for (i = 0; i < len; i++) {
        if (name[i] < 0x21 || name[i] > 0x7e || (name[i] >= 'A' && name[i] <= 'Z')) {
            abort();
        }
    }
    edge_sni_session_context(ctx1, name);
    edge_sni_session_context(ctx2, name);
    if (memcmp(ctx1, ctx2, sizeof(ctx1)) != 0) {
        abort();
    }
    return 0;
}
