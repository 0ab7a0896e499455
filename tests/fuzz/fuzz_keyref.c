/*
 * Key references (the body of a "SPLITKEY KEY REFERENCE" PEM block, read by
 * splitkey.so from a file any program may be pointed at): whatever decodes
 * must re-encode to exactly the input, and a refused input leaves nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proto_keyref ref;
    static uint8_t out[PROTO_KEYREF_MAX];
    size_t n = 0;

    if (proto_keyref_decode(&ref, data, size) == 0) {
        if (proto_keyref_encode(out, sizeof(out), &n, &ref) != 0 || n != size ||
            memcmp(out, data, size) != 0) {
            abort();
        }
    } else {
        static const struct proto_keyref zero;

        if (memcmp(&ref, &zero, sizeof(ref)) != 0) {
            abort();
        }
    }
    return 0;
}
