/*
 * keysplit pem: the key reference file that stands where a private key file
 * stood, for OpenSSL 3 programs with splitkey.so loaded (nginx, HAProxy,
 * Apache, curl, openssl). A PEM block "SPLITKEY KEY REFERENCE" around the
 * text of proto_keyref: the key id, the public key from a verified record,
 * and how to reach the combiner. It holds no secret.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "split/keysplit/keysplit.h"

#define PEM_KEYREF_LABEL "SPLITKEY KEY REFERENCE"

static void pem_usage(FILE *to)
{
    fprintf(to, "Usage: keysplit pem --record R --combiner ENDPOINT\n"
                "                    [--combiner-pub FILE --client-key FILE] --out F\n"
                "\n"
                "Writes the key reference F (a new file, mode 0644): a PEM block\n"
                "\"" PEM_KEYREF_LABEL "\" with the key id and public key of the verified\n"
                "record R and the combiner's endpoint. Programs that load splitkey.so\n"
                "(see README, \"Use split keys from nginx, HAProxy, Apache, curl\") read F\n"
                "where they read a private key file. F holds no secret.\n"
                "\n"
                "  --record R          the key's record (its signature is checked)\n"
                "  --combiner ENDPOINT unix://PATH (the cheapest, on the same machine),\n"
                "                      ipc://PATH or tcp://HOST:PORT\n"
                "  --combiner-pub FILE for tcp://: the combiner's .pub file (its CURVE key)\n"
                "  --client-key FILE   for tcp://: the client's own key file (keysplit keygen),\n"
                "                      as the program using F will open it (an absolute path;\n"
                "                      owned by the program's user, mode 0600)\n"
                "  --out F             the file to write\n");
}

/* pem_spki: the DER SubjectPublicKeyInfo of |rec|'s key into |ref|. */
static int pem_spki(const char *cmd, struct proto_keyref *ref, const struct proto_record *rec)
{
    EVP_PKEY *pub = NULL;
    unsigned char *der = NULL;
    int der_len = 0;
    int r;

    if ((r = split_rsa_pkey_public(&pub, rec->modulus, rec->modulus_len, rec->exponent,
                                   rec->exponent_len)) != 0) {
        return split_cli_fail(cmd, "the record's public key: %s", spk_strerror(r));
    }
    der_len = i2d_PUBKEY(pub, &der);
    EVP_PKEY_free(pub);
    if (der_len <= 0 || (size_t)der_len > sizeof(ref->spki)) {
        OPENSSL_free(der);
        return split_cli_fail(cmd, "cannot encode the record's public key");
    }
    memcpy(ref->spki, der, (size_t)der_len);
    ref->spki_len = (size_t)der_len;
    OPENSSL_free(der);
    return SPLIT_CLI_OK;
}

/* pem_combiner_pub reads the combiner's CURVE key from its .pub file. */
static int pem_combiner_pub(const char *cmd, struct proto_keyref *ref, const char *path)
{
    struct proto_holder_pub pub;
    uint8_t *text = NULL;
    size_t text_len = 0;
    int r;

    if ((r = spk_file_read(path, PROTO_FILE_MAX, &text, &text_len)) != 0) {
        return split_cli_fail(cmd, "cannot read %s: %s", path, split_io_reason(path, r));
    }
    r = proto_holder_pub_decode(&pub, text, text_len);
    spk_file_free(text, text_len);
    if (r != 0) {
        return split_cli_fail(cmd, "%s is not a .pub file: %s", path, spk_strerror(r));
    }
    memcpy(ref->combiner_pk, pub.curve_pk, sizeof(ref->combiner_pk));
    return SPLIT_CLI_OK;
}

int split_cmd_pem(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"record", required_argument, NULL, 'r'},
        {"combiner", required_argument, NULL, 'c'},
        {"combiner-pub", required_argument, NULL, 'P'},
        {"client-key", required_argument, NULL, 'k'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "pem";
    struct split_cli_shareset set = {0};
    const char *combiner = NULL;
    const char *combiner_pub = NULL;
    const char *client_key = NULL;
    const char *out_path = NULL;
    struct proto_record *rec = NULL;
    struct proto_keyref *ref = NULL;
    uint8_t body[PROTO_KEYREF_MAX];
    size_t body_len = 0;
    BIO *mem = NULL;
    char *pem = NULL;
    long pem_len;
    int c;
    int r;
    int ret = SPLIT_CLI_FAIL;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            combiner = optarg;
            break;
        case 'P':
            combiner_pub = optarg;
            break;
        case 'k':
            client_key = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        default:
            if ((ret = split_cli_common_option(cmd, &set, c, optarg, argv, pem_usage)) !=
                SPLIT_CLI_CONTINUE) {
                return ret;
            }
            break;
        }
    }
    if ((ret = split_cli_no_operands(cmd, argc, argv)) != SPLIT_CLI_OK) {
        return ret;
    }
    if (set.record == NULL || combiner == NULL || out_path == NULL) {
        return split_cli_usage(cmd, "--record, --combiner and --out are required");
    }
    if (set.num_shares != 0 || set.num_keys != 0) {
        return split_cli_usage(cmd, "--share and --holder-key are not for pem");
    }
    if (!proto_endpoint_valid(combiner)) {
        return split_cli_usage(cmd,
                               "--combiner must be unix://PATH, ipc://PATH or tcp://HOST:PORT");
    }
    if ((combiner_pub != NULL && client_key != NULL) != (strncmp(combiner, "tcp://", 6) == 0)) {
        return split_cli_usage(cmd, "--combiner-pub and --client-key are for tcp:// (and needed "
                                    "there), not for unix:// or ipc://");
    }
    if (client_key != NULL && strnlen(client_key, PROTO_PATH_MAX + 1) > PROTO_PATH_MAX) {
        return split_cli_usage(cmd, "--client-key: path too long");
    }
    ret = SPLIT_CLI_FAIL;
    if ((rec = calloc(1, sizeof(*rec))) == NULL || (ref = calloc(1, sizeof(*ref))) == NULL) {
        ret = split_cli_fail(cmd, "out of memory");
        goto out;
    }
    if ((ret = split_cli_read_record(cmd, rec, set.record)) != SPLIT_CLI_OK ||
        (ret = pem_spki(cmd, ref, rec)) != SPLIT_CLI_OK) {
        goto out;
    }
    memcpy(ref->key_id, rec->key_id, sizeof(ref->key_id));
    memcpy(ref->endpoint, combiner, strlen(combiner) + 1);
    if (combiner_pub != NULL) {
        if ((ret = pem_combiner_pub(cmd, ref, combiner_pub)) != SPLIT_CLI_OK) {
            goto out;
        }
        memcpy(ref->client_key, client_key, strlen(client_key) + 1);
        ref->has_curve = true;
    }
    if ((r = proto_keyref_encode(body, sizeof(body), &body_len, ref)) != 0) {
        ret = split_cli_fail(cmd, "cannot encode the key reference: %s", spk_strerror(r));
        goto out;
    }
    if ((mem = BIO_new(BIO_s_mem())) == NULL ||
        PEM_write_bio(mem, PEM_KEYREF_LABEL, "", body, (long)body_len) <= 0 ||
        (pem_len = BIO_get_mem_data(mem, &pem)) <= 0) {
        ret = split_cli_fail(cmd, "cannot encode the key reference as PEM");
        goto out;
    }
    if ((r = spk_file_write_new(out_path, 0644, (const uint8_t *)pem, (size_t)pem_len)) != 0) {
        ret = split_cli_fail(cmd, "cannot write %s: %s", out_path,
                             r == SPK_ERR_EXISTS ? "it exists (refusing to overwrite)"
                                                 : spk_strerror(r));
        goto out;
    }
    printf("%s\n", out_path);
    ret = SPLIT_CLI_OK;
out:
    BIO_free(mem);
    free(ref);
    free(rec);
    return ret;
}
