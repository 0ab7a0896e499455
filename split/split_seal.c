/*
 * Shares at rest and holder key files: a share's y values are sealed with
 * crypto_box_seal to the holder's X25519 storage key, so only that holder
 * opens them; holder keys are two X25519 keypairs (CURVE transport and
 * storage), whose public halves are always re-derived from the secret ones
 * when a key file is loaded.
 */
#include <string.h>

#include <sodium.h>

#include "split/split.h"

/* split_share_y_len: 5 * y_len of |field_bits|, or 0 for an unknown field. */
static size_t split_share_y_len(unsigned field_bits)
{
    return SPLIT_NUM_SECRETS * proto_field_y_len(field_bits);
}

static bool split_name_ok(const char *name)
{
    struct proto_rd rd;
    size_t len = strnlen(name, PROTO_NAME_MAX + 1);

    if (len > PROTO_NAME_MAX) {
        return false;
    }
    proto_rd_init(&rd, (const uint8_t *)name, len);
    return proto_name_valid(&rd);
}

/* split_share_plain_len: the opened length of |sf|'s share; in threshold mode
 * s_i is as long as the modulus, which the caller knows (|len|). */
static size_t split_share_plain_len(const struct proto_share_file *sf, size_t len)
{
    if (sf->mode == PROTO_MODE_THRESHOLD) {
        return len >= PROTO_BN_MIN && len <= PROTO_BN_MAX ? len : 0;
    }
    return sf->mode == PROTO_MODE_REBUILD ? split_share_y_len(sf->field_bits) : 0;
}

int split_share_seal(struct proto_share_file *sf, const struct proto_holder_pub *holder,
                     const uint8_t *y, size_t y_len)
{
    size_t want = split_share_plain_len(sf, y_len);

    if (want == 0 || y_len != want || want + crypto_box_SEALBYTES > sizeof(sf->sealed) ||
        !split_name_ok(holder->name)) {
        return SPK_ERR_INVALID_ARG;
    }
    if (crypto_box_seal(sf->sealed, y, y_len, holder->storage_pk) != 0) {
        return SPK_ERR_CRYPTO;
    }
    sf->sealed_len = y_len + crypto_box_SEALBYTES;
    memcpy(sf->holder, holder->name, strlen(holder->name) + 1);
    return 0;
}

int split_share_open(uint8_t *out_y, size_t out_len, const struct proto_share_file *sf,
                     const struct proto_holder_secret *key)
{
    size_t want = split_share_plain_len(sf, out_len);
    struct split_field f;

    if (strncmp(sf->holder, key->pub.name, sizeof(sf->holder)) != 0) {
        return SPK_ERR_WRONG_HOLDER;
    }
    if (want == 0 || out_len != want || sf->sealed_len != want + crypto_box_SEALBYTES) {
        return SPK_ERR_MALFORMED;
    }
    if (crypto_box_seal_open(out_y, sf->sealed, sf->sealed_len, key->pub.storage_pk,
                             key->storage_sk) != 0) {
        sodium_memzero(out_y, out_len);
        return SPK_ERR_UNSEAL;
    }
    /* A threshold key share has no field; its commitment is its only check. */
    if (sf->mode == PROTO_MODE_REBUILD &&
        (split_field_init(&f, sf->field_bits) != 0 || split_share_y_check(&f, out_y) != 0)) {
        sodium_memzero(out_y, out_len);
        return SPK_ERR_MALFORMED;
    }
    return 0;
}

int split_holder_keygen(struct proto_holder_secret *out, const char *name)
{
    size_t len;

    if (!split_name_ok(name)) {
        return SPK_ERR_INVALID_ARG;
    }
    sodium_memzero(out, sizeof(*out));
    len = strlen(name);
    memcpy(out->pub.name, name, len + 1);
    /* Both are X25519: zmq_curve_keypair draws its key the same way. */
    if (crypto_box_keypair(out->pub.curve_pk, out->curve_sk) != 0 ||
        crypto_box_keypair(out->pub.storage_pk, out->storage_sk) != 0) {
        sodium_memzero(out, sizeof(*out));
        return SPK_ERR_CRYPTO;
    }
    return 0;
}

int split_holder_secret_check(const struct proto_holder_secret *key)
{
    uint8_t pk[crypto_scalarmult_BYTES];
    int r = SPK_ERR_KEY_MISMATCH;

    if (crypto_scalarmult_base(pk, key->curve_sk) != 0 ||
        sodium_memcmp(pk, key->pub.curve_pk, sizeof(pk)) != 0) {
        goto out;
    }
    if (crypto_scalarmult_base(pk, key->storage_sk) != 0 ||
        sodium_memcmp(pk, key->pub.storage_pk, sizeof(pk)) != 0) {
        goto out;
    }
    r = 0;
out:
    sodium_memzero(pk, sizeof(pk));
    return r;
}

int split_holder_secret_load(struct proto_holder_secret **out, const char *path)
{
    struct proto_holder_secret *key = NULL;
    uint8_t *text = NULL;
    size_t text_len = 0;
    int r;

    *out = NULL;
    if ((r = spk_file_read_private(path, PROTO_FILE_MAX, &text, &text_len)) != 0) {
        goto out;
    }
    r = SPK_ERR_NOMEM;
    if ((key = spk_secret_new(sizeof(*key))) == NULL) {
        goto out;
    }
    if ((r = proto_holder_secret_decode(key, text, text_len)) != 0) {
        goto out;
    }
    if ((r = split_holder_secret_check(key)) != 0) {
        goto out;
    }
    *out = key;
    key = NULL;
    r = 0;
out:
    spk_secret_free(key);
    spk_secret_free(text);
    return r;
}

int split_holder_pub_load(struct proto_holder_pub *out, const char *path)
{
    uint8_t *text = NULL;
    size_t text_len = 0;
    int r;

    if ((r = spk_file_read(path, PROTO_FILE_MAX, &text, &text_len)) != 0) {
        return r;
    }
    r = proto_holder_pub_decode(out, text, text_len);
    spk_file_free(text, text_len);
    return r;
}
