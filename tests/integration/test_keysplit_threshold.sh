#!/usr/bin/env bash
# keysplit in threshold mode end to end: split --mode threshold, info, verify
# (k shares sign a test digest), combine (the PEM equals the original key:
# same n, e, p, q), and the refusals: modes mixed, a bad --mode, a public
# exponent that is not prime or not larger than n, a tampered share.
# Usage: test_keysplit_threshold.sh BUILD_DIR
set -euo pipefail

# shellcheck source=tests/integration/lib_edge.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_scratch test-keysplit-tss "${1:-}"

# run DESC CMD...: CMD must succeed; output in $T/stdout, $T/stderr.
run() {
    local desc=$1 rc=0
    shift
    "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
    if [ $rc -eq 0 ]; then pass "$desc"; else fail "$desc (exit $rc): $(head -c 300 "$T/stderr")"; fi
}
# refused DESC WANT CMD...: CMD must fail with one "keysplit: " line containing WANT.
refused() {
    local desc=$1 want=$2 rc=0
    shift 2
    "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
    if [ $rc -ne 0 ] && [ "$(grep -c '^keysplit: ' "$T/stderr")" -eq 1 ] &&
        grep -qF -- "$want" "$T/stderr"; then
        pass "$desc"
    else
        fail "$desc (exit $rc): $(head -c 300 "$T/stderr")"
    fi
}
lacks() { ! grep -q -- "$1" "$2"; }
absent() { [ ! -e "$1" ]; }
# key_text PEM: n, e, p, q of a private key as OpenSSL prints them.
key_text() {
    openssl pkey -in "$1" -noout -text | sed -n '/^modulus:/,/^privateExponent:/p;/^prime1:/,/^exponent1:/p'
}

cd "$T"
lib_edge_keygen h1 h2 h3 h4 h5

# RSA-2048 3-of-5 and RSA-3072 2-of-3.
for spec in "rsa2048 3 5" "rsa3072 2 3"; do
    read -r name k n <<<"$spec"
    holders=()
    for i in $(seq 1 "$n"); do holders+=(--holder "keys/h$i.pub"); done
    run "$name $k-of-$n: split --mode threshold" \
        "$KS" split --key "$DATA/$name.pem" --threshold "$k" --mode threshold "${holders[@]}" --out "$name"
    id=$(cat "$T/stdout")
    rec="$name/$id.record"
    run "$name: info shows the mode" "$KS" info "$rec"
    check "$name: info says threshold" grep -q '^mode: *threshold' "$T/stdout"
    check "$name: no safe primes, no verification keys (info says so)" \
        sh -c "grep -q '^verify keys: *none' '$T/stdout' && ! grep -q '^verify-' '$rec'"
    check "$name: record says mode threshold" grep -q '^mode threshold$' "$rec"
    check "$name: record has no field line" lacks '^field ' "$rec"
    run "$name: info of a share" "$KS" info "$name/$id.h2.share"
    check "$name: share says mode threshold" grep -q '^mode: *threshold' "$T/stdout"
    # verify with the last k shares (a non-consecutive set for 3-of-5: 3, 4, 5 and 2, 3)
    args=()
    for i in $(seq $((n - k + 1)) "$n"); do args+=(--share "$name/$id.h$i.share" --holder-key "keys/h$i.key"); done
    run "$name: verify signs with k shares" "$KS" verify --record "$rec" "${args[@]}"
    check "$name: verify says the test digest verified" grep -q 'sign a test digest' "$T/stdout"
    # combine from shares 1, 3 (and 5): non-consecutive
    args=(--share "$name/$id.h1.share" --holder-key keys/h1.key --share "$name/$id.h3.share" --holder-key keys/h3.key)
    [ "$k" -eq 3 ] && args+=(--share "$name/$id.h5.share" --holder-key keys/h5.key)
    run "$name: combine" "$KS" combine --record "$rec" "${args[@]}" --out "$name.pem"
    if [ "$(key_text "$name.pem")" = "$(key_text "$DATA/$name.pem")" ] && [ -n "$(key_text "$name.pem")" ]; then
        pass "$name: combined PEM has the original n, e, p, q"
    else
        fail "$name: combined PEM differs from the original"
    fi
    check "$name: PEM mode 0600" [ "$(stat -c %a "$name.pem")" = 600 ]
done

id=$(basename rsa2048/*.record .record)
rec=rsa2048/$id.record
# Modes mixed: a rebuild split of the same key, its share against the threshold record.
run "rebuild split of the same key" "$KS" split --key "$DATA/rsa2048.pem" --threshold 2 \
    --holder keys/h1.pub --holder keys/h2.pub --out rebuild
refused "a rebuild share with a threshold record" "mode" \
    "$KS" verify --record "$rec" --share "rebuild/$id.h1.share" --holder-key keys/h1.key
refused "a threshold share with a rebuild record" "mode" \
    "$KS" verify --record "rebuild/$id.record" --share "rsa2048/$id.h1.share" --holder-key keys/h1.key
refused "--mode other" "--mode" "$KS" split --key "$DATA/rsa2048.pem" --threshold 2 --mode other \
    --holder keys/h1.pub --holder keys/h2.pub --out bad
check "--mode other wrote nothing" absent bad
# Exponents: 3 is prime but not larger than 5 holders; 9 is not prime (made by hand).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_pubexp:3 \
    -out e3.pem 2>/dev/null
refused "e = 3 with 5 holders" "larger than" "$KS" split --key e3.pem --threshold 2 --mode threshold \
    --holder keys/h1.pub --holder keys/h2.pub --holder keys/h3.pub --holder keys/h4.pub \
    --holder keys/h5.pub --out e3
check "refused split wrote nothing" absent e3
# A tampered share: one base64 character of the sealed box changed.
sed 's/^\(sealed .\{40\}\)A/\1B/; t; s/^\(sealed .\{40\}\)./\1A/' "rsa2048/$id.h2.share" >tampered.share
chmod 600 tampered.share # share files are secret: refused when others may read them
refused "a tampered share" "h2" "$KS" verify --record "$rec" --share tampered.share --holder-key keys/h2.key

# genkey --safe-primes: p = 2p'+1 and q = 2q'+1 with p', q' prime; it splits,
# signs and combines back like any key.
run "genkey --safe-primes 2048" "$KS" genkey --safe-primes 2048 --out safe.pem
half_primes() {
    openssl pkey -in safe.pem -noout -text | awk '
        /^(prime1|prime2):/ { name = $1; next } /^[a-z]/ { name = "" }
        name != "" { gsub(/[ :]/, ""); hex[name] = hex[name] $0 }
        END { print hex["prime1:"]; print hex["prime2:"] }' |
        python3 -c 'import sys; [print("%x" % ((int(l, 16) - 1) // 2)) for l in sys.stdin.read().split()]'
}
safe=0
for h in $(half_primes); do
    openssl prime -hex "$h" | grep -q 'is prime' && safe=$((safe + 1))
done
check "genkey: (p-1)/2 and (q-1)/2 are prime" [ "$safe" -eq 2 ]
check "genkey: 2048 bits, e = 65537, mode 0600" sh -c \
    "openssl pkey -in safe.pem -noout -text | grep -q 'Private-Key: (2048 bit' &&
     openssl pkey -in safe.pem -noout -text | grep -q '^publicExponent: 65537' &&
     [ \"\$(stat -c %a safe.pem)\" = 600 ]"
run "safe-prime key: split --mode threshold" "$KS" split --key safe.pem --threshold 2 --mode threshold \
    --holder keys/h1.pub --holder keys/h2.pub --holder keys/h3.pub --out safe
sid=$(cat "$T/stdout")
run "safe-prime key: verify signs" "$KS" verify --record "safe/$sid.record" \
    --share "safe/$sid.h3.share" --holder-key keys/h3.key --share "safe/$sid.h1.share" --holder-key keys/h1.key
"$KS" verify --record "safe/$sid.record" --share "safe/$sid.h3.share" --holder-key keys/h3.key \
    --share "safe/$sid.h1.share" --holder-key keys/h1.key >verify.out 2>&1
check "safe-prime key: verify checks every share's proof" grep -q 'proof of correctness verifies' verify.out
"$KS" verify --record "safe/$sid.record" --share "safe/$sid.h2.share" --holder-key keys/h2.key >verify.out 2>&1
check "safe-prime key: verify with one share checks it against its verification key" \
    grep -q 'against its verification key' verify.out
check "safe-prime key: the record has verification keys, info says so" \
    sh -c "grep -q '^verify-base ' 'safe/$sid.record' && '$KS' info 'safe/$sid.record' | grep -q '^verify keys: *yes'"
run "safe-prime key: combine" "$KS" combine --record "safe/$sid.record" \
    --share "safe/$sid.h2.share" --holder-key keys/h2.key --share "safe/$sid.h3.share" --holder-key keys/h3.key \
    --out safe-back.pem
check "safe-prime key: combined PEM has the original n, e, p, q" [ "$(key_text safe-back.pem)" = "$(key_text safe.pem)" ]
refused "genkey --safe-primes 1024" "2048 to 8192" "$KS" genkey --safe-primes 1024 --out small.pem
refused "genkey over an existing file" "exists" "$KS" genkey --safe-primes 2048 --out safe.pem

# The combiner loads a threshold-mode record (no field error) and, with no
# holder configured, fails its test signature for want of shares.
printf 'splitkey-combiner 1\nkey keys/h1.key\nrecord rsa2048/\n' >comb.conf
"$BUILD/combiner/combiner" check --config comb.conf --allow-unlocked >comb.out 2>&1 || true
check "combiner check takes a threshold-mode key and asks for its shares" \
    sh -c "grep -q 'no test signature: .*good shares of' comb.out && ! grep -qi 'field' comb.out"

echo "passed=$passed failed=$failed"
[ "$failed" -eq 0 ]
