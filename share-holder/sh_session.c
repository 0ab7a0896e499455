#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "share-holder/internal.h"
#include "base/base.h"

/*
 * Share sessions, holder side. A requester sends a crypto_kx client key with
 * each SHARE_REQUEST (one per connection on its side); the first request with
 * a new key makes a fresh crypto_kx server keypair, derives the session keys,
 * keeps only the transmit key (in secret memory) and drops the secret half.
 * Every share then costs one XChaCha20-Poly1305 encryption (about 6 us here,
 * against about 180 us for a crypto_box_seal per share, measured while the
 * protocol was chosen).
 */

#define TX_LEN crypto_kx_SESSIONKEYBYTES

int sh_sessions_init(struct sh_sessions *s)
{
    memset(s, 0, sizeof(*s));
    s->nonces_used = SH_NONCE_POOL_LEN; /* drawn on first use */
    s->tx = spk_secret_new(SH_SESSIONS_MAX * TX_LEN);
    s->msg = calloc(1, sizeof(*s->msg));
    return s->tx == NULL || s->msg == NULL ? SPK_ERR_NOMEM : 0;
}

void sh_sessions_cleanup(struct sh_sessions *s)
{
    spk_secret_free(s->tx);
    free(s->msg);
    sodium_memzero(s, sizeof(*s));
}

/* nonce_take: |len| fresh random bytes for a public nonce, each byte of the
 * pool used once. */
static void nonce_take(struct sh_sessions *s, uint8_t *out, size_t len)
{
    if (SH_NONCE_POOL_LEN - s->nonces_used < len) {
        randombytes_buf(s->nonces, sizeof(s->nonces));
        s->nonces_used = 0;
    }
    memcpy(out, &s->nonces[s->nonces_used], len);
    s->nonces_used += len;
}

/*
 * session_get returns the slot of (client_pk, requester_pk), making it if
 * need be, or -1. A new session takes a free slot or the least recently
 * used one, except that a client already holding SH_SESSIONS_PER_CLIENT
 * sessions replaces its own least recently used: one client cycling
 * requester keys then churns its own share of the table, not everyone's.
 */
static int session_get(struct sh_sessions *s, const uint8_t client_pk[PROTO_X25519_LEN],
                       const uint8_t requester_pk[PROTO_X25519_LEN])
{
    size_t victim = 0;
    size_t own_victim = 0;
    size_t num_own = 0;
    uint8_t server_sk[crypto_kx_SECRETKEYBYTES];
    uint8_t rx[TX_LEN];
    struct sh_session *e;
    int r = -1;

    for (size_t i = 0; i < SH_SESSIONS_MAX; i++) {
        e = &s->entries[i];
        if (e->used && sodium_memcmp(e->client_pk, client_pk, PROTO_X25519_LEN) == 0) {
            if (sodium_memcmp(e->requester_pk, requester_pk, PROTO_X25519_LEN) == 0) {
                e->last_used = ++s->clock;
                return (int)i;
            }
            if (num_own++ == 0 || e->last_used < s->entries[own_victim].last_used) {
                own_victim = i;
            }
        }
        if (!e->used || (s->entries[victim].used && e->last_used < s->entries[victim].last_used)) {
            victim = i;
        }
    }
    if (num_own >= SH_SESSIONS_PER_CLIENT) {
        victim = own_victim;
    }
    s->num_made++;
    e = &s->entries[victim];
    memset(e, 0, sizeof(*e));
    crypto_kx_keypair(e->session_pk, server_sk);
    /* crypto_kx refuses low-order requester keys (the shared point is zero) */
    if (crypto_kx_server_session_keys(rx, &s->tx[victim * TX_LEN], e->session_pk, server_sk,
                                      requester_pk) != 0) {
        goto out;
    }
    memcpy(e->client_pk, client_pk, PROTO_X25519_LEN);
    memcpy(e->requester_pk, requester_pk, PROTO_X25519_LEN);
    e->used = true;
    e->last_used = ++s->clock;
    r = (int)victim;
out:
    sodium_memzero(server_sk, sizeof(server_sk));
    sodium_memzero(rx, sizeof(rx));
    return r;
}

int sh_share_response_build(struct sh_sessions *s, uint8_t *out, size_t cap, size_t *out_len,
                            uint64_t req_id, const uint8_t client_pk[PROTO_X25519_LEN],
                            const uint8_t requester_pk[PROTO_X25519_LEN],
                            const struct sh_share *share)
{
    struct proto_msg *m = s->msg;
    struct proto_share_resp *resp = &m->u.share_resp;
    uint8_t ad[PROTO_SHARE_AD_LEN];
    unsigned long long ct_len = 0;
    bool opened = false;
    int slot;
    int r = SPK_ERR_INTERNAL;

    if (share->y_len + PROTO_AEAD_TAG_LEN > sizeof(resp->sealed)) {
        return SPK_ERR_INTERNAL;
    }
    if ((slot = session_get(s, client_pk, requester_pk)) < 0) {
        return SPK_ERR_MALFORMED;
    }
    memset(m, 0, sizeof(*m));
    m->type = PROTO_MSG_SHARE_RESPONSE;
    m->req_id = req_id;
    memcpy(resp->key_id, share->key_id, sizeof(resp->key_id));
    memcpy(resp->split_id, share->split_id, sizeof(resp->split_id));
    resp->index = share->index;
    resp->field_bits = (uint16_t)share->field_bits;
    memcpy(resp->session_pk, s->entries[slot].session_pk, sizeof(resp->session_pk));
    nonce_take(s, resp->nonce, sizeof(resp->nonce));
    resp->sealed_len = share->y_len + PROTO_AEAD_TAG_LEN;

    /* Encode once with a zero ciphertext to fix the header (the AD), seal
     * straight into the message, then encode for real. */
    if ((r = proto_msg_encode(out, cap, out_len, m)) != 0 ||
        !proto_share_ad(ad, out, *out_len, resp)) {
        goto out;
    }
    if (!share->readable) {
        if ((r = spk_secret_readwrite(share->y)) != 0) {
            goto out;
        }
        opened = true;
    }
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(resp->sealed, &ct_len, share->y, share->y_len,
                                                   ad, sizeof(ad), NULL, resp->nonce,
                                                   &s->tx[(size_t)slot * TX_LEN]) != 0 ||
        ct_len != resp->sealed_len) {
        r = SPK_ERR_CRYPTO;
        goto out;
    }
    if ((r = proto_msg_encode(out, cap, out_len, m)) != 0) {
        goto out;
    }
    r = 0;
out:
    if (opened && spk_secret_noaccess(share->y) != 0) {
        r = SPK_ERR_INTERNAL;
    }
    return r;
}
