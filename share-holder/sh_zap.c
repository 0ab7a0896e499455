/*
 * sh_zap.c: the ZAP handler's wire side (ZeroMQ RFC 27), shared by the
 * share-holder and `combiner run`: read one request, answer it. Who is
 * admitted is each daemon's own decision (sh_allow for the holder's CURVE
 * clients; the combiner's client lines).
 */
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "share-holder/share-holder.h"

static bool zap_frame_is(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);

    return zmq_msg_size(m) == n && sodium_memcmp(zmq_msg_data(m), s, n) == 0;
}

static void zap_close(struct sh_zap_req *req)
{
    for (size_t i = 0; i < req->num; i++) {
        zmq_msg_close(&req->f[i]);
    }
    req->num = 0;
}

bool sh_zap_recv(void *zap, struct sh_zap_req *req)
{
    int more = 1;

    memset(req, 0, sizeof(*req));
    while (more) {
        zmq_msg_t part;
        size_t more_len = sizeof(more);

        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        if (req->num < SH_ZAP_FRAMES_MAX) {
            req->f[req->num++] = part;
        } else {
            zmq_msg_close(&part);
        }
        if (zmq_getsockopt(zap, ZMQ_RCVMORE, &more, &more_len) != 0) {
            more = 0;
        }
    }
    if (req->num < 2) {
        zap_close(req); /* not even a request id to answer */
        return false;
    }
    if (req->num >= 4 && zmq_msg_size(&req->f[3]) < sizeof(req->address)) {
        memcpy(req->address, zmq_msg_data(&req->f[3]), zmq_msg_size(&req->f[3]));
        req->address[zmq_msg_size(&req->f[3])] = '\0';
    }
    /* version, request id, domain, address, identity, mechanism, credentials */
    if (!zap_frame_is(&req->f[0], "1.0")) {
        return true;
    }
    if (req->num == 6 && zap_frame_is(&req->f[5], "NULL")) {
        req->null_mechanism = true;
    } else if (req->num == 7 && zap_frame_is(&req->f[5], "CURVE") &&
               zmq_msg_size(&req->f[6]) == PROTO_X25519_LEN) {
        req->curve_pk = zmq_msg_data(&req->f[6]);
    }
    return true;
}

int sh_zap_reply(void *zap, struct sh_zap_req *req, bool ok, const char *text, const char *user_id)
{
    int r = 0;

    /* version, request id, status, text, user id, metadata */
    if (zmq_send(zap, "1.0", 3, ZMQ_SNDMORE) < 0 ||
        zmq_send(zap, zmq_msg_data(&req->f[1]), zmq_msg_size(&req->f[1]), ZMQ_SNDMORE) < 0 ||
        zmq_send(zap, ok ? "200" : "400", 3, ZMQ_SNDMORE) < 0 ||
        zmq_send(zap, text, strlen(text), ZMQ_SNDMORE) < 0 ||
        zmq_send(zap, ok ? user_id : "", ok ? strlen(user_id) : 0, ZMQ_SNDMORE) < 0 ||
        zmq_send(zap, "", 0, 0) < 0) {
        r = SPK_ERR_IO;
    }
    zap_close(req);
    return r;
}
