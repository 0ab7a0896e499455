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

#include "proto/spk_err.h"

#define SPK_WUR __attribute__((warn_unused_result))

/* Hard caps. */
#define PROTO_MSG_MAX (64 * 1024)   /* one wire message */
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
 * proto_text_magic reads the first line of a text file, "MAGIC VERSION\n".
 * Returns 0 when it is |magic| at |version|, SPK_ERR_VERSION for |magic| with
 * another decimal version, SPK_ERR_MALFORMED for anything else.
 */
SPK_WUR int proto_text_magic(struct proto_rd *rd, const char *magic, uint32_t version);
/*
 * proto_text_field reads the next line, which must be "KEY VALUE\n" with this
 * |key| and one space; |value| is the non-empty rest of the line (it may hold
 * spaces: the caller's decoder of VALUE refuses them).
 */
SPK_WUR bool proto_text_field(struct proto_rd *rd, const char *key, struct proto_rd *value);
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
    unsigned field_bits;
    struct proto_record_share shares[PROTO_SHARES_MAX];
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
/* proto_record_find_share returns the entry with |index|, or NULL. */
const struct proto_record_share *proto_record_find_share(const struct proto_record *rec,
                                                         uint8_t index);

/* ---- share file (proto_sharefile.c) -------------------------------------- */

struct proto_share_file {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t index;
    char holder[PROTO_NAME_MAX + 1];
    unsigned threshold;
    unsigned num_shares;
    unsigned field_bits;
    /* crypto_box_seal(y_1 || ... || y_5) to the holder's storage key */
    uint8_t sealed[PROTO_SEALED_MAX];
    size_t sealed_len; /* exactly PROTO_SEAL_OVERHEAD + 5 * y_len */
};

SPK_WUR int proto_share_file_decode(struct proto_share_file *out, const uint8_t *in, size_t in_len);
SPK_WUR int proto_share_file_encode(uint8_t *out, size_t cap, size_t *out_len,
                                    const struct proto_share_file *sf);

#endif
