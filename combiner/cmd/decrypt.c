/*
 * combiner decrypt: one decryption with a split key, from the shares given
 * on the command line. The plaintext goes to a new file of mode 0600.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "combiner/cmd/cmd.h"

static void decrypt_usage(FILE *to)
{
    fprintf(to,
            "Usage: combiner decrypt --record R --share S --holder-key K [--share S "
            "--holder-key K ...]\n"
            "                        --alg ALG --in FILE --out FILE\n"
            "                        [--tls-version 0x0303] [--label HEX]\n"
            "       combiner decrypt --config FILE [--key-id HEX] --alg ALG --in FILE --out FILE\n"
            "                        [--tls-version 0x0303] [--label HEX]\n"
            "\n"
            "Decrypts with the key of record R. The first share is the combiner's own\n"
            "(local) share, opened with the holder key K after it; every further share is\n"
            "served by an in-process source as a remote holder would. A threshold-mode\n"
            "key signs only: its decryptions are refused before any holder is asked.\n"
            "\n"
            "  --alg ALG          pkcs1 tls-premaster oaep-sha1 oaep-sha256 raw\n"
            "                     (OAEP: MGF1 with the same hash)\n"
            "  --in FILE          the ciphertext, exactly the modulus length\n"
            "  --out FILE         the plaintext, to a new file of mode 0600\n"
            "  --tls-version V    tls-premaster: the ClientHello's client_version (default\n"
            "                     0x0303); any padding or version error yields 48 random\n"
            "                     bytes, as TLS requires\n"
            "  --label HEX        oaep-*: the OAEP label (default empty)\n"
            "  --allow-unlocked   run even if memory cannot be locked\n" COMB_CLI_CONFIG_USAGE);
}

static bool decrypt_parse_version(const char *s, uint16_t *out)
{
    unsigned long v;
    char *end = NULL;

    errno = 0;
    v = strtoul(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || v == 0 || v > 0xffff) {
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

int comb_cmd_decrypt(int argc, char *argv[])
{
    static const struct option opts[] = {
        COMB_CLI_KEYSET_OPTIONS,
        {"alg", required_argument, NULL, 'a'},
        {"in", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},
        {"tls-version", required_argument, NULL, 'V'},
        {"label", required_argument, NULL, 'L'},
        COMB_CLI_TAIL_OPTIONS,
    };
    const char *cmd = "decrypt";
    const char *alg_name = NULL;
    const char *in_path = NULL;
    const char *out_path = NULL;
    const char *version = NULL;
    const char *label_hex = NULL;
    const struct comb_cli_arg args[] = {
        {'a', &alg_name}, {'i', &in_path},   {'o', &out_path},
        {'V', &version},  {'L', &label_hex}, {0, NULL},
    };
    struct comb_cli_keyset ks;
    struct comb_decrypt_params params;
    struct comb_ctx *c = NULL;
    uint8_t key_id[PROTO_KEY_ID_LEN];
    uint8_t label[COMB_LABEL_MAX];
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    enum comb_alg alg;
    int ret;
    int r;

    memset(&params, 0, sizeof(params));
    if ((ret = comb_cli_parse(cmd, argc, argv, opts, args, &ks, decrypt_usage)) !=
        COMB_CLI_CONTINUE) {
        return ret;
    }
    if (alg_name == NULL) {
        return comb_cli_usage(cmd, "--alg is required");
    }
    alg = comb_alg_from_name(alg_name);
    if (!comb_alg_valid((int)alg) || comb_alg_is_sign(alg)) {
        return comb_cli_usage(cmd, "unknown decryption algorithm '%s'", alg_name);
    }
    if (in_path == NULL || out_path == NULL) {
        return comb_cli_usage(cmd, "--in and --out are required");
    }
    if (version != NULL) {
        if (alg != COMB_ALG_DECRYPT_TLS) {
            return comb_cli_usage(cmd, "--tls-version goes with --alg tls-premaster only");
        }
        if (!decrypt_parse_version(version, &params.tls_version)) {
            return comb_cli_usage(cmd, "--tls-version '%s' is not a number 1..0xffff", version);
        }
    }
    if (label_hex != NULL) {
        if (alg != COMB_ALG_DECRYPT_OAEP_SHA1 && alg != COMB_ALG_DECRYPT_OAEP_SHA256) {
            return comb_cli_usage(cmd, "--label goes with --alg oaep-sha1 or oaep-sha256 only");
        }
        /* An empty label is the default: accept "" too. */
        if (label_hex[0] != '\0' &&
            !comb_cli_hex_decode(label_hex, label, sizeof(label), &params.label_len)) {
            return comb_cli_usage(cmd, "--label is not hex of at most %d bytes", COMB_LABEL_MAX);
        }
        params.label = label;
    }
    if ((r = spk_file_read(in_path, PROTO_BN_MAX, &ct, &ct_len)) != 0) {
        return comb_cli_fail(cmd, "cannot read ciphertext '%s': %s", in_path,
                             r == SPK_ERR_MALFORMED ? "longer than any modulus" : spk_strerror(r));
    }
    if ((ret = comb_cli_open(cmd, &ks, &c, key_id)) != COMB_CLI_OK) {
        goto out;
    }
    if (ct_len != comb_key_size(c, key_id)) {
        ret = comb_cli_fail(cmd, "the ciphertext is %zu bytes; the key's modulus is %zu", ct_len,
                            comb_key_size(c, key_id));
        goto out;
    }
    /* The plaintext is secret: locked memory, wiped on free. */
    if ((pt = spk_secret_new(PROTO_BN_MAX)) == NULL) {
        ret = comb_cli_fail(cmd, "out of locked memory");
        goto out;
    }
    if ((r = comb_decrypt_sync(c, pt, PROTO_BN_MAX, &pt_len, key_id, alg, ct, ct_len, &params)) !=
        0) {
        ret = comb_cli_op_fail(cmd, c, r);
        goto out;
    }
    ret = comb_cli_write(cmd, out_path, 0600, pt, pt_len);
out:
    sodium_memzero(label, sizeof(label));
    spk_secret_free(pt);
    spk_file_free(ct, ct_len);
    comb_free(c);
    return ret;
}
