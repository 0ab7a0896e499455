/* Share files: whatever decodes must re-encode to exactly the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proto_share_file sf;
    static uint8_t out[8192];
    size_t n = 0;

    if (proto_share_file_decode(&sf, data, size) != 0) {
        return 0;
    }
    if (proto_share_file_encode(out, sizeof(out), &n, &sf) != 0 || n != size ||
        memcmp(out, data, size) != 0) {
        abort();
    }
    return 0;
}
