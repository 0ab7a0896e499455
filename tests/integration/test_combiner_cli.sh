#!/usr/bin/env bash
# Integration test of the `combiner` command: keys split with keysplit, every
# signature algorithm checked with `openssl dgst -verify` / `openssl pkeyutl
# -verify` (PKCS#1 v1.5 also byte for byte against OpenSSL with the key),
# decryptions of `openssl pkeyutl -encrypt` ciphertexts, and refusals that
# must exit non-zero with exactly one line on stderr.
# Usage: test_combiner_cli.sh BUILD_DIR
set -u

B=$(cd "${1:?usage: test_combiner_cli.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
KS=$B/split/keysplit
CB=$B/combiner/combiner
# shellcheck source=tests/integration/lib_holder.sh
. "$SRC/tests/integration/lib_holder.sh"
holder_need_bins "$KS" "$CB"
holder_scratch spk-combiner-cli
cd "$T" || exit 1

# Unlike lib_holder.sh's check, this one keeps COMMAND's output off the log
# and shows its start when COMMAND fails.
check() { # NAME COMMAND...: passes when COMMAND succeeds
    local name=$1
    shift
    if "$@" >"$T/out.txt" 2>&1; then
        ok "$name"
    else
        bad "$name: $(head -c 400 "$T/out.txt")"
    fi
}
# refuse NAME WANT_RC PATTERN COMMAND...: COMMAND exits WANT_RC (or any
# non-zero for "x") with exactly one line on stderr, starting "combiner: " and
# matching PATTERN (a fixed string), and nothing on stdout.
refuse() {
    local name=$1 want=$2 pattern=$3
    shift 3
    "$@" >"$T/stdout.txt" 2>"$T/stderr.txt"
    local rc=$?
    local lines
    lines=$(wc -l <"$T/stderr.txt")
    if [ $rc -eq 0 ]; then
        bad "$name: exit 0"
    elif [ "$want" != x ] && [ $rc -ne "$want" ]; then
        bad "$name: exit $rc, wanted $want: $(cat "$T/stderr.txt")"
    elif [ "$lines" -ne 1 ] || [ -s "$T/stdout.txt" ]; then
        bad "$name: wanted one line on stderr, got $lines: $(head -c 400 "$T/stderr.txt")"
    elif ! grep -q '^combiner: ' "$T/stderr.txt" || ! grep -qF -- "$pattern" "$T/stderr.txt"; then
        bad "$name: message '$(cat "$T/stderr.txt")' lacks '$pattern'"
    else
        ok "$name"
    fi
}

# ---- keys ------------------------------------------------------------------------
for n in edge a b c; do
    "$KS" keygen --name $n --out "$T" >/dev/null || { bad "keygen $n"; echo "$pass passed, $fail failed"; exit 1; }
done
K2=$("$KS" split --key "$SRC/tests/data/rsa2048.pem" --threshold 2 \
    --holder edge.pub --holder a.pub --holder b.pub --out "$T") || K2=""
K3=$("$KS" split --key "$SRC/tests/data/rsa3072.pem" --threshold 3 \
    --holder edge.pub --holder a.pub --holder b.pub --holder c.pub --out "$T") || K3=""
if [ -z "$K2" ] || [ -z "$K3" ]; then
    bad "keysplit split"
    echo "$pass passed, $fail failed"
    exit 1
fi
openssl pkey -in "$SRC/tests/data/rsa2048.pem" -pubout -out pub2048.pem 2>/dev/null
openssl pkey -in "$SRC/tests/data/rsa3072.pem" -pubout -out pub3072.pem 2>/dev/null

# shares2 / shares3: the share options for k = 2 (edge local + a) and k = 3
# (edge local + b + c: not the first ones, to show any k will do).
shares2=(--record "$K2.record" --share "$K2.edge.share" --holder-key edge.key
    --share "$K2.a.share" --holder-key a.key)
shares3=(--record "$K3.record" --share "$K3.edge.share" --holder-key edge.key
    --share "$K3.b.share" --holder-key b.key --share "$K3.c.share" --holder-key c.key)

head -c 1000 /dev/urandom >msg.bin

# ---- signatures ------------------------------------------------------------------
# alg -> openssl digest name
declare -A MD=([sha1]=sha1 [sha224]=sha224 [sha256]=sha256 [sha384]=sha384 [sha512]=sha512
    [md5sha1]=md5-sha1)
for alg in pkcs1-sha1 pkcs1-sha224 pkcs1-sha256 pkcs1-sha384 pkcs1-sha512 pkcs1-md5sha1 \
    pss-sha256 pss-sha384 pss-sha512; do
    h=${alg#*-}
    md=${MD[$h]}
    pss=()
    if [ "${alg%%-*}" = pss ]; then
        pss=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -sigopt "rsa_mgf1_md:$md")
        pkpss=(-pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest -pkeyopt "rsa_mgf1_md:$md")
    else
        pkpss=()
    fi
    for bits in 2048 3072; do
        if [ $bits = 2048 ]; then set -- "${shares2[@]}"; else set -- "${shares3[@]}"; fi
        rm -f sig.bin sig2.bin ref.bin dgst.bin
        # --in: the tool hashes the message.
        if "$CB" sign "$@" --alg "$alg" --in msg.bin --out sig.bin 2>err.txt &&
            [ "$(stat -c %s sig.bin)" -eq $((bits / 8)) ] &&
            openssl dgst "-$md" "${pss[@]}" -verify "pub$bits.pem" -signature sig.bin msg.bin >/dev/null 2>&1; then
            ok "sign $alg RSA-$bits --in verifies with openssl dgst"
        else
            bad "sign $alg RSA-$bits --in: $(cat err.txt)"
        fi
        # --digest: a digest made by openssl.
        openssl dgst "-$md" -binary msg.bin >dgst.bin
        hex=$(od -An -v -tx1 dgst.bin | tr -d ' \n')
        if "$CB" sign "$@" --alg "$alg" --digest "$hex" --out sig2.bin 2>err.txt &&
            openssl pkeyutl -verify -pubin -inkey "pub$bits.pem" -in dgst.bin -sigfile sig2.bin \
                -pkeyopt "digest:$md" "${pkpss[@]}" >/dev/null 2>&1; then
            ok "sign $alg RSA-$bits --digest verifies with openssl pkeyutl"
        else
            bad "sign $alg RSA-$bits --digest: $(cat err.txt)"
        fi
        if [ ${#pkpss[@]} -eq 0 ]; then
            openssl pkeyutl -sign -inkey "$SRC/tests/data/rsa$bits.pem" -in dgst.bin -out ref.bin \
                -pkeyopt "digest:$md" 2>/dev/null
            if cmp -s sig2.bin ref.bin && cmp -s sig.bin ref.bin; then
                ok "sign $alg RSA-$bits equals OpenSSL byte for byte"
            else
                bad "sign $alg RSA-$bits differs from OpenSSL"
            fi
        fi
    done
done

# A PSS signature made by a wrong key would not verify: the check can fail.
if openssl dgst -sha256 -verify pub3072.pem -signature sig.bin msg.bin >/dev/null 2>&1; then
    bad "verification of a signature under the wrong key passed"
else
    ok "verification under the wrong key fails"
fi

# ---- decryptions -----------------------------------------------------------------
head -c 77 /dev/urandom >secret.bin
dec() {
    # dec NAME ALG [combiner options...]: decrypts ct.bin with k=2 into pt.bin
    local name=$1 alg=$2
    shift 2
    rm -f pt.bin
    if "$CB" decrypt "${shares2[@]}" --alg "$alg" --in ct.bin --out pt.bin "$@" 2>err.txt; then
        return 0
    fi
    echo "$name: $(cat err.txt)" >&2
    return 1
}

openssl pkeyutl -encrypt -pubin -inkey pub2048.pem -in secret.bin -out ct.bin
if dec pkcs1 pkcs1 && cmp -s pt.bin secret.bin && [ "$(stat -c %a pt.bin)" = 600 ]; then
    ok "decrypt pkcs1 gives the plaintext in a 0600 file"
else
    bad "decrypt pkcs1"
fi
openssl pkeyutl -encrypt -pubin -inkey pub2048.pem -in secret.bin -out ct.bin \
    -pkeyopt rsa_padding_mode:oaep
if dec oaep-sha1 oaep-sha1 && cmp -s pt.bin secret.bin; then
    ok "decrypt oaep-sha1"
else
    bad "decrypt oaep-sha1"
fi
openssl pkeyutl -encrypt -pubin -inkey pub2048.pem -in secret.bin -out ct.bin \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256
if dec oaep-sha256 oaep-sha256 && cmp -s pt.bin secret.bin; then
    ok "decrypt oaep-sha256"
else
    bad "decrypt oaep-sha256"
fi
openssl pkeyutl -encrypt -pubin -inkey pub2048.pem -in secret.bin -out ct.bin \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_oaep_label:0a0b0c
if dec oaep-label oaep-sha256 --label 0a0b0c && cmp -s pt.bin secret.bin; then
    ok "decrypt oaep-sha256 with a label"
else
    bad "decrypt oaep-sha256 with a label"
fi
refuse "oaep with the wrong label fails" 1 "decrypt" \
    "$CB" decrypt "${shares2[@]}" --alg oaep-sha256 --in ct.bin --out pt-wrong.bin --label 0a0b
{
    printf '\000'
    head -c 255 /dev/urandom
} >raw.bin
openssl pkeyutl -encrypt -pubin -inkey pub2048.pem -in raw.bin -out ct.bin -pkeyopt rsa_padding_mode:none
if dec raw raw && cmp -s pt.bin raw.bin; then
    ok "decrypt raw"
else
    bad "decrypt raw"
fi
{
    printf '\003\003'
    head -c 46 /dev/urandom
} >pms.bin
openssl pkeyutl -encrypt -pubin -inkey pub2048.pem -in pms.bin -out ct.bin
if dec tls tls-premaster --tls-version 0x0303 && cmp -s pt.bin pms.bin; then
    ok "decrypt tls-premaster"
else
    bad "decrypt tls-premaster"
fi
if dec tls-wrong tls-premaster --tls-version 0x0302 && [ "$(stat -c %s pt.bin)" = 48 ] &&
    ! cmp -s pt.bin pms.bin; then
    ok "decrypt tls-premaster with another version: 48 other bytes, exit 0"
else
    bad "decrypt tls-premaster with another version"
fi
openssl pkeyutl -encrypt -pubin -inkey pub3072.pem -in secret.bin -out ct3.bin
rm -f pt.bin
if "$CB" decrypt "${shares3[@]}" --alg pkcs1 --in ct3.bin --out pt.bin 2>err.txt &&
    cmp -s pt.bin secret.bin; then
    ok "decrypt pkcs1 RSA-3072 k=3"
else
    bad "decrypt pkcs1 RSA-3072 k=3: $(cat err.txt)"
fi

# ---- refusals --------------------------------------------------------------------
D=$(printf '%064x' 7)
refuse "too few shares (k=2, one given)" 1 "1 good share of 2 needed" \
    "$CB" sign --record "$K2.record" --share "$K2.edge.share" --holder-key edge.key \
    --alg pss-sha256 --digest "$D" --out x1.bin
refuse "too few shares (k=3, two given)" 1 "2 good shares of 3 needed" \
    "$CB" sign --record "$K3.record" --share "$K3.edge.share" --holder-key edge.key \
    --share "$K3.a.share" --holder-key a.key --alg pss-sha256 --digest "$D" --out x1.bin
# The same share twice is one share.
refuse "duplicate share" 1 "share 2 dropped: duplicate share index" \
    "$CB" sign --record "$K3.record" --share "$K3.edge.share" --holder-key edge.key \
    --share "$K3.a.share" --holder-key a.key --share "$K3.a.share" --holder-key a.key \
    --alg pss-sha256 --digest "$D" --out x1.bin
# A share of another key.
refuse "share of another key" 1 "is of another key" \
    "$CB" sign --record "$K2.record" --share "$K2.edge.share" --holder-key edge.key \
    --share "$K3.a.share" --holder-key a.key --alg pss-sha256 --digest "$D" --out x1.bin
# A tampered share: one byte of the sealed text changed.
sed 's/^\(sealed .\{20\}\)A/\1B/; t; s/^\(sealed .\{20\}\)./\1A/' "$K2.a.share" >tampered.share
chmod 600 tampered.share # share files are secret: refused when others may read them
if cmp -s tampered.share "$K2.a.share"; then
    bad "could not tamper with the share file"
else
    refuse "tampered share" 1 "a: " \
        "$CB" sign --record "$K2.record" --share "$K2.edge.share" --holder-key edge.key \
        --share tampered.share --holder-key a.key --alg pss-sha256 --digest "$D" --out x1.bin
    # ... while a third good share still makes k.
    rm -f x2.bin
    check "tampered share with enough good ones" \
        "$CB" sign --record "$K2.record" --share "$K2.edge.share" --holder-key edge.key \
        --share tampered.share --holder-key a.key --share "$K2.b.share" --holder-key b.key \
        --alg pss-sha256 --in msg.bin --out x2.bin
    if openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
        -verify pub2048.pem -signature x2.bin msg.bin >/dev/null 2>&1; then
        ok "that signature verifies"
    else
        bad "that signature does not verify"
    fi
fi
refuse "wrong holder key for a share" 1 "another holder" \
    "$CB" sign "${shares2[@]}" --share "$K2.b.share" --holder-key a.key \
    --alg pss-sha256 --digest "$D" --out x1.bin
refuse "wrong holder key for the local share" 1 "local share" \
    "$CB" sign --record "$K2.record" --share "$K2.edge.share" --holder-key a.key \
    --share "$K2.a.share" --holder-key a.key --alg pss-sha256 --digest "$D" --out x1.bin
refuse "unknown option" 2 "unknown option '--bogus'" "$CB" sign --bogus
refuse "option without its value" 2 "needs a value" "$CB" sign "${shares2[@]}" --alg
refuse "unknown command" 2 "unknown command 'frobnicate'" "$CB" frobnicate
refuse "missing --alg" 2 "--alg is required" "$CB" sign "${shares2[@]}" --digest "$D" --out x1.bin
refuse "unknown signature alg" 2 "unknown signature algorithm 'pss-md5'" \
    "$CB" sign "${shares2[@]}" --alg pss-md5 --digest "$D" --out x1.bin
refuse "decryption alg for sign" 2 "unknown signature algorithm 'oaep-sha1'" \
    "$CB" sign "${shares2[@]}" --alg oaep-sha1 --digest "$D" --out x1.bin
refuse "signature alg for decrypt" 2 "unknown decryption algorithm 'pss-sha256'" \
    "$CB" decrypt "${shares2[@]}" --alg pss-sha256 --in ct.bin --out x1.bin
refuse "both --digest and --in" 2 "exactly one of --digest and --in" \
    "$CB" sign "${shares2[@]}" --alg pss-sha256 --digest "$D" --in msg.bin --out x1.bin
refuse "digest of the wrong length" 2 "takes a 48-byte digest" \
    "$CB" sign "${shares2[@]}" --alg pss-sha384 --digest "$D" --out x1.bin
refuse "digest not hex" 2 "not hex" \
    "$CB" sign "${shares2[@]}" --alg pss-sha256 --digest "zz$D" --out x1.bin
refuse "share without its holder key" 2 "needs its --holder-key" \
    "$CB" sign --record "$K2.record" --share "$K2.edge.share" --share "$K2.a.share" \
    --holder-key a.key --alg pss-sha256 --digest "$D" --out x1.bin
refuse "missing record file" 1 "cannot read record 'nothere.record'" \
    "$CB" sign --record nothere.record --share "$K2.edge.share" --holder-key edge.key \
    --alg pss-sha256 --digest "$D" --out x1.bin
refuse "a share file as the record" 1 "is not a key record" \
    "$CB" sign --record "$K2.a.share" --share "$K2.edge.share" --holder-key edge.key \
    --alg pss-sha256 --digest "$D" --out x1.bin
: >exists.bin
refuse "existing output file" 1 "exists; not overwriting" \
    "$CB" sign "${shares2[@]}" --alg pss-sha256 --digest "$D" --out exists.bin
if [ ! -s exists.bin ]; then ok "existing output left alone"; else bad "existing output overwritten"; fi
refuse "--tls-version with pkcs1" 2 "--tls-version goes with" \
    "$CB" decrypt "${shares2[@]}" --alg pkcs1 --in ct.bin --out x1.bin --tls-version 0x0303
refuse "bad --tls-version" 2 "is not a number" \
    "$CB" decrypt "${shares2[@]}" --alg tls-premaster --in ct.bin --out x1.bin --tls-version 3.3
refuse "ciphertext of the wrong length" 1 "the ciphertext is 77 bytes" \
    "$CB" decrypt "${shares2[@]}" --alg pkcs1 --in secret.bin --out x1.bin
head -c 256 /dev/urandom >junk.bin
refuse "pkcs1 decryption of junk" 1 "decrypt" \
    "$CB" decrypt "${shares2[@]}" --alg pkcs1 --in junk.bin --out x1.bin
if [ ! -e x1.bin ]; then ok "no output file after failures"; else bad "an output file was left"; fi

# ---- help ------------------------------------------------------------------------
for sub in "" sign decrypt; do
    # shellcheck disable=SC2086
    if "$CB" $sub --help >help.txt 2>&1 && grep -q '^Usage: combiner' help.txt; then
        ok "combiner $sub --help"
    else
        bad "combiner $sub --help"
    fi
done

# ---- memory locking: fail closed unless allowed ----------------------------------
# RLIMIT_MEMLOCK 0 makes mlockall fail; root also needs CAP_IPC_LOCK taken away.
LOCKWRAP=()
if [ "$(id -u)" = 0 ]; then
    LOCKWRAP=(setpriv --bounding-set=-ipc_lock)
fi
unlocked() {
    env -u SPK_ALLOW_UNLOCKED bash -c 'ulimit -l 0 && exec "$@"' _ "${LOCKWRAP[@]}" "$@"
}
if grep -q __asan_init "$CB"; then
    # AddressSanitizer intercepts mlockall as a no-op that reports success, so
    # a sanitizer build cannot see the failure; the release build checks it.
    echo "# note: ASan build: mlockall is a no-op here; fail-closed is checked in release builds"
elif unlocked "$CB" sign "${shares2[@]}" --alg pss-sha256 --digest "$D" --out lock1.bin 2>lock.txt; then
    bad "ran without locked memory and without --allow-unlocked"
elif [ "$(wc -l <lock.txt)" -eq 1 ] && grep -q '^combiner: .*RLIMIT_MEMLOCK.*--allow-unlocked' lock.txt &&
    [ ! -e lock1.bin ]; then
    ok "fails closed when memory cannot be locked"
else
    bad "lock failure message: $(cat lock.txt)"
fi
check "runs unlocked with --allow-unlocked" \
    unlocked "$CB" sign "${shares2[@]}" --alg pss-sha256 --digest "$D" --out lock2.bin --allow-unlocked
check "runs unlocked with SPK_ALLOW_UNLOCKED=1" \
    env SPK_ALLOW_UNLOCKED=1 bash -c 'ulimit -l 0 && exec "$@"' _ "${LOCKWRAP[@]}" \
    "$CB" sign "${shares2[@]}" --alg pss-sha256 --digest "$D" --out lock3.bin
if [ -s lock2.bin ] && [ -s lock3.bin ]; then
    ok "unlocked runs wrote their signatures"
else
    bad "unlocked runs wrote no signature"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
