#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/*
 * Wire messages: whatever decodes must re-encode to exactly the input (the
 * encoding is canonical), and encoding must never fail for a decoded message.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proto_msg m;
    static uint8_t out[PROTO_MSG_MAX];
    size_t out_len = 0;
    uint8_t type;
    uint64_t req_id;
    int r;

    r = proto_msg_decode(&m, data, size);
    if (r != 0) {
        if (r != SPK_ERR_MALFORMED && r != SPK_ERR_VERSION) {
            abort();
        }
        return 0;
    }
    if (proto_msg_peek(data, size, &type, &req_id) != 0 || type != m.type || req_id != m.req_id) {
        abort();
    }
    if (proto_msg_encode(out, sizeof(out), &out_len, &m) != 0 || out_len != size ||
        memcmp(out, data, size) != 0) {
        abort();
    }
    return 0;
}
