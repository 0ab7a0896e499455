/*
 * Key records: whatever decodes must re-encode to exactly the input, and the
 * signed part must be exactly what proto_record_encode_body writes; the
 * verification keys of a threshold record are found by index.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proto_record rec;
    static uint8_t out[PROTO_FILE_MAX];
    size_t n = 0;

    if (proto_record_decode(&rec, data, size) != 0) {
        return 0;
    }
    if (proto_record_encode(out, sizeof(out), &n, &rec) != 0 || n != size ||
        memcmp(out, data, size) != 0) {
        abort();
    }
    if (proto_record_encode_body(out, sizeof(out), &n, &rec) != 0 || n != rec.signed_len ||
        memcmp(out, data, n) != 0) {
        abort();
    }
    for (unsigned i = 0; i < rec.num_shares; i++) {
        if (proto_record_find_share(&rec, rec.shares[i].index) != &rec.shares[i]) {
            abort();
        }
        /* Verification keys exist exactly for threshold records that have them. */
        if ((proto_record_vkey(&rec, i + 1) != NULL) !=
            (rec.has_vkeys && rec.mode == PROTO_MODE_THRESHOLD)) {
            abort();
        }
    }
    return 0;
}
