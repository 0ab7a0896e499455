#!/usr/bin/env bash
# The openssl CLI with splitkey.so: a 2-of-3 split key used through its key
# reference file by unmodified `openssl` commands (OPENSSL_CONF loads the
# module), against a real combiner and two real holders on loopback.
#   - pkey -pubout prints the public key; the file holds no secret
#   - req -new -key REF makes a CSR that req -verify accepts
#   - a CA whose key is split signs a certificate (x509 -req -CAkey REF);
#     openssl verify accepts it
#   - dgst -sign and pkeyutl -sign equal OpenSSL's PKCS#1 signature with the
#     whole key; PSS signatures verify
#   - pkeyutl -decrypt of a PKCS#1 ciphertext where the combiner allows it
#   - s_server -key REF serves s_client (TLS 1.3 and TLS 1.2 RSA key exchange)
#   - bad input: a wrong key id, an unknown key, a corrupted PEM, an
#     unreachable combiner, a combiner that refuses the operation or this uid:
#     a clear error and a non-zero exit, no crash
#   - valgrind is clean on openssl runs with the module
# Usage: test_provider_openssl.sh BUILD_DIR
set -u
# shellcheck source=tests/integration/lib_provider.sh
source "$(dirname "$0")/lib_provider.sh"

SRC_DATA=$(cd "$(dirname "$0")/../data" && pwd)
lib_provider_init provider-openssl "${1:-}"
lib_provider_key www
lib_provider_key ca2
lib_provider_start

# no_crash FILE: the command's stderr shows no signal death or sanitizer report.
no_crash() {
    ! grep -qE 'Segmentation|Aborted|AddressSanitizer|runtime error' "$1"
}

# ---- the public key --------------------------------------------------------------
openssl pkey -in www.ref.pem -pubout >pub.ref 2>err.txt
openssl pkey -in www.key -pubout >pub.key
check "pkey -pubout of the reference is the key's public key" cmp -s pub.ref pub.key
check "the reference holds no private key" \
    bash -c '! openssl pkey -in www.ref.pem -outform PEM 2>/dev/null | grep -q "PRIVATE KEY"'

# ---- signatures ------------------------------------------------------------------
head -c 10000 /dev/urandom >msg
openssl dgst -sha256 -sign www.ref.pem -out sig.ref msg 2>err.txt
openssl dgst -sha256 -sign www.key -out sig.key msg
check "dgst -sign (PKCS#1 SHA-256) equals the whole key's signature" cmp -s sig.ref sig.key
openssl dgst -sha384 -sign www.ref.pem -sigopt rsa_padding_mode:pss -out pss.ref msg 2>err.txt
check "dgst -sign PSS SHA-384 verifies" openssl dgst -sha384 -verify pub.key \
    -sigopt rsa_padding_mode:pss -signature pss.ref msg
openssl dgst -sha256 -binary msg >msg.sha256
openssl pkeyutl -sign -inkey www.ref.pem -pkeyopt digest:sha256 -in msg.sha256 -out pk.ref 2>err.txt
openssl pkeyutl -sign -inkey www.key -pkeyopt digest:sha256 -in msg.sha256 -out pk.key
check "pkeyutl -sign (digest, PKCS#1) equals the whole key's signature" cmp -s pk.ref pk.key
openssl pkeyutl -sign -inkey www.ref.pem -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss \
    -pkeyopt rsa_pss_saltlen:digest -in msg.sha256 -out pkpss.ref 2>err.txt
check "pkeyutl -sign PSS verifies" openssl pkeyutl -verify -pubin -inkey pub.key \
    -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -in msg.sha256 -sigfile pkpss.ref

# ---- CSR and certificates ----------------------------------------------------------
openssl req -new -key www.ref.pem -subj /CN=csr.test -out www.csr 2>err.txt
check "req -new -key REF makes a CSR" test -s www.csr
check "req -verify accepts it" openssl req -verify -in www.csr -noout
openssl req -new -x509 -key ca2.ref.pem -subj /CN=split-CA -days 2 -out ca2.pem 2>err.txt
check "a self-signed CA certificate from a split key" openssl verify -CAfile ca2.pem ca2.pem
openssl x509 -req -in www.csr -CA ca2.pem -CAkey ca2.ref.pem -CAcreateserial -days 2 \
    -out signed.pem 2>err.txt
check "x509 -req -CAkey REF signs; openssl verify accepts the chain" \
    openssl verify -CAfile ca2.pem signed.pem

# ---- decryption --------------------------------------------------------------------
head -c 32 /dev/urandom >secret
openssl pkeyutl -encrypt -pubin -inkey pub.key -in secret -out secret.enc
if openssl pkeyutl -decrypt -inkey www.ref.pem -in secret.enc -out secret.dec 2>err.txt; then
    check "pkeyutl -decrypt (PKCS#1) gives the plaintext back" cmp -s secret secret.dec
    openssl pkeyutl -encrypt -pubin -inkey pub.key -in secret -out oaep.enc \
        -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
    openssl pkeyutl -decrypt -inkey www.ref.pem -in oaep.enc -out oaep.dec \
        -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 2>err.txt
    check "pkeyutl -decrypt (OAEP SHA-256) gives the plaintext back" cmp -s secret oaep.dec
    openssl pkeyutl -decrypt -inkey www.ref.pem -in oaep.enc -out /dev/null -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:sha384 2>err.txt
    check "OAEP with SHA-384 (not offered): refused with a reason" grep -q "splitkey: OAEP only" err.txt
else
    # A combiner whose door closes decrypt-pkcs1 for this client says so.
    check "pkeyutl -decrypt refused with a clear reason" grep -q "splitkey: combiner says not-allowed" err.txt
fi

# ---- s_server / s_client -------------------------------------------------------------
P_S=$P_FREE
lib_provider_s_server "$P_S" s_server.log
for v in "-tls1_3" "-tls1_2 -cipher AES128-GCM-SHA256" "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256"; do
    # shellcheck disable=SC2086
    echo | openssl s_client -connect 127.0.0.1:$P_S -CAfile ca.pem -verify_return_error $v \
        >s_client.out 2>&1
    check "s_server -key REF serves s_client ($v)" grep -q "Verify return code: 0 (ok)" s_client.out
done
kill $S_PID 2>/dev/null
wait $S_PID 2>/dev/null

# ---- the splitkey: URI (the module's OSSL_STORE loader) ------------------------------
U=splitkey:$T/www.ref.pem
openssl pkey -in "$U" -pubout >pub.uri 2>err.txt
check "pkey -in splitkey:PATH -pubout is the key's public key" cmp -s pub.uri pub.key
openssl pkey -in "splitkey://$T/www.ref.pem" -pubout >pub.uri3 2>err.txt
check "pkey -in splitkey:///PATH (empty host) reads the same key" cmp -s pub.uri3 pub.key
openssl pkeyutl -sign -inkey "$U" -pkeyopt digest:sha256 -in msg.sha256 -out pk.uri 2>err.txt
check "pkeyutl -sign -inkey splitkey:PATH equals the whole key's signature" cmp -s pk.uri pk.key
openssl storeutl -noout "$U" >storeutl.out 2>err.txt
check "storeutl splitkey:PATH finds the one key" \
    bash -c "grep -q '^0: Pkey' storeutl.out && grep -q '^Total found: 1' storeutl.out"
# HAProxy's layout: the certificate first, then the reference.
cat www.pem www.ref.pem >www.crt-and-ref.pem
openssl pkey -in "splitkey:$T/www.crt-and-ref.pem" -pubout >pub.both 2>err.txt
check "splitkey: URI of a certificate + reference file: the key after the certificate" \
    cmp -s pub.both pub.key

# ---- bad input ----------------------------------------------------------------------
# A reference whose key id is not its public key's.
lib_provider_bad_refs www
# OSSL_STORE (the CLI's loader) keeps only its own error: "Could not read".
openssl dgst -sha256 -sign www.wrongid.ref.pem -out /dev/null msg 2>err.txt
rc=$?
check "wrong key id: refused (exit $rc): the key is not read" \
    bash -c "[ $rc -ne 0 ] && grep -q 'Could not read private key from www.wrongid.ref.pem' err.txt"
check "wrong key id: no crash" no_crash err.txt
# A key the combiner does not know (split, but its share is not configured).
"$KS" split --key "$SRC_DATA/rsa3072.pem" --threshold 2 --holder keys/comb.pub --holder keys/h1.pub \
    --holder keys/h2.pub --out unknown >/dev/null 2>&1 || mkdir -p unknown
if ls unknown/*.record >/dev/null 2>&1; then
    "$KS" pem --record unknown/*.record --combiner "$COMB_EP" --out unknown.ref.pem >/dev/null
    openssl dgst -sha256 -sign unknown.ref.pem -out /dev/null msg 2>err.txt
    rc=$?
    check "unknown key: refused (exit $rc) naming unknown-key" \
        bash -c "[ $rc -ne 0 ] && grep -q 'splitkey: combiner does not know this key' err.txt"
fi
# A corrupted PEM body (lib_provider_bad_refs).
openssl dgst -sha256 -sign www.corrupt.ref.pem -out /dev/null msg 2>err.txt
rc=$?
check "corrupted PEM: refused (exit $rc), no crash" bash -c "[ $rc -ne 0 ]"
check "corrupted PEM: no crash" no_crash err.txt
# Bad splitkey: URIs, each refused with the module's reason, no crash.
bad_uri() { # DESC URI REASON
    openssl pkey -in "$2" -pubout -out /dev/null 2>err.txt
    local rc=$?
    check "splitkey: URI, $1: refused (exit $rc) with '$3'" \
        bash -c "[ $rc -ne 0 ] && grep -qF \"\$1\" err.txt && ! grep -qE 'Segmentation|Aborted|AddressSanitizer|runtime error' err.txt" _ "$3"
}
bad_uri "a host" "splitkey://elsewhere/$T/www.ref.pem" "splitkey: a key reference URI is splitkey:PATH"
bad_uri "no path" "splitkey:" "splitkey: a key reference URI is splitkey:PATH"
bad_uri "a missing file" "splitkey:$T/missing.pem" "splitkey: cannot read $T/missing.pem"
bad_uri "a certificate, no reference" "splitkey:$T/www.pem" \
    "splitkey: $T/www.pem holds no well-formed SPLITKEY KEY REFERENCE block"
bad_uri "a corrupted reference" "splitkey:$T/www.corrupt.ref.pem" \
    "holds no well-formed SPLITKEY KEY REFERENCE block"
bad_uri "a wrong key id" "splitkey:$T/www.wrongid.ref.pem" \
    "splitkey: the key reference's key id is not its public key's"
# The combiner gone: unreachable, quickly.
lib_provider_combiner_stop
start=$(date +%s%N)
openssl dgst -sha256 -sign www.ref.pem -out /dev/null msg 2>err.txt
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "combiner down: refused (exit $rc) with 'splitkey: combiner unreachable'" \
    bash -c "[ $rc -ne 0 ] && grep -q 'splitkey: combiner unreachable' err.txt"
check "combiner down: the answer came in ${ms} ms (< 3000)" test "$ms" -lt 3000
lib_provider_combiner_start
openssl dgst -sha256 -sign www.ref.pem -out sig.again msg 2>err.txt
check "combiner back: signing works again" cmp -s sig.again sig.key

# ---- a combiner that refuses -----------------------------------------------------------
# This client may only decrypt premasters: a signature is refused by name.
PROV_COMB_CLIENTS="client me uid $(id -u) decrypt-tls-premaster"
lib_provider_combiner_stop
lib_provider_combiner_start
openssl dgst -sha256 -sign www.ref.pem -out /dev/null msg 2>err.txt
rc=$?
check "combiner allows no signature: refused (exit $rc) with 'not-allowed'" \
    bash -c "[ $rc -ne 0 ] && grep -q 'splitkey: combiner says not-allowed' err.txt"
# Only another uid may connect: the door (ZAP) refuses the handshake, before
# any request, and the module says so at once.
PROV_COMB_CLIENTS="client other uid 65534 tls"
lib_provider_combiner_stop
lib_provider_combiner_start
start=$(date +%s%N)
openssl dgst -sha256 -sign www.ref.pem -out /dev/null msg 2>err.txt
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "combiner refuses this uid: refused (exit $rc) in ${ms} ms with 'not-allowed'" \
    bash -c "[ $rc -ne 0 ] && [ $ms -lt 5000 ] && grep -q 'splitkey: combiner says not-allowed' err.txt"
check "combiner refuses this uid: no crash" no_crash err.txt
unset PROV_COMB_CLIENTS
lib_provider_combiner_stop
lib_provider_combiner_start

# ---- valgrind ------------------------------------------------------------------------
if command -v valgrind >/dev/null && ! lib_edge_sanitized; then
    vg() {
        valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --log-file=vg.%p.log "$@"
    }
    # vg_check DESC COMMAND...: check, and on failure show what the program
    # under valgrind said and the combiner's last lines (a failure here is
    # otherwise only an exit code).
    vg_check() {
        local desc=$1
        shift
        check "$desc" "$@" && return 0
        sed 's/^/    program| /' vg.err
        tail -n 5 combiner.log | sed 's/^/    combiner| /'
    }
    vg openssl pkey -in www.ref.pem -pubout -out vg.pub 2>vg.err
    vg_check "valgrind: pkey -pubout clean (exit $?)" cmp -s vg.pub pub.key
    vg openssl dgst -sha256 -sign www.ref.pem -out vg.sig msg 2>vg.err
    vg_check "valgrind: dgst -sign clean (exit $?)" cmp -s vg.sig sig.key
    vg openssl req -new -key www.ref.pem -subj /CN=vg -out vg.csr 2>vg.err
    vg_check "valgrind: req -new clean (exit $?)" openssl req -verify -in vg.csr -noout
    vg openssl pkeyutl -sign -inkey "$U" -pkeyopt digest:sha256 -in msg.sha256 -out vg.pk 2>vg.err
    vg_check "valgrind: pkeyutl -sign -inkey splitkey:PATH clean (exit $?)" cmp -s vg.pk pk.key
    vg openssl pkey -in "splitkey:$T/www.wrongid.ref.pem" -pubout -out /dev/null 2>vg.err
    vg openssl pkey -in "splitkey://elsewhere/x" -pubout -out /dev/null 2>vg.err
    vg openssl dgst -sha256 -sign www.corrupt.ref.pem -out /dev/null msg 2>vg.err
    check "valgrind: a corrupted reference refused cleanly (exit $?, not 99)" \
        bash -c "! grep -q 'ERROR SUMMARY: [1-9]' vg.*.log"
    check "valgrind: no errors reported" bash -c "! grep -qE '(Invalid|uninitialised|definitely lost)' vg.*.log"
fi

check "no sanitizer report from a program with the module" lib_provider_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
