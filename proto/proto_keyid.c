/*
 * The key id (PROTOCOL.md): SHA-256 of the DER SubjectPublicKeyInfo of the
 * public key. The only computation of it; every part calls these.
 */

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "proto/proto.h"

void proto_key_id_from_spki(uint8_t out[PROTO_KEY_ID_LEN], const uint8_t *spki, size_t spki_len)
{
    crypto_hash_sha256(out, spki, spki_len);
}

int proto_key_id(uint8_t out[PROTO_KEY_ID_LEN], const EVP_PKEY *pkey)
{
    uint8_t *der = NULL;
    int der_len = i2d_PUBKEY(pkey, &der);

    if (der_len <= 0) {
        return SPK_ERR_CRYPTO;
    }
    proto_key_id_from_spki(out, der, (size_t)der_len);
    OPENSSL_free(der);
    return 0;
}
