/*
 * Holder key files (NAME.pub and NAME.key): whatever decodes must re-encode
 * to exactly the input, so each key file has one spelling.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proto_holder_pub pub;
    static struct proto_holder_secret key;
    static uint8_t out[4096];
    size_t n = 0;

    if (proto_holder_pub_decode(&pub, data, size) == 0) {
        if (proto_holder_pub_encode(out, sizeof(out), &n, &pub) != 0 || n != size ||
            memcmp(out, data, size) != 0) {
            abort();
        }
    }
    if (proto_holder_secret_decode(&key, data, size) == 0) {
        if (proto_holder_secret_encode(out, sizeof(out), &n, &key) != 0 || n != size ||
            memcmp(out, data, size) != 0) {
            abort();
        }
    } else {
        /* A refused key file leaves nothing behind. */
        static const struct proto_holder_secret zero;

        if (memcmp(&key, &zero, sizeof(key)) != 0) {
            abort();
        }
    }
    sodium_memzero(&key, sizeof(key));
    return 0;
}
