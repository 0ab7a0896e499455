#include "base/base.h"

const char *spk_strerror(int err)
{
    switch ((enum spk_err)err) {
    case SPK_OK:
        return "success";
    case SPK_ERR_INTERNAL:
        return "internal error";
    case SPK_ERR_NOMEM:
        return "out of memory";
    case SPK_ERR_MALFORMED:
        return "malformed input";
    case SPK_ERR_VERSION:
        return "unsupported version";
    case SPK_ERR_INVALID_ARG:
        return "invalid argument";
    case SPK_ERR_IO:
        return "input/output error";
    case SPK_ERR_EXISTS:
        return "file exists";
    case SPK_ERR_CRYPTO:
        return "cryptographic library failure";
    case SPK_ERR_COMMITMENT:
        return "share does not match its commitment";
    case SPK_ERR_THRESHOLD:
        return "too few good shares";
    case SPK_ERR_MIXED_SPLIT:
        return "shares belong to different splits";
    case SPK_ERR_DUP_INDEX:
        return "duplicate share index";
    case SPK_ERR_KEY_UNSUPPORTED:
        return "unsupported key";
    case SPK_ERR_KEY_MISMATCH:
        return "key does not match the public key";
    case SPK_ERR_UNSEAL:
        return "share could not be opened with this key";
    case SPK_ERR_MLOCK:
        return "memory could not be locked";
    case SPK_ERR_BAD_SIGNATURE:
        return "signature does not verify";
    case SPK_ERR_UNKNOWN_KEY:
        return "unknown key";
    case SPK_ERR_NOT_ALLOWED:
        return "not allowed";
    case SPK_ERR_RATE_LIMITED:
        return "rate limited";
    case SPK_ERR_TIMEOUT:
        return "timed out";
    case SPK_ERR_UNAVAILABLE:
        return "peer unavailable";
    case SPK_ERR_FAULT:
        return "result failed its public-key check";
    case SPK_ERR_DECRYPT:
        return "decryption error";
    case SPK_ERR_UNSUPPORTED:
        return "unsupported operation";
    case SPK_ERR_WRONG_HOLDER:
        return "share is addressed to another holder";
    case SPK_ERR_PASSPHRASE:
        return "wrong or missing passphrase";
    case SPK_ERR_PERMISSIONS:
        return "permissions too open: a secret file must be owned by the user reading it and "
               "give group and others no access (chmod 600)";
    case SPK_ERR_HANDSHAKE:
        return "the peer broke off the secure handshake (is its public key the right one?)";
    default:
        return "unknown error";
    }
}
