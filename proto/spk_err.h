#ifndef SPK_ERR_H
#define SPK_ERR_H

/*
 * One table of error codes for the whole project, in the style of OpenSSH's
 * ssherr.h: every fallible function returns 0 or one of these negative values.
 * The wire protocol carries the positive value of a subset of them (see
 * proto/PROTOCOL.md), so existing values never change meaning.
 */
enum spk_err {
    SPK_OK = 0,
    SPK_ERR_INTERNAL = -1,         /* a bug or an unexpected library failure */
    SPK_ERR_NOMEM = -2,            /* allocation failed */
    SPK_ERR_MALFORMED = -3,        /* bytes or text that do not parse */
    SPK_ERR_VERSION = -4,          /* a format or protocol version we do not speak */
    SPK_ERR_INVALID_ARG = -5,      /* a caller or command-line mistake */
    SPK_ERR_IO = -6,               /* read, write, open, rename failed */
    SPK_ERR_EXISTS = -7,           /* refusing to overwrite an existing file */
    SPK_ERR_CRYPTO = -8,           /* a cryptographic library call failed */
    SPK_ERR_COMMITMENT = -9,       /* a share does not match its commitment */
    SPK_ERR_THRESHOLD = -10,       /* fewer good shares than the threshold */
    SPK_ERR_MIXED_SPLIT = -11,     /* shares of different splits or keys */
    SPK_ERR_DUP_INDEX = -12,       /* two shares with the same x */
    SPK_ERR_KEY_UNSUPPORTED = -13, /* not a two-prime RSA key of a size we take */
    SPK_ERR_KEY_MISMATCH = -14,    /* rebuilt key does not match the public key */
    SPK_ERR_UNSEAL = -15,          /* a sealed share could not be opened */
    SPK_ERR_MLOCK = -16,           /* memory could not be locked */
    SPK_ERR_BAD_SIGNATURE = -17,   /* a record's signature does not verify */
    SPK_ERR_UNKNOWN_KEY = -18,     /* no such key id here */
    SPK_ERR_NOT_ALLOWED = -19,     /* the client may not have this */
    SPK_ERR_RATE_LIMITED = -20,    /* the client is over its rate */
    SPK_ERR_TIMEOUT = -21,         /* no answer in time */
    SPK_ERR_UNAVAILABLE = -22,     /* a peer cannot be reached */
    SPK_ERR_FAULT = -23,           /* a result failed its check with the public key */
    SPK_ERR_DECRYPT = -24,         /* a ciphertext did not decrypt (padding, size) */
    SPK_ERR_UNSUPPORTED = -25,     /* an operation or algorithm we do not offer */
    SPK_ERR_WRONG_HOLDER = -26,    /* a share addressed to another holder */
    SPK_ERR_PASSPHRASE = -27,      /* a key file that needs a (different) passphrase */
};

#define SPK_ERR_MIN SPK_ERR_PASSPHRASE

/* spk_strerror returns a static, human-readable description of |err|. */
const char *spk_strerror(int err);

#endif
