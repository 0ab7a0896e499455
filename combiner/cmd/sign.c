/*
 * combiner sign: one signature with a split key, from the shares given on
 * the command line, over a digest or over a message hashed here.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "combiner/cmd/cmd.h"

#define SIGN_MESSAGE_MAX (64u * 1024 * 1024)

static void sign_usage(FILE *to)
{
    fprintf(
        to,
        "Usage: combiner sign --record R --share S --holder-key K [--share S --holder-key K ...]\n"
        "                     --alg ALG (--digest HEX | --in FILE) --out FILE\n"
        "       combiner sign --config FILE [--key-id HEX]\n"
        "                     --alg ALG (--digest HEX | --in FILE) --out FILE\n"
        "\n"
        "Signs with the key of record R. The first share is the combiner's own (local)\n"
        "share, opened with the holder key K after it; every further share is served\n"
        "by an in-process source as a remote holder would. The shares are checked\n"
        "against the record, the key is rebuilt in locked memory, used once and wiped.\n"
        "A threshold-mode key (keysplit split --mode threshold) is never rebuilt: with\n"
        "--config, its holders (and the combiner's own key share, if a share line names\n"
        "it) return signature shares, k of which combine into the signature, checked\n"
        "with the public key; further --share files cannot serve such a key.\n"
        "\n"
        "  --alg ALG      pkcs1-sha1 pkcs1-sha224 pkcs1-sha256 pkcs1-sha384 pkcs1-sha512\n"
        "                 pkcs1-md5sha1 pss-sha256 pss-sha384 pss-sha512\n"
        "                 (PSS: MGF1 with the same hash, salt length = digest length)\n"
        "  --digest HEX   the digest to sign (its length must fit ALG)\n"
        "  --in FILE      the message; hashed here with ALG's hash\n"
        "  --out FILE     the raw signature (modulus length), to a new file\n"
        "  --allow-unlocked  run even if memory cannot be locked\n" COMB_CLI_CONFIG_USAGE);
}

/* sign_hash_file hashes the file |path| with |md_name| into |out|. */
static int sign_hash_file(const char *cmd, const char *path, const char *md_name, uint8_t *out,
                          size_t *out_len)
{
    EVP_MD *md = NULL;
    uint8_t *msg = NULL;
    size_t msg_len = 0;
    unsigned len = 0;
    int ret = COMB_CLI_FAIL;
    int r;

    if ((r = spk_file_read(path, SIGN_MESSAGE_MAX, &msg, &msg_len)) != 0) {
        return comb_cli_fail(cmd, "cannot read message '%s': %s", path, spk_strerror(r));
    }
    if ((md = EVP_MD_fetch(NULL, md_name, NULL)) == NULL ||
        EVP_Digest(msg, msg_len, out, &len, md, NULL) != 1) {
        ERR_clear_error();
        ret = comb_cli_fail(cmd, "cannot hash the message with %s", md_name);
        goto out;
    }
    *out_len = len;
    ret = COMB_CLI_OK;
out:
    EVP_MD_free(md);
    spk_file_free(msg, msg_len);
    return ret;
}

int comb_cmd_sign(int argc, char *argv[])
{
    static const struct option opts[] = {
        COMB_CLI_KEYSET_OPTIONS,
        {"alg", required_argument, NULL, 'a'},
        {"digest", required_argument, NULL, 'd'},
        {"in", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},
        COMB_CLI_TAIL_OPTIONS,
    };
    const char *cmd = "sign";
    const char *alg_name = NULL;
    const char *digest_hex = NULL;
    const char *in_path = NULL;
    const char *out_path = NULL;
    const struct comb_cli_arg args[] = {
        {'a', &alg_name}, {'d', &digest_hex}, {'i', &in_path}, {'o', &out_path}, {0, NULL},
    };
    struct comb_cli_keyset ks;
    struct comb_ctx *c = NULL;
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t digest_len = 0;
    uint8_t sig[PROTO_BN_MAX];
    size_t sig_len = 0;
    enum comb_alg alg;
    int ret;
    int r;

    if ((ret = comb_cli_parse(cmd, argc, argv, opts, args, &ks, sign_usage)) != COMB_CLI_CONTINUE) {
        return ret;
    }
    if (alg_name == NULL) {
        return comb_cli_usage(cmd, "--alg is required");
    }
    alg = comb_alg_from_name(alg_name);
    if (!comb_alg_is_sign(alg)) {
        return comb_cli_usage(cmd, "unknown signature algorithm '%s'", alg_name);
    }
    if ((digest_hex == NULL) == (in_path == NULL)) {
        return comb_cli_usage(cmd, "give exactly one of --digest and --in");
    }
    if (out_path == NULL) {
        return comb_cli_usage(cmd, "--out is required");
    }
    if (digest_hex != NULL) {
        if (!comb_cli_hex_decode(digest_hex, digest, sizeof(digest), &digest_len)) {
            return comb_cli_usage(cmd, "--digest is not hex of at most %zu bytes", sizeof(digest));
        }
        if (digest_len != comb_alg_digest_len(alg)) {
            return comb_cli_usage(cmd, "%s takes a %zu-byte digest, not %zu bytes",
                                  comb_alg_name(alg), comb_alg_digest_len(alg), digest_len);
        }
    } else if ((ret = sign_hash_file(cmd, in_path, comb_alg_md(alg), digest, &digest_len)) !=
               COMB_CLI_OK) {
        return ret;
    }

    if ((ret = comb_cli_open(cmd, &ks, &c, key_id)) != COMB_CLI_OK) {
        goto out;
    }
    if ((r = comb_sign_sync(c, sig, sizeof(sig), &sig_len, key_id, alg, digest, digest_len)) != 0) {
        ret = comb_cli_op_fail(cmd, c, r);
        goto out;
    }
    ret = comb_cli_write(cmd, out_path, 0644, sig, sig_len);
out:
    comb_free(c);
    return ret;
}
