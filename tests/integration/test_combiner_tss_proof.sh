#!/usr/bin/env bash
# Shoup's proofs of correct signature shares through real daemons: a
# safe-prime key (tests/data/rsa2048-safe.pem) split 2-of-3 in threshold
# mode, whose record carries verification keys; three share-holder daemons
# on 127.0.0.1 with CURVE; the combiner daemon and `combiner sign`. Every
# signature verifies with openssl. h2 then serves the key share of another
# split of the same key (its own record, so it loads and proves it): its
# shares do not combine, and their proofs, checked once the combination has
# failed its check with e, fail against the combiner's record, so h2 is named
# (the log line of the proof check, never the subset search's), counted in
# the daemon's metrics, and every operation succeeds from h1 and h3. A holder
# whose record has no verification keys sends no proof: its shares are
# refused on arrival for this key and it is counted too. A holder
# whose record's v_i is not v^s_i refuses its share at load.
# Usage: test_combiner_tss_proof.sh BUILD_DIR
set -u

B=$(cd "${1:?usage: test_combiner_tss_proof.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
KS=$B/split/keysplit
SH=$B/share-holder/share-holder
BH=$B/tests/bench_holder
COMB=$B/combiner/combiner
TC=$B/combiner/comb-testclient
# shellcheck source=tests/integration/lib_holder.sh
. "$SRC/tests/integration/lib_holder.sh"
holder_need_bins "$KS" "$SH" "$BH" "$COMB" "$TC"
export SPK_ALLOW_UNLOCKED=1 # sanitizer builds cannot lock their shadow memory
SIGN_CMD=("$COMB")          # lib_holder.sh's sign_check

holder_scratch spk-comb-tss-proof
PEM=$SRC/tests/data/rsa2048-safe.pem

for n in edge h1 h2 h3; do
    "$KS" keygen --name "$n" --out "$T" >/dev/null 2>&1 || bad "keygen $n"
done
split() { # OUT: a 2-of-3 threshold split among h1 h2 h3
    "$KS" split --mode threshold --key "$PEM" --threshold 2 --holder "$T/h1.pub" \
        --holder "$T/h2.pub" --holder "$T/h3.pub" --out "$T/$1" 2>"$T/split.err" || cat "$T/split.err"
}
K=$(split s)
K2=$(split s2)
REC=$T/s/$K.record
check "two splits of the safe-prime key, both with verification keys" \
    sh -c "[ -n '$K' ] && [ '$K' = '$K2' ] && grep -q '^verify-base ' '$REC' &&
           grep -q '^verify-base ' '$T/s2/$K2.record'"

# resign BODY OUT: the record body BODY (every line before 'signature')
# signed by the key, as keysplit signs a record (RSA-PSS SHA-256, salt 32)
resign() {
    openssl dgst -sha256 -binary "$1" >"$1.dgst"
    openssl pkeyutl -sign -inkey "$PEM" -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 \
        -pkeyopt digest:sha256 -in "$1.dgst" -out "$1.sig" 2>/dev/null
    {
        cat "$1"
        printf 'signature %s\n' "$(od -An -tx1 -v "$1.sig" | tr -d ' \n')"
    } >"$2"
}
# A record of split S without its verification keys, signed again by the key
# (as an old keysplit would have written it): a holder loading it sends no proof.
mkdir -p "$T/nov" "$T/swap"
grep -v '^verify-' "$REC" | sed '/^signature /d' >"$T/nov/body"
resign "$T/nov/body" "$T/nov/$K.record"
check "a re-signed record without verification keys" \
    sh -c "! grep -q '^verify-' '$T/nov/$K.record' && [ \$(wc -l <'$T/nov/$K.record') -eq 13 ]"
# And one whose v_1 is v_2 (signed, so only the holder's own check can tell).
v2=$(sed -n 's/^verify-key 2 //p' "$REC")
sed '/^signature /d; s/^verify-key 1 .*/verify-key 1 '"$v2"'/' "$REC" >"$T/swap/body"
resign "$T/swap/body" "$T/swap/$K.record"
cp "$T/s/$K.h1.share" "$T/swap/"

echo "client edge $(z85 edge) * 127.0.0.1/32" >"$T/allow"
for h in h1 h2 h3; do
    mkdir -p "$T/$h.d"
    cp "$T/s/$K.$h.share" "$REC" "$T/$h.d/"
done
# h1 with the record whose v_1 is wrong: it refuses its share at load, saying why.
holder_start_unlimited h1 "$T/swap"
check "a holder refuses its share when the record's v_i is not v^s_i" \
    grep -q "verification key v_1 is not v^s_1" "$T/h1.log"
stop_holder h1
for h in h1 h2 h3; do
    holder_start_unlimited "$h" "$T/$h.d"
done
check "three holders started" test -n "$h1_ep" -a -n "$h2_ep" -a -n "$h3_ep"

mkdir -p "$T/cfg"
cp "$T/edge.key" "$T/cfg/"
conf() { # HOLDER...: a combiner config of record S asking these holders
    local h ep
    printf 'splitkey-combiner 1\nkey edge.key\nrecord ../s/%s.record\ntimeout-ms 3000\n' "$K"
    for h in "$@"; do
        ep="${h}_ep"
        echo "holder $h ${!ep} ../$h.pub"
    done
}
conf h1 h2 h3 >"$T/cfg/good.conf"
openssl pkey -in "$PEM" -pubout -out "$T/pub.pem" 2>/dev/null
head -c 1000 /dev/urandom >"$T/msg"
for alg in pkcs1-sha256 pss-sha256 pss-sha384; do
    check "honest holders: $alg verifies with openssl" sign_check "$T/cfg/good.conf" "$T/pub.pem" "$alg"
done

# ---- the daemon ------------------------------------------------------------------------
P_M=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
    conf h2 h1 h3
    echo "listen ipc://$T/comb.sock"
    echo "client edge uid $(id -u) tls"
    echo "metrics 127.0.0.1:$P_M"
    echo "allow-unlocked yes"
} >"$T/cfg/run.conf"
"$COMB" run --config "$T/cfg/run.conf" 2>"$T/comb.log" &
PIDS+=("$!")
for _ in $(seq 100); do
    grep -q "combiner: serving" "$T/comb.log" 2>/dev/null && break
    sleep 0.1
done
check "combiner run serves the key" grep -q "combiner: serving" "$T/comb.log"
EP=ipc://$T/comb.sock
openssl dgst -sha256 -binary "$T/msg" >"$T/dgst"
DG=$(od -An -tx1 -v "$T/dgst" | tr -d ' \n')
# daemon_sig PAD: one SHA-256 signature through the daemon, verified by openssl
daemon_sig() {
    local out pss=() alg=sign-pkcs1-sha256
    [ "$1" = pss ] && { pss=(-pkeyopt rsa_pss_saltlen:digest); alg=sign-pss-sha256; }
    out=$("$TC" --timeout 5000 "$EP" "$K" "$alg" "$DG" 2>&1)
    [[ $out == ok\ * ]] || { echo "$out"; return 1; }
    python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "${out#ok }" \
        >"$T/dsig"
    openssl pkeyutl -verify -pubin -inkey "$T/pub.pem" -pkeyopt "rsa_padding_mode:$1" \
        -pkeyopt digest:sha256 "${pss[@]}" -in "$T/dgst" -sigfile "$T/dsig" >/dev/null 2>&1
}
metric() { # HOLDER: the daemon's count of bad signature shares from HOLDER
    curl -s "http://127.0.0.1:$P_M/metrics" |
        awk -v h="$1" '$1 == "spk_combiner_bad_signature_shares_total{holder=\"" h "\"}" {print $2}'
}
check "daemon, honest holders: PKCS#1 verifies" daemon_sig pkcs1
check "daemon, honest holders: PSS verifies" daemon_sig pss
check "daemon, honest holders: no bad share counted" test "$(metric h2)" = 0

# ---- h2 serves a key share of another split -------------------------------------------------
stop_holder h2
mkdir -p "$T/h2w.d"
cp "$T/s2/$K2.h2.share" "$T/s2/$K2.record" "$T/h2w.d/"
holder_start_unlimited h2 "$T/h2w.d" "$(port_of "$h2_ep")"
conf h2 h1 h3 >"$T/cfg/w.conf"
"$BH" run --config "$T/cfg/w.conf" --count 20 >"$T/out" 2>&1
cat "$T/out"
check "wrong key share: zero failed operations" grep -q 'ops=20 ok=20 failed=0' "$T/out"
check "wrong key share: counted against h2" \
    sh -c "awk '/^source h2 /{split(\$5,b,\"=\"); exit !(b[2] > 0)}' '$T/out'"
check "wrong key share: h1 and h3 not blamed" \
    sh -c "grep -q '^source h1 .* bad=0 ' '$T/out' && grep -q '^source h3 .* bad=0 ' '$T/out'"
for _ in 1 2 3; do
    daemon_sig pkcs1 || bad "daemon signature with h2 wrong"
done
daemon_sig pss || bad "daemon PSS signature with h2 wrong"
check "wrong key share: the daemon names h2 from its proof" \
    grep -q "combiner: key ${K:0:16}: h2 sent a bad signature share (index 2): a signature share whose proof of correctness fails" "$T/comb.log"
check "wrong key share: no subset search was needed" \
    sh -c "! grep -q 'sent a wrong signature share' '$T/comb.log'"
check "wrong key share: the daemon's metrics count it for h2, none for h1, h3" \
    sh -c "[ '$(metric h2)' -gt 0 ] && [ '$(metric h1):$(metric h3)' = 0:0 ]"

# ---- h3 sends no proof (its record has no verification keys) -------------------------------
stop_holder h3
mkdir -p "$T/h3n.d"
cp "$T/s/$K.h3.share" "$T/nov/$K.record" "$T/h3n.d/"
holder_start_unlimited h3 "$T/h3n.d" "$(port_of "$h3_ep")"
conf h3 h1 >"$T/cfg/n.conf"
"$BH" run --config "$T/cfg/n.conf" --count 5 >"$T/out" 2>&1
cat "$T/out"
check "no proof: every operation fails (h1 alone is not 2 of 3)" grep -q 'ops=5 ok=0 failed=5' "$T/out"
check "no proof: counted against h3" \
    sh -c "awk '/^source h3 /{split(\$5,b,\"=\"); exit !(b[2] > 0)}' '$T/out'"
conf h1 h3 h2 >"$T/cfg/n3.conf"
"$COMB" sign --config "$T/cfg/n3.conf" --alg pkcs1-sha256 --digest "$DG" --out "$T/n.sig" \
    >"$T/n.out" 2>&1
check "no proof: combiner sign names h3 and why" \
    grep -q "h3.*without its proof" "$T/n.out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
