#ifndef SPK_PROTO_H
#define SPK_PROTO_H

/*
 * proto: every byte format of splitkey. Untrusted bytes are read only through
 * struct proto_rd (a bounded cursor after BoringSSL's CBS) and written only
 * through struct proto_wr (a fixed-buffer builder after CBB_init_fixed).
 * proto/PROTOCOL.md is the normative description of every format here.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium/crypto_hash_sha256.h>

#include "base/base.h"

/* Hard caps. */
#define PROTO_MSG_MAX (64 * 1024) /* one wire message */
/*
 * ZMQ_MAXMSGSIZE of every socket. libzmq checks the limit against the frame
 * as it arrives, which with CURVE is the encrypted MESSAGE command:
 * "\x07MESSAGE" (8) || nonce (8) || box MAC (16) || flags (1) || frame. So
 * that every frame of up to PROTO_MSG_MAX bytes gets through (and an answer)
 * the limit is that much larger; the decoder refuses anything over
 * PROTO_MSG_MAX whichever way it came.
 */
#define PROTO_CURVE_MSG_OVERHEAD 33
#define PROTO_ZMQ_MAXMSGSIZE (PROTO_MSG_MAX + PROTO_CURVE_MSG_OVERHEAD)
#define PROTO_FILE_MAX (256 * 1024) /* one text file (record, share, key) */
#define PROTO_BN_MAX 1024           /* modulus bytes: RSA-8192 */
#define PROTO_BN_MIN 256            /* modulus bytes: RSA-2048 */
#define PROTO_EXP_MAX 8             /* public exponent bytes */
#define PROTO_SHARES_MAX 255
#define PROTO_NAME_MAX 64   /* holder and client names: [A-Za-z0-9._-]{1,64} */
#define PROTO_KEY_ID_LEN 32 /* SHA-256 of the DER SubjectPublicKeyInfo */
#define PROTO_SPLIT_ID_LEN 16
#define PROTO_COMMIT_LEN 32 /* BLAKE2b-256 */
#define PROTO_X25519_LEN 32
#define PROTO_Z85_KEY_LEN 40   /* a 32-byte key in Z85 */
#define PROTO_NUM_SECRETS 5    /* p, q, dp, dq, qinv */
#define PROTO_FIELD_Y_MAX 532  /* ceil(4253 / 8): the largest field's y */
#define PROTO_SEAL_OVERHEAD 48 /* crypto_box_SEALBYTES */
#define PROTO_SEALED_MAX (PROTO_SEAL_OVERHEAD + PROTO_NUM_SECRETS * PROTO_FIELD_Y_MAX)
/*
 * Shoup's verification keys v_1 .. v_n of a threshold record, n times the
 * modulus length, are at most this many bytes: up to 128 shares of
 * RSA-2048, 85 of RSA-3072, 64 of RSA-4096, 32 of RSA-8192. The cap keeps struct
 * proto_record (which the combiner holds per key, in locked memory) and the
 * record file small.
 */
#define PROTO_VKEYS_MAX (32 * 1024)

/* ---- bounded reader ---------------------------------------------------- */

struct proto_rd {
    const uint8_t *p;
    size_t len;
};

void proto_rd_init(struct proto_rd *rd, const uint8_t *p, size_t len);
size_t proto_rd_len(const struct proto_rd *rd);
SPK_WUR bool proto_rd_skip(struct proto_rd *rd, size_t n);
SPK_WUR bool proto_rd_u8(struct proto_rd *rd, uint8_t *out);
SPK_WUR bool proto_rd_u16(struct proto_rd *rd, uint16_t *out); /* big-endian */
SPK_WUR bool proto_rd_u32(struct proto_rd *rd, uint32_t *out); /* big-endian */
SPK_WUR bool proto_rd_u64(struct proto_rd *rd, uint64_t *out); /* big-endian */
/* proto_rd_bytes copies |n| bytes into |out|. */
SPK_WUR bool proto_rd_copy(struct proto_rd *rd, uint8_t *out, size_t n);
/* proto_rd_sub makes |child| the next |n| bytes and advances past them. */
SPK_WUR bool proto_rd_sub(struct proto_rd *rd, struct proto_rd *child, size_t n);
SPK_WUR bool proto_rd_u16_prefixed(struct proto_rd *rd, struct proto_rd *child);
/*
 * proto_rd_line makes |line| the bytes before the next '\n' and advances past
 * the '\n'. Fails when no '\n' is left or the line holds a '\r' or a NUL.
 */
SPK_WUR bool proto_rd_line(struct proto_rd *rd, struct proto_rd *line);
/* proto_rd_word makes |word| the bytes before the next ' ' (or the end) and
 * advances past that one ' '. Fails on an empty word. */
SPK_WUR bool proto_rd_word(struct proto_rd *rd, struct proto_rd *word);
/* proto_rd_equals is true when the rest of |rd| is exactly |s|. */
bool proto_rd_equals(const struct proto_rd *rd, const char *s);
/* proto_rd_peek_offset: how far |rd| has moved from |start| (same buffer). */
size_t proto_rd_offset(const struct proto_rd *rd, const uint8_t *start);

/* ---- fixed-buffer writer ----------------------------------------------- */

struct proto_wr {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool failed; /* sticky: set once any write did not fit */
};

void proto_wr_init(struct proto_wr *wr, uint8_t *buf, size_t cap);
SPK_WUR bool proto_wr_u8(struct proto_wr *wr, uint8_t v);
SPK_WUR bool proto_wr_u16(struct proto_wr *wr, uint16_t v);
SPK_WUR bool proto_wr_u32(struct proto_wr *wr, uint32_t v);
SPK_WUR bool proto_wr_u64(struct proto_wr *wr, uint64_t v);
SPK_WUR bool proto_wr_bytes(struct proto_wr *wr, const uint8_t *p, size_t n);
SPK_WUR bool proto_wr_str(struct proto_wr *wr, const char *s);
/* proto_wr_reserve returns a pointer to |n| bytes to fill in, or NULL. */
uint8_t *proto_wr_reserve(struct proto_wr *wr, size_t n);
/* proto_wr_put_u16_at overwrites two bytes already written (a length prefix). */
SPK_WUR bool proto_wr_put_u16_at(struct proto_wr *wr, size_t at, uint16_t v);
SPK_WUR bool proto_wr_put_u32_at(struct proto_wr *wr, size_t at, uint32_t v);

/* ---- text encodings (proto_text.c) -------------------------------------- */

/* proto_hex_decode: lowercase hex of exactly |out_len| bytes; constant time in
 * the digit values, so it may carry secrets. */
SPK_WUR bool proto_hex_decode(const struct proto_rd *in, uint8_t *out, size_t out_len);
/* proto_hex_decode_var: lowercase hex of 1..|cap| bytes without a leading zero
 * byte (minimal big-endian integers: modulus, exponent, signature are exact). */
SPK_WUR bool proto_hex_decode_var(const struct proto_rd *in, uint8_t *out, size_t cap,
                                  size_t *out_len);
SPK_WUR bool proto_wr_hex(struct proto_wr *wr, const uint8_t *p, size_t n);
/* Z85 (ZeroMQ RFC 32) of a 32-byte key, 40 characters; constant time. */
SPK_WUR bool proto_z85_decode_key(const struct proto_rd *in, uint8_t out[32]);
SPK_WUR bool proto_wr_z85_key(struct proto_wr *wr, const uint8_t key[32]);
/* Standard base64 with padding, no line breaks. */
SPK_WUR bool proto_base64_decode(const struct proto_rd *in, uint8_t *out, size_t cap,
                                 size_t *out_len);
SPK_WUR bool proto_wr_base64(struct proto_wr *wr, const uint8_t *p, size_t n);
/* proto_name_valid: [A-Za-z0-9._-]{1,PROTO_NAME_MAX}, not starting with '.'. */
bool proto_name_valid(const struct proto_rd *name);

/*
 * proto_dec_decode: a decimal number without sign or leading zeros ("0" alone
 * is zero), at most 10 digits, in [|min|, |max|].
 */
SPK_WUR bool proto_dec_decode(const struct proto_rd *in, uint32_t min, uint32_t max, uint32_t *out);
SPK_WUR bool proto_wr_dec(struct proto_wr *wr, uint32_t v);

/* ---- text lines (proto_text.c) -------------------------------------------- */

/*
 * proto_text_open starts the decoding of a text file: |rd| reads |in| and is
 * past its first line, "MAGIC VERSION\n". Returns 0 when that line is |magic|
 * at |version|, SPK_ERR_VERSION for |magic| with another decimal version,
 * SPK_ERR_MALFORMED for anything else, a file longer than |max_len| included.
 */
SPK_WUR int proto_text_open(struct proto_rd *rd, const uint8_t *in, size_t in_len, size_t max_len,
                            const char *magic, uint32_t version);
/*
 * proto_text_field reads the next line, which must be "KEY VALUE\n" with this
 * |key| and one space; |value| is the non-empty rest of the line (it may hold
 * spaces: the caller's decoder of VALUE refuses them).
 */
SPK_WUR bool proto_text_field(struct proto_rd *rd, const char *key, struct proto_rd *value);
/*
 * proto_text_field_dec reads a "KEY VALUE\n" line, as proto_text_field, whose
 * VALUE is a decimal number in [min, max] (proto_dec_decode).
 */
SPK_WUR bool proto_text_field_dec(struct proto_rd *rd, const char *key, uint32_t min, uint32_t max,
                                  unsigned *out);
/* proto_wr_field_key writes "KEY " (the caller writes the value and "\n"). */
SPK_WUR bool proto_wr_field_key(struct proto_wr *wr, const char *key);
/* proto_name_copy: a valid name (proto_name_valid) into |out| with a NUL. */
SPK_WUR bool proto_name_copy(const struct proto_rd *name, char out[PROTO_NAME_MAX + 1]);
/* proto_name_str_valid: proto_name_valid of a NUL-terminated string of at
 * most PROTO_NAME_MAX characters within |s|'s PROTO_NAME_MAX + 1 bytes. */
bool proto_name_str_valid(const char s[PROTO_NAME_MAX + 1]);

/* ---- the field (proto_text.c) ------------------------------------------- */

/* proto_field_y_len returns ceil(bits/8) for the Mersenne exponents splitkey
 * uses (1279, 2203, 2281, 3217, 4253), or 0 for any other value. */
size_t proto_field_y_len(unsigned field_bits);

/*
 * proto_rd_mode_or_field reads the line that says how a key is split, in
 * records and share files: "field BITS" (rebuild mode, BITS in 1..2^32-1; the
 * caller checks it is a field) or exactly "mode threshold" (threshold mode,
 * *field_bits = 0). Any other line fails.
 */
SPK_WUR bool proto_rd_mode_or_field(struct proto_rd *rd, uint8_t *mode, unsigned *field_bits);
/* proto_wr_mode_or_field writes that line; false for an unknown mode. */
SPK_WUR bool proto_wr_mode_or_field(struct proto_wr *wr, uint8_t mode, unsigned field_bits);

/* ---- holder key files (proto_keyfile.c) ------------------------------------ */

struct proto_holder_pub {
    char name[PROTO_NAME_MAX + 1];
    uint8_t curve_pk[PROTO_X25519_LEN];   /* ZeroMQ CURVE transport key */
    uint8_t storage_pk[PROTO_X25519_LEN]; /* crypto_box_seal key for shares at rest */
};

/* WARNING: holds secret keys; keep it in spk_secret_new() memory. */
struct proto_holder_secret {
    struct proto_holder_pub pub;
    uint8_t curve_sk[PROTO_X25519_LEN];
    uint8_t storage_sk[PROTO_X25519_LEN];
};

SPK_WUR int proto_holder_pub_decode(struct proto_holder_pub *out, const uint8_t *in, size_t in_len);
SPK_WUR int proto_holder_pub_encode(uint8_t *out, size_t cap, size_t *out_len,
                                    const struct proto_holder_pub *pub);
SPK_WUR int proto_holder_secret_decode(struct proto_holder_secret *out, const uint8_t *in,
                                       size_t in_len);
SPK_WUR int proto_holder_secret_encode(uint8_t *out, size_t cap, size_t *out_len,
                                       const struct proto_holder_secret *key);

/* ---- key record (proto_record.c) --------------------------------------- */

/*
 * How a key is split. Rebuild (the default, zero): Shamir shares of the CRT
 * tuple over a Mersenne field, rebuilt by the combiner. Threshold: Shoup key
 * shares s_i (modulus-length big-endian), used only for signature shares.
 */
enum proto_mode {
    PROTO_MODE_REBUILD = 0,
    PROTO_MODE_THRESHOLD = 1,
};

struct proto_record_share {
    uint8_t index; /* x, 1..255 */
    char holder[PROTO_NAME_MAX + 1];
    uint8_t commitment[PROTO_COMMIT_LEN];
};

struct proto_record {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t modulus[PROTO_BN_MAX];
    size_t modulus_len;
    uint8_t exponent[PROTO_EXP_MAX];
    size_t exponent_len;
    unsigned threshold;  /* k */
    unsigned num_shares; /* n */
    uint8_t mode;        /* enum proto_mode */
    unsigned field_bits; /* rebuild mode; 0 in threshold mode */
    struct proto_record_share shares[PROTO_SHARES_MAX];
    /* Threshold mode of a safe-prime key only (PROTOCOL.md 5.1): Shoup's
     * verification keys, each modulus_len bytes, big-endian, in [2, n). */
    bool has_vkeys;
    uint8_t vkey_base[PROTO_BN_MAX]; /* v */
    uint8_t vkeys[PROTO_VKEYS_MAX];  /* v_i of share i at (i - 1) * modulus_len */
    uint8_t signature[PROTO_BN_MAX];
    size_t signature_len;
    size_t signed_len; /* decode: the signature covers in[0, signed_len) */
};

SPK_WUR int proto_record_decode(struct proto_record *out, const uint8_t *in, size_t in_len);
/* proto_record_encode_body writes every line the signature covers. */
SPK_WUR int proto_record_encode_body(uint8_t *out, size_t cap, size_t *out_len,
                                     const struct proto_record *rec);
/* proto_record_encode writes the body and the signature line. */
SPK_WUR int proto_record_encode(uint8_t *out, size_t cap, size_t *out_len,
                                const struct proto_record *rec);
/* proto_record_modulus_bits: the bit length of rec->modulus (0 for none). */
unsigned proto_record_modulus_bits(const struct proto_record *rec);
/* proto_record_find_share returns the entry with |index|, or NULL. */
const struct proto_record_share *proto_record_find_share(const struct proto_record *rec,
                                                         uint8_t index);
/* proto_record_vkey: v_|index| (modulus_len bytes) of a record with
 * verification keys, or NULL (none, or no share |index|). */
const uint8_t *proto_record_vkey(const struct proto_record *rec, unsigned index);

/* ---- share file (proto_sharefile.c) -------------------------------------- */

struct proto_share_file {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t index;
    char holder[PROTO_NAME_MAX + 1];
    unsigned threshold;
    unsigned num_shares;
    uint8_t mode;        /* enum proto_mode */
    unsigned field_bits; /* rebuild mode; 0 in threshold mode */
    /* crypto_box_seal(y_1 || ... || y_5) to the holder's storage key; in
     * threshold mode crypto_box_seal(s_i), s_i of the modulus' length */
    uint8_t sealed[PROTO_SEALED_MAX];
    size_t sealed_len; /* exactly PROTO_SEAL_OVERHEAD + 5 * y_len, or + the modulus length */
};

SPK_WUR int proto_share_file_decode(struct proto_share_file *out, const uint8_t *in, size_t in_len);
SPK_WUR int proto_share_file_encode(uint8_t *out, size_t cap, size_t *out_len,
                                    const struct proto_share_file *sf);

/* ---- key id (proto_keyid.c) ------------------------------------------------- */

/* OpenSSL's key type, declared as openssl/types.h does, so users need not include it. */
typedef struct evp_pkey_st EVP_PKEY;

/* proto_key_id_from_spki: the key id of the DER SubjectPublicKeyInfo |spki| (its SHA-256). */
void proto_key_id_from_spki(uint8_t out[PROTO_KEY_ID_LEN], const uint8_t *spki, size_t spki_len);
/* proto_key_id: the key id of |pkey|'s public half. 0 or SPK_ERR_CRYPTO (no DER encoding). */
SPK_WUR int proto_key_id(uint8_t out[PROTO_KEY_ID_LEN], const EVP_PKEY *pkey);

/* ---- key reference (proto_keyref.c) --------------------------------------- */

/*
 * A key reference stands where a private key file stood: the PEM body of a
 * "SPLITKEY KEY REFERENCE" block that splitkey.so decodes into a key that
 * holds only the public half. It holds no secret. PROTOCOL.md, "Key
 * reference", is normative.
 */
#define PROTO_KEYREF_MAX 4096  /* the decoded PEM body */
#define PROTO_SPKI_MAX 1100    /* DER SubjectPublicKeyInfo of RSA-8192 is 1,062 */
#define PROTO_ENDPOINT_MAX 255 /* ipc://PATH or tcp://HOST:PORT */
#define PROTO_PATH_MAX 1023

struct proto_keyref {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t spki[PROTO_SPKI_MAX]; /* DER SubjectPublicKeyInfo, not parsed here */
    size_t spki_len;
    char endpoint[PROTO_ENDPOINT_MAX + 1];
    /* tcp:// with CURVE: the combiner's transport key and our key file. */
    bool has_curve;
    uint8_t combiner_pk[PROTO_X25519_LEN];
    char client_key[PROTO_PATH_MAX + 1];
};

SPK_WUR int proto_keyref_decode(struct proto_keyref *out, const uint8_t *in, size_t in_len);
SPK_WUR int proto_keyref_encode(uint8_t *out, size_t cap, size_t *out_len,
                                const struct proto_keyref *ref);
/* proto_endpoint_valid: "unix://", "ipc://" or "tcp://" and 1.. printable
 * non-space characters, PROTO_ENDPOINT_MAX in all. */
bool proto_endpoint_valid(const char *s);

/*
 * proto_record_load reads key record file |path| (at most PROTO_FILE_MAX
 * bytes) and decodes it into *out; proto_share_file_load does the same for a
 * share file. The only loaders of these files: every part calls them. On
 * failure |why| (may be NULL) gets one line that names the file and the
 * problem ("cannot read record 'P': No such file or directory", "'P' is not a
 * key record: malformed input"); SPK_ERR_IO means the file could not be read.
 * A share file is read as a secret file (spk_file_read_private), so one that
 * group or others may read is refused with SPK_ERR_PERMISSIONS. A record's
 * signature is not checked here (split_record_verify does).
 */
/* Room for a loader's |why|: a path and a reason. */
#define PROTO_PATH_WHY_MAX (4096 + 128)

SPK_WUR int proto_record_load(struct proto_record *out, const char *path, char *why,
                              size_t why_len);
SPK_WUR int proto_share_file_load(struct proto_share_file *out, const char *path, char *why,
                                  size_t why_len);

/* ==== wire messages (proto_wire.c) ==== owner: wire protocol (H4) ========= */

/*
 * One wire message per ZeroMQ frame: a 17-byte header, then TLV items.
 *   magic "SK" (2) | version u8 = 1 | type u8 | flags u8 = 0 |
 *   request id u64 | body length u32 (= the rest of the frame exactly)
 * Items: tag u8 | length u16 | value, tags strictly ascending (so no
 * duplicates and one encoding per message). proto/PROTOCOL.md ("Wire
 * protocol") is normative.
 */
#define PROTO_WIRE_VERSION 1
#define PROTO_WIRE_HDR_LEN 17
#define PROTO_ERR_TEXT_MAX 128
#define PROTO_SHA256_LEN 32
#define PROTO_AEAD_NONCE_LEN 24 /* XChaCha20-Poly1305 */
#define PROTO_AEAD_TAG_LEN 16
#define PROTO_SHARE_Y_MAX (PROTO_NUM_SECRETS * PROTO_FIELD_Y_MAX)
#define PROTO_SHARE_CT_MAX (PROTO_SHARE_Y_MAX + PROTO_AEAD_TAG_LEN)
/* Associated data of a sealed share: header || key id || split id || index ||
 * field (u16). */
#define PROTO_SHARE_AD_LEN (PROTO_WIRE_HDR_LEN + PROTO_KEY_ID_LEN + PROTO_SPLIT_ID_LEN + 1 + 2)

enum proto_msg_type {
    PROTO_MSG_PING = 1,
    PROTO_MSG_PONG = 2,
    PROTO_MSG_SHARE_REQUEST = 3,
    PROTO_MSG_SHARE_RESPONSE = 4,
    PROTO_MSG_OP_REQUEST = 5,
    PROTO_MSG_OP_RESPONSE = 6,
    PROTO_MSG_ERROR = 7,
    PROTO_MSG_SIGSHARE_REQUEST = 8,
    PROTO_MSG_SIGSHARE_RESPONSE = 9,
};

/* Operation kinds (SHARE_REQUEST for the audit log, OP_REQUEST to run). */
enum proto_op {
    PROTO_OP_SIGN_PKCS1_SHA1 = 0x01,
    PROTO_OP_SIGN_PKCS1_SHA224 = 0x02,
    PROTO_OP_SIGN_PKCS1_SHA256 = 0x03,
    PROTO_OP_SIGN_PKCS1_SHA384 = 0x04,
    PROTO_OP_SIGN_PKCS1_SHA512 = 0x05,
    PROTO_OP_SIGN_PKCS1_MD5SHA1 = 0x06,
    PROTO_OP_SIGN_PSS_SHA256 = 0x11,
    PROTO_OP_SIGN_PSS_SHA384 = 0x12,
    PROTO_OP_SIGN_PSS_SHA512 = 0x13,
    PROTO_OP_DECRYPT_PKCS1 = 0x21,
    PROTO_OP_DECRYPT_TLS_PREMASTER = 0x22,
    PROTO_OP_DECRYPT_OAEP_SHA1 = 0x23,
    PROTO_OP_DECRYPT_OAEP_SHA256 = 0x24,
    PROTO_OP_DECRYPT_RAW = 0x25,
};

/* What an operation does with the key; the RSA engine's request kinds. */
enum proto_op_kind {
    PROTO_OP_KIND_RAW = 1,       /* out = in^d mod n */
    PROTO_OP_KIND_SIGN_PKCS1,    /* in is a digest; RSASSA-PKCS1-v1_5 */
    PROTO_OP_KIND_SIGN_PSS,      /* in is a digest; MGF1 of the same hash, salt = digest length */
    PROTO_OP_KIND_DECRYPT_TLS,   /* TLS RSA key exchange with implicit rejection; 48 bytes out */
    PROTO_OP_KIND_DECRYPT_PKCS1, /* RSAES-PKCS1-v1_5 */
    PROTO_OP_KIND_DECRYPT_OAEP,  /* RSAES-OAEP, label hash and MGF1 of |hash| */
};

/* The hashes operations name. */
enum proto_hash {
    PROTO_HASH_NONE = 0,
    PROTO_HASH_MD5_SHA1, /* the TLS 1.0/1.1 36-byte MD5 || SHA-1 digest */
    PROTO_HASH_SHA1,
    PROTO_HASH_SHA224,
    PROTO_HASH_SHA256,
    PROTO_HASH_SHA384,
    PROTO_HASH_SHA512,
};

/*
 * struct proto_op_info: one row of the table of operation kinds, the only
 * one in shipped code. Every field is static.
 */
struct proto_op_info {
    uint8_t op;             /* enum proto_op */
    const char *name;       /* wire, log and audit name: "sign-pss-sha256" */
    const char *short_name; /* the combiner command's name: "pss-sha256" */
    enum proto_op_kind kind;
    enum proto_hash hash; /* a signature's digest, OAEP's hash, else NONE */
    const char *md;       /* OpenSSL's name for |hash| ("SHA256", "MD5-SHA1"), or NULL */
    size_t digest_len;    /* a signature's input length; 0 for a decryption */
};

/* proto_op_info returns the row of |op|, or NULL when |op| is not an operation. */
const struct proto_op_info *proto_op_info(uint8_t op);
/* proto_op_info_by_name returns the row whose name or short name is |name|, or NULL. */
const struct proto_op_info *proto_op_info_by_name(const char *name);
/* proto_op_table returns every row and their number in *num. */
const struct proto_op_info *proto_op_table(size_t *num);
/* proto_op_is_sign: the op is a signature (its input is a digest). */
bool proto_op_is_sign(const struct proto_op_info *info);
/* proto_op_valid: |op| is one of enum proto_op. */
bool proto_op_valid(uint8_t op);
/* proto_op_name: "sign-pkcs1-sha256" etc., or "unknown". Static string. */
const char *proto_op_name(uint8_t op);
/* proto_op_from_name: the op called |name| (either name), or 0. */
uint8_t proto_op_from_name(const char *name);
/* proto_op_digest_len: the input length a signing op takes (20 for SHA-1, 36
 * for MD5+SHA-1, ...), or 0 for a decryption. */
size_t proto_op_digest_len(uint8_t op);

/* The most operations one released share may serve (SHARE_REQUEST op-count). */
#define PROTO_OP_COUNT_MAX 64

/* SHARE_REQUEST: requester -> holder. */
struct proto_share_req {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t op;                             /* enum proto_op (of every operation served) */
    uint8_t input_digest[PROTO_SHA256_LEN]; /* proto_ops_digest over every operation's input */
    uint8_t requester_pk[PROTO_X25519_LEN]; /* requester's crypto_kx client key */
    uint16_t op_count;                      /* operations the share will serve, 1..64 */
};

/*
 * SHARE_RESPONSE: holder -> requester. |sealed| is y_1..y_5 under
 * XChaCha20-Poly1305 with the holder's crypto_kx tx key of the session
 * (holder |session_pk|, requester_pk), |nonce|, and AD from proto_share_ad.
 */
struct proto_share_resp {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t index;       /* x, 1..255 */
    uint16_t field_bits; /* proto_field_y_len(field_bits) != 0 */
    uint8_t session_pk[PROTO_X25519_LEN];
    uint8_t nonce[PROTO_AEAD_NONCE_LEN];
    uint8_t sealed[PROTO_SHARE_CT_MAX];
    size_t sealed_len; /* exactly 5 * y_len + PROTO_AEAD_TAG_LEN */
};

/*
 * SIGSHARE_REQUEST: requester -> holder of a threshold-mode key share. The
 * holder encodes the message itself from |op|, |digest| and (PSS) |salt|,
 * so it never exponentiates a value it did not encode. The decoder takes
 * any op and 1..64-byte digests and 0..64-byte salts; the holder refuses
 * what does not fit the op, with a clear error code.
 */
#define PROTO_DIGEST_MAX 64
struct proto_sigshare_req {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t op; /* enum proto_op */
    uint8_t digest[PROTO_DIGEST_MAX];
    size_t digest_len; /* 1..PROTO_DIGEST_MAX */
    uint8_t salt[PROTO_DIGEST_MAX];
    size_t salt_len; /* 0 (no item) .. PROTO_DIGEST_MAX */
};

/*
 * Shoup's proof that a signature share is correct (PROTOCOL.md 7.3): the
 * challenge c, L1 = 128 bits, and the response z = s_i c + r, r of
 * bits(N) + 2 L1 bits, written in exactly the modulus length + 33 bytes.
 */
#define PROTO_TSS_C_LEN 16
#define PROTO_TSS_Z_EXTRA 33
#define PROTO_TSS_Z_MAX (PROTO_BN_MAX + PROTO_TSS_Z_EXTRA)

/* SIGSHARE_RESPONSE: the signature share x_i, exactly the modulus length,
 * with its proof (c, z) when the key's record has verification keys. */
struct proto_sigshare_resp {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t index; /* i, 1..255 */
    uint8_t share[PROTO_BN_MAX];
    size_t share_len; /* 1..PROTO_BN_MAX */
    bool has_proof;
    uint8_t proof_c[PROTO_TSS_C_LEN];
    uint8_t proof_z[PROTO_TSS_Z_MAX]; /* share_len + PROTO_TSS_Z_EXTRA bytes */
};

/* OP_REQUEST: edge -> combiner. |input| is the digest for a signature (its
 * length fixed by the hash) or the ciphertext for a decryption. */
struct proto_op_req {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t op; /* enum proto_op */
    uint8_t input[PROTO_BN_MAX];
    size_t input_len;
    uint16_t client_version; /* PROTO_OP_DECRYPT_TLS_PREMASTER only, else 0 */
};

/* OP_RESPONSE: combiner -> edge. */
struct proto_op_resp {
    uint8_t result[PROTO_BN_MAX];
    size_t result_len; /* 1..PROTO_BN_MAX */
};

/* ERROR: either way. |code| is a wire error code (proto_err_to_wire). */
struct proto_err_msg {
    uint16_t code;
    char text[PROTO_ERR_TEXT_MAX + 1]; /* printable ASCII, NUL-terminated, may be "" */
};

struct proto_msg {
    uint8_t type;    /* enum proto_msg_type */
    uint64_t req_id; /* echoed by the answer */
    union {
        struct proto_share_req share_req;
        struct proto_share_resp share_resp;
        struct proto_op_req op_req;
        struct proto_op_resp op_resp;
        struct proto_err_msg error;
        struct proto_sigshare_req sigshare_req;
        struct proto_sigshare_resp sigshare_resp;
    } u; /* PING and PONG have no body */
};

/*
 * proto_msg_decode parses one frame into |out|. Returns 0, SPK_ERR_VERSION
 * for another protocol version, or SPK_ERR_MALFORMED for anything else that
 * is not exactly one valid message (bad magic, type, flags, tag, order,
 * length, a missing or extra item, trailing bytes, a frame > PROTO_MSG_MAX).
 * Pure: no I/O, no allocation. |out| is undefined on failure.
 */
SPK_WUR int proto_msg_decode(struct proto_msg *out, const uint8_t *in, size_t in_len);

/*
 * proto_msg_encode writes |m| into |out| (|cap| bytes) and sets |*out_len|.
 * Returns 0, SPK_ERR_INVALID_ARG when |m| is not a valid message (the same
 * rules the decoder applies), or SPK_ERR_NOMEM when |cap| is too small.
 */
SPK_WUR int proto_msg_encode(uint8_t *out, size_t cap, size_t *out_len, const struct proto_msg *m);

/*
 * proto_op_answer reads the combiner's answer |m| to an OP_REQUEST: for
 * OP_RESPONSE copies the result into |out| (|out_cap| bytes), sets *out_len
 * and returns 0 (SPK_ERR_INTERNAL if it does not fit); for ERROR returns its
 * SPK_ERR_* (SPK_ERR_INTERNAL for a code that maps to none); any other type
 * is SPK_ERR_MALFORMED.
 */
SPK_WUR int proto_op_answer(const struct proto_msg *m, uint8_t *out, size_t out_cap,
                            size_t *out_len);

/*
 * proto_msg_peek reads only the header of |in|: its type and request id, so
 * an answer to a frame that does not decode can still name the request.
 * Returns 0, SPK_ERR_VERSION or SPK_ERR_MALFORMED.
 */
SPK_WUR int proto_msg_peek(const uint8_t *in, size_t in_len, uint8_t *out_type,
                           uint64_t *out_req_id);

/*
 * proto_share_ad writes the associated data of the sealed share in the
 * SHARE_RESPONSE frame |frame|: its first PROTO_WIRE_HDR_LEN bytes, key id,
 * split id, index and field bits (big-endian u16) of |m|. False when |frame|
 * is shorter than a header.
 */
SPK_WUR bool proto_share_ad(uint8_t out[PROTO_SHARE_AD_LEN], const uint8_t *frame, size_t frame_len,
                            const struct proto_share_resp *m);

/*
 * The input-digest of a SHARE_REQUEST (PROTOCOL.md 7.3): one SHA-256 over
 * every operation the share will serve, in batch order, each as
 * op (u8) || input length (u16) || input. Init, add each operation, final.
 */
struct proto_ops_digest {
    crypto_hash_sha256_state sha;
    size_t num_ops;
};

void proto_ops_digest_init(struct proto_ops_digest *d);
/* proto_ops_digest_add: false (and |d| unchanged) when |in_len| is 0 or over
 * PROTO_BN_MAX, or PROTO_OP_COUNT_MAX operations were added already. */
SPK_WUR bool proto_ops_digest_add(struct proto_ops_digest *d, uint8_t op, const uint8_t *in,
                                  size_t in_len);
/* proto_ops_digest_final writes the digest and wipes |d|. */
void proto_ops_digest_final(struct proto_ops_digest *d, uint8_t out[PROTO_SHA256_LEN]);

/*
 * Wire error codes are the positive values of these SPK_ERR_*: UNKNOWN_KEY,
 * NOT_ALLOWED, RATE_LIMITED, MALFORMED, VERSION, INTERNAL, UNAVAILABLE,
 * TIMEOUT, FAULT, DECRYPT, UNSUPPORTED, THRESHOLD. proto_err_to_wire maps any other
 * SPK_ERR_* to INTERNAL's code. proto_err_from_wire returns the SPK_ERR_* of
 * a wire code, or 0 when |code| is not one (the decoder refuses those).
 */
uint16_t proto_err_to_wire(int err);
int proto_err_from_wire(uint16_t code);

/* ==== end of wire messages ================================================ */

#endif
