#ifndef SPK_SPLIT_RSA_H
#define SPK_SPLIT_RSA_H

/*
 * Included by split/split.h: RSA keys, key records, sealed shares, holder key
 * files, and putting opened shares back together. Everything here is what
 * keysplit needs, and what the share-holder and the combiner reuse so that a
 * share is checked the same way everywhere.
 */

#define SPLIT_RSA_BITS_MIN 2048
#define SPLIT_RSA_BITS_MAX 8192
/* Room for the |why| buffers below: their messages name files, whose paths
 * may be long (192 bytes cut "cannot read passphrase file P: permissions too
 * open ... (chmod 600)" short of its fix for a P of 50 characters). */
#define SPLIT_WHY_MAX PROTO_PATH_WHY_MAX
/* RSA-PSS over a record body: SHA-256, MGF1 with SHA-256, 32-byte salt. */
#define SPLIT_RECORD_SALT_LEN 32

/* ---- RSA keys (split_rsa.c) ------------------------------------------------ */

/*
 * struct split_rsa_key is a private key loaded for splitting, with its public
 * parts copied out. |pkey| is owned; release everything with
 * split_rsa_key_cleanup (safe after zero-initialisation).
 */
struct split_rsa_key {
    EVP_PKEY *pkey;
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t modulus[PROTO_BN_MAX]; /* big-endian, no leading zero */
    size_t modulus_len;
    uint8_t exponent[PROTO_EXP_MAX];
    size_t exponent_len;
    unsigned bits;       /* of the modulus */
    unsigned prime_bits; /* of the larger of p and q */
};

/*
 * split_rsa_key_load reads a PEM private key (PKCS#1 or PKCS#8, optionally
 * encrypted) from |pem_path|. |passphrase_path| may be NULL; otherwise the
 * passphrase is that file's contents less one trailing newline. Only two-prime
 * RSA keys of SPLIT_RSA_BITS_MIN..SPLIT_RSA_BITS_MAX bits with all CRT values
 * and a public exponent of at most PROTO_EXP_MAX bytes are taken.
 *
 * Returns 0, SPK_ERR_IO (cannot read a file), SPK_ERR_PASSPHRASE (encrypted and
 * no or a wrong passphrase), SPK_ERR_MALFORMED (not a PEM private key), or
 * SPK_ERR_KEY_UNSUPPORTED. On failure a one-line reason, without a trailing
 * newline, is written to |why| (may be NULL). The file contents and the
 * passphrase are read into secret memory and wiped.
 */
SPK_WUR int split_rsa_key_load(struct split_rsa_key *key, const char *pem_path,
                               const char *passphrase_path, char *why, size_t why_len);

/* split_rsa_key_cleanup frees the key and zeroes |key|. */
void split_rsa_key_cleanup(struct split_rsa_key *key);

/*
 * split_rsa_tuple_export writes p, q, dp, dq, qinv of |key| into |out_tuple|
 * (split_tuple_len(f) bytes, secret memory owned by the caller), each value
 * big-endian and zero-padded to f->y_len. Every temporary BIGNUM is
 * BN_clear_free'd. SPK_ERR_KEY_UNSUPPORTED if a value does not fit the field.
 */
SPK_WUR int split_rsa_tuple_export(uint8_t *out_tuple, const struct split_field *f,
                                   const struct split_rsa_key *key);

/*
 * split_rsa_tuple_check: 0 when p * q of |tuple| equals the modulus |n|
 * (big-endian), SPK_ERR_KEY_MISMATCH otherwise.
 */
SPK_WUR int split_rsa_tuple_check(const struct split_field *f, const uint8_t *tuple,
                                  const uint8_t *n, size_t n_len);

/*
 * split_rsa_pkey_from_tuple builds a private EVP_PKEY (*out, freed by the
 * caller with EVP_PKEY_free) from a tuple and the public n, e. d is
 * e^-1 mod lcm(p-1, q-1), as OpenSSL generates it, computed as (1 + t * L) / e
 * for the t in [1, e) with t * L = -1 mod e, L = lcm(p-1, q-1), which needs
 * no inverse modulo a secret. Checks p * q == n first
 * (SPK_ERR_KEY_MISMATCH). WARNING: the key lives in OpenSSL memory; free it
 * as soon as it has been used.
 */
SPK_WUR int split_rsa_pkey_from_tuple(EVP_PKEY **out, const struct split_field *f,
                                      const uint8_t *tuple, const uint8_t *n, size_t n_len,
                                      const uint8_t *e, size_t e_len);

/* split_rsa_pkey_public builds a public EVP_PKEY (*out, caller frees) from n, e. */
SPK_WUR int split_rsa_pkey_public(EVP_PKEY **out, const uint8_t *n, size_t n_len, const uint8_t *e,
                                  size_t e_len);

/*
 * split_rsa_pem_write_new writes |pkey| as an unencrypted PKCS#8 PEM to a new
 * file |path| with mode 0600 (SPK_ERR_EXISTS if it exists; nothing is left on
 * failure). The encoded text is wiped.
 */
SPK_WUR int split_rsa_pem_write_new(const char *path, const EVP_PKEY *pkey);

/* ---- key records (split_rsa.c) -------------------------------------------- */

/*
 * split_record_sign signs proto_record_encode_body(|rec|) with the private
 * |pkey| (RSA-PSS, SHA-256, MGF1-SHA-256, salt SPLIT_RECORD_SALT_LEN) into
 * rec->signature.
 */
SPK_WUR int split_record_sign(struct proto_record *rec, EVP_PKEY *pkey);

/*
 * split_record_verify checks that rec->key_id is the key id of rec's n and e,
 * and that rec->signature is the key's signature over
 * proto_record_encode_body(|rec|). 0 or SPK_ERR_BAD_SIGNATURE (or
 * SPK_ERR_MALFORMED / SPK_ERR_KEY_UNSUPPORTED for a record that cannot be a
 * key of ours).
 */
SPK_WUR int split_record_verify(const struct proto_record *rec);

/* ---- sealed shares and holder keys (split_seal.c) --------------------------- */

/*
 * split_share_seal seals |y| (5 * y_len bytes of the field sf->field_bits) to
 * |holder|'s storage key with crypto_box_seal into sf->sealed, and sets
 * sf->sealed_len and sf->holder. The caller fills the other fields.
 */
SPK_WUR int split_share_seal(struct proto_share_file *sf, const struct proto_holder_pub *holder,
                             const uint8_t *y, size_t y_len);

/*
 * split_share_open opens sf->sealed with |key| into |out_y| (|out_len| must be
 * 5 * y_len of sf->field_bits; secret memory owned by the caller).
 * SPK_ERR_WRONG_HOLDER if the share names another holder, SPK_ERR_UNSEAL if it
 * does not open (|out_y| is then zeroed), SPK_ERR_MALFORMED for bad lengths
 * or a y_j that is not below the field's M (|out_y| zeroed too).
 */
SPK_WUR int split_share_open(uint8_t *out_y, size_t out_len, const struct proto_share_file *sf,
                             const struct proto_holder_secret *key);

/*
 * split_holder_keygen fills |out| (which should be spk_secret_new memory) with
 * |name| and fresh X25519 CURVE and storage keypairs.
 */
SPK_WUR int split_holder_keygen(struct proto_holder_secret *out, const char *name);

/*
 * split_holder_secret_check derives both public keys from the secret ones and
 * compares them with those in the file: 0 or SPK_ERR_KEY_MISMATCH.
 */
SPK_WUR int split_holder_secret_check(const struct proto_holder_secret *key);

/*
 * split_holder_secret_load reads and decodes a NAME.key file into a new
 * spk_secret_new buffer (*out, free with spk_secret_free) and runs
 * split_holder_secret_check. The file text is read into secret memory too.
 */
SPK_WUR int split_holder_secret_load(struct proto_holder_secret **out, const char *path);

/*
 * split_io_reason: why |path| could not be read, after |r| from
 * spk_file_read or a loader here, for a message (errno's text when it is not
 * there, "is a directory", else spk_strerror). The string is static.
 */
const char *split_io_reason(const char *path, int r);
/* split_holder_pub_load reads and decodes a NAME.pub file. */
SPK_WUR int split_holder_pub_load(struct proto_holder_pub *out, const char *path);

/* ---- splitting and combining (split_combine.c) ----------------------------- */

/*
 * split_key_split splits |key| k-of-n to |holders| (n entries; holder i gets
 * x = i + 1): draws a split id, shares the CRT tuple, fills |rec| (commitments,
 * signature by |key|) and |out_shares| (n entries, sealed to each holder).
 * Refuses k < 2, k > n, n > PROTO_SHARES_MAX, invalid or duplicate holder
 * names and duplicate holder keys (SPK_ERR_INVALID_ARG, reason in |why|). All
 * secret intermediates are in secret memory and wiped.
 */
SPK_WUR int split_key_split(struct proto_record *rec, struct proto_share_file *out_shares,
                            const struct split_rsa_key *key, unsigned k,
                            const struct proto_holder_pub *holders, unsigned n, char *why,
                            size_t why_len);

/*
 * split_key_split_threshold: the same in threshold mode (split/split_tss.h):
 * deals key shares s_1 .. s_n, writes a threshold-mode record (indices 1..n,
 * commitments over s_i of the modulus' length, signed by |key|) and sealed
 * share files. When both primes of |key| are safe primes the record also
 * carries Shoup's verification keys (split_tss_vkeys_make). Refuses keys
 * split_tss_deal refuses, and safe-prime keys whose verification keys would
 * exceed PROTO_VKEYS_MAX, with the reason in |why|.
 */
SPK_WUR int split_key_split_threshold(struct proto_record *rec, struct proto_share_file *out_shares,
                                      const struct split_rsa_key *key, unsigned k,
                                      const struct proto_holder_pub *holders, unsigned n, char *why,
                                      size_t why_len);

/* One opened share, as the combiner and keysplit hold it. */
struct split_opened_share {
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t split_id[PROTO_SPLIT_ID_LEN];
    uint8_t index;
    const char *holder; /* optional: if set, must be the record's holder of index */
    const uint8_t *y;   /* split_tuple_len bytes, secret, owned by the caller */
};

/*
 * split_share_check checks one opened share against |rec| (either mode; |f|
 * is unused, and may be NULL, in threshold mode): same key id and
 * split id (SPK_ERR_MIXED_SPLIT), an index the record lists (else
 * SPK_ERR_COMMITMENT: there is nothing it could match), the record's holder for it if share->holder
 * is set (SPK_ERR_WRONG_HOLDER), every y_j below M (SPK_ERR_MALFORMED: a
 * commitment can be made over any bytes), and its commitment
 * (SPK_ERR_COMMITMENT).
 */
SPK_WUR int split_share_check(const struct proto_record *rec, const struct split_field *f,
                              const struct split_opened_share *share);

/*
 * split_shares_combine checks every one of |shares| with split_share_check,
 * refuses duplicate indexes (SPK_ERR_DUP_INDEX) and fewer than rec->threshold
 * shares (SPK_ERR_THRESHOLD), interpolates the first k into |out_tuple|
 * (split_tuple_len bytes of secret memory owned by the caller) and checks
 * p * q == N (SPK_ERR_KEY_MISMATCH; |out_tuple| is then zeroed). |f| must be
 * the record's field. |arena| gives interpolation scratch (at least
 * split_interpolate_scratch_len(f, rec->threshold)); it is reset (wiped)
 * before returning.
 */
SPK_WUR int split_shares_combine(uint8_t *out_tuple, const struct proto_record *rec,
                                 const struct split_field *f,
                                 const struct split_opened_share *shares, size_t num_shares,
                                 struct spk_arena *arena);
/*
 * split_shares_combine_checked: split_shares_combine for a caller that
 * checked each of |shares| with split_share_check when it came (the
 * combiner, as each share arrives, off the path to the rebuilt key): the
 * same without checking them again. Duplicate indexes, the count and
 * p * q == N are still checked: a share whose p or q part changed since its
 * check gives no key. (A changed dp, dq or qinv part gives wrong results,
 * which the combiner's check with e keeps from leaving.)
 */
SPK_WUR int split_shares_combine_checked(uint8_t *out_tuple, const struct proto_record *rec,
                                         const struct split_field *f,
                                         const struct split_opened_share *shares, size_t num_shares,
                                         struct spk_arena *arena);

#endif
