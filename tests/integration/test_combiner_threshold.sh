#!/usr/bin/env bash
# Integration test of the combiner serving threshold-mode keys (signature
# shares, proto/PROTOCOL.md section 5.1): real share-holder daemons on
# 127.0.0.1 with CURVE, threshold splits made by keysplit, the combiner built
# from a config file, both as `combiner sign` and as the `combiner run`
# daemon. 2-of-3 with the combiner's own key share and without one, 3-of-5;
# PKCS#1 v1.5 and PSS signatures verified by openssl with the public key; one
# holder down still signs; a holder serving a key share of another threshold
# split of the same key is detected, counted against it (the daemon's
# metrics too) and the operations succeed from the others; decryption is
# refused before any holder is asked.
# Usage: test_combiner_threshold.sh BUILD_DIR
set -u

B=$(cd "${1:?usage: test_combiner_threshold.sh BUILD_DIR}" && pwd)
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
SIGN_CMD=("$COMB") # lib_holder.sh's sign_check

holder_scratch spk-comb-threshold
HOLDER_AUDIT_DIR=$T
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    HOLDER_AUDIT_DIR=$(mktemp -d /dev/shm/spk-comb-threshold.XXXXXX) # removed by holder_cleanup
fi

# ---- keys, splits, holders -------------------------------------------------------
for n in edge h1 h2 h3 h4; do
    "$KS" keygen --name "$n" --out "$T" >/dev/null 2>&1 || bad "keygen $n"
done
mkdir -p "$T/a" "$T/n" "$T/n2" "$T/f"
tsplit() { # OUT KEY K HOLDER...
    local out=$1 key=$2 k=$3 hs=() h
    shift 3
    for h in "$@"; do hs+=(--holder "$T/$h.pub"); done
    "$KS" split --mode threshold --key "$SRC/tests/data/$key.pem" --threshold "$k" "${hs[@]}" \
        --out "$T/$out" 2>"$T/split.err" || cat "$T/split.err"
}
# A: 2-of-3, one share the combiner's; N: 2-of-3 on holders only (and N2, a
# second split of the same key for the wrong-share test); F: 3-of-5.
KA=$(tsplit a rsa2048 2 edge h1 h2)
KN=$(tsplit n rsa3072 2 h1 h2 h3)
KN2=$(tsplit n2 rsa3072 2 h1 h2 h3)
KF=$(tsplit f rsa4096 3 edge h1 h2 h3 h4)
check "keysplit made the threshold splits" \
    test -n "$KA" -a -n "$KN" -a "$KN" = "$KN2" -a -n "$KF" -a -f "$T/f/$KF.record"
check "the records say threshold mode" grep -q '^mode threshold$' "$T/a/$KA.record"

echo "client edge $(z85 edge) * 127.0.0.1/32" >"$T/allow"
for h in h1 h2 h3 h4; do
    mkdir -p "$T/$h.d"
    cp "$T/f/$KF.$h.share" "$T/f/$KF.record" "$T/$h.d/"
done
for h in h1 h2 h3; do
    cp "$T/n/$KN.$h.share" "$T/n/$KN.record" "$T/$h.d/"
done
for h in h1 h2; do
    cp "$T/a/$KA.$h.share" "$T/a/$KA.record" "$T/$h.d/"
done
for h in h1 h2 h3 h4; do
    holder_start_unlimited "$h" "$T/$h.d"
done
check "four holders started" test -n "$h1_ep" -a -n "$h2_ep" -a -n "$h3_ep" -a -n "$h4_ep"

mkdir -p "$T/cfg"
cp "$T/edge.key" "$T/cfg/"
holders() { # NAME...: holder lines
    local h ep
    for h in "$@"; do
        ep="${h}_ep"
        echo "holder $h ${!ep} ../$h.pub"
    done
}
{
    printf 'splitkey-combiner 1\nkey edge.key\nrecord ../a/%s.record\n' "$KA"
    printf 'share ../a/%s.edge.share\ntimeout-ms 2000\n' "$KA"
    holders h1 h2
} >"$T/cfg/a.conf"
{
    printf 'splitkey-combiner 1\nkey edge.key\nrecord ../n/%s.record\ntimeout-ms 2000\n' "$KN"
    holders h1 h2 h3
} >"$T/cfg/n.conf"
{
    printf 'splitkey-combiner 1\nkey edge.key\nrecord ../f/%s.record\n' "$KF"
    printf 'share ../f/%s.edge.share\ntimeout-ms 3000\n' "$KF"
    holders h1 h2 h3 h4
} >"$T/cfg/f.conf"

for b in 2048 3072 4096; do
    openssl pkey -in "$SRC/tests/data/rsa$b.pem" -pubout -out "$T/pub$b.pem" 2>/dev/null
done
head -c 1000 /dev/urandom >"$T/msg"

sigshares() { cat "$HOLDER_AUDIT_DIR"/h*.audit 2>/dev/null | grep -c "outcome=signed"; }

# ---- end to end through `combiner sign` --------------------------------------------
for alg in pkcs1-sha256 pkcs1-sha384 pkcs1-sha512 pkcs1-md5sha1 pss-sha256 pss-sha384 pss-sha512; do
    check "2-of-3 with a local share: $alg verifies with openssl" \
        sign_check "$T/cfg/a.conf" "$T/pub2048.pem" "$alg"
done
for alg in pkcs1-sha256 pkcs1-sha1 pss-sha256 pss-sha512; do
    check "2-of-3 on holders only: $alg verifies with openssl" \
        sign_check "$T/cfg/n.conf" "$T/pub3072.pem" "$alg"
done
for alg in pkcs1-sha256 pss-sha384; do
    check "3-of-5: $alg verifies with openssl" sign_check "$T/cfg/f.conf" "$T/pub4096.pem" "$alg"
done
# (holder-fanout needed asks only as many holders as a signature needs, so
# which of a key's holders signed is the combiner's pick)
check "holders audited signature shares for every key" \
    sh -c "cat $HOLDER_AUDIT_DIR/h*.audit | grep -q 'key=$KA .*outcome=signed' &&
           cat $HOLDER_AUDIT_DIR/h*.audit | grep -q 'key=$KN .*outcome=signed' &&
           cat $HOLDER_AUDIT_DIR/h*.audit | grep -q 'key=$KF .*outcome=signed'"

# decryption: refused at the combiner, no holder asked. A holder asked by a
# hedge of the last signature may still be writing its audit line after
# `combiner sign` has exited: count once the logs are still.
head -c 256 /dev/zero | tr '\0' '\1' >"$T/ct"
for _ in $(seq 50); do
    a0=$(cat "$HOLDER_AUDIT_DIR"/h*.audit | wc -l)
    sleep 0.2
    [ "$(cat "$HOLDER_AUDIT_DIR"/h*.audit | wc -l)" = "$a0" ] && break
done
n0=$(sigshares)
a0=$(cat "$HOLDER_AUDIT_DIR"/h*.audit | wc -l)
"$COMB" decrypt --config "$T/cfg/a.conf" --alg pkcs1 --in "$T/ct" --out "$T/dec" 2>"$T/err"
rc=$?
check "decrypt of a threshold key fails ($rc)" test "$rc" -ne 0 -a ! -s "$T/dec"
check "decrypt of a threshold key: the error says why" grep -q 'threshold mode' "$T/err"
check "decrypt of a threshold key: no holder was asked" \
    test "$(cat "$HOLDER_AUDIT_DIR"/h*.audit | wc -l)" = "$a0" -a "$(sigshares)" = "$n0"

# without a config: the first --share is the combiner's own; a second cannot serve in process
"$COMB" sign --record "$T/a/$KA.record" --share "$T/a/$KA.edge.share" --holder-key "$T/edge.key" \
    --share "$T/a/$KA.h1.share" --holder-key "$T/h1.key" --alg pkcs1-sha256 \
    --digest "$(printf '%064d' 0)" --out "$T/x.sig" 2>"$T/err"
check "combiner sign --share twice: refused, with the reason" \
    sh -c "test ! -e '$T/x.sig' && grep -q 'threshold-mode key share' '$T/err'"

"$COMB" check --config "$T/cfg/n.conf" >"$T/check.out" 2>&1
check "combiner check names the key's mode" \
    grep -q "key ${KN:0:16}.*threshold" "$T/check.out"

# ---- the daemon ------------------------------------------------------------------------
P_M=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
    cat "$T/cfg/a.conf"
    echo "record ../n/$KN.record"
    echo "holder h3 $h3_ep ../h3.pub"
    echo "listen ipc://$T/comb.sock"
    echo "client edge uid $(id -u) tls"
    echo "metrics 127.0.0.1:$P_M"
    echo "allow-unlocked yes"
    # two holders per signature, taking turns: h2 is asked within a few
    echo "holder-fanout needed"
} >"$T/cfg/run.conf"
"$COMB" run --config "$T/cfg/run.conf" 2>"$T/comb.log" &
comb_pid=$!
PIDS+=("$comb_pid")
for _ in $(seq 100); do
    grep -q "combiner: serving" "$T/comb.log" 2>/dev/null && break
    sleep 0.1
done
check "combiner run serves the threshold keys" grep -q "combiner: serving" "$T/comb.log"
EP=ipc://$T/comb.sock
op() { "$TC" --timeout 3000 "$@" 2>&1; }
DG=$(openssl dgst -sha256 -binary "$T/msg" | od -An -tx1 -v | tr -d ' \n')
openssl dgst -sha256 -binary "$T/msg" >"$T/dgst"
# daemon_sig KEY OP PUB PAD: one signature through the daemon, verified by openssl
daemon_sig() {
    local out
    out=$(op "$EP" "$1" "$2" "$DG")
    [[ $out == ok\ * ]] || { echo "$out"; return 1; }
    python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "${out#ok }" \
        >"$T/dsig"
    local pss=()
    [ "$4" = pss ] && pss=(-pkeyopt rsa_pss_saltlen:digest)
    openssl pkeyutl -verify -pubin -inkey "$3" -pkeyopt "rsa_padding_mode:$4" -pkeyopt digest:sha256 \
        "${pss[@]}" -in "$T/dgst" -sigfile "$T/dsig" >/dev/null 2>&1
}
check "daemon: PKCS#1 signature with the local share verifies" \
    daemon_sig "$KA" sign-pkcs1-sha256 "$T/pub2048.pem" pkcs1
check "daemon: PSS signature with the local share verifies" \
    daemon_sig "$KA" sign-pss-sha256 "$T/pub2048.pem" pss
check "daemon: PSS signature from holders only verifies" \
    daemon_sig "$KN" sign-pss-sha256 "$T/pub3072.pem" pss
out=$(op "$EP" "$KA" decrypt-tls-premaster "00$(printf '11%.0s' $(seq 255))")
check "daemon: premaster decryption refused, unsupported ($out)" \
    grep -q "^error unsupported.*threshold mode" <<<"$out"

# ---- one holder down ----------------------------------------------------------------------
stop_holder h2
check "h2 down: 2-of-3 with the local share still signs" \
    sign_check "$T/cfg/a.conf" "$T/pub2048.pem" pss-sha256
check "h2 down: 2-of-3 on holders only still signs" \
    sign_check "$T/cfg/n.conf" "$T/pub3072.pem" pkcs1-sha256
check "h2 down: the daemon still signs" daemon_sig "$KN" sign-pkcs1-sha256 "$T/pub3072.pem" pkcs1

# ---- a holder with a key share of another split ---------------------------------------------
# h2 comes back serving split N2's share of the same key (with N2's record, so
# that it loads it): its signature shares are well-formed but wrong for N.
mkdir -p "$T/h2w.d"
cp "$T/n2/$KN2.h2.share" "$T/n2/$KN2.record" "$T/h2w.d/"
holder_start_unlimited h2 "$T/h2w.d" "$(port_of "$h2_ep")"
# holder-fanout all: whether h2's answer is among the first two is up to the
# scheduler; when it is, the third answer (kept) decides
{
    printf 'splitkey-combiner 1\nkey edge.key\nrecord ../n/%s.record\ntimeout-ms 2000\n' "$KN"
    holders h2 h1 h3
} >"$T/cfg/nw.conf"
"$BH" run --config "$T/cfg/nw.conf" --count 40 >"$T/out" 2>&1
cat "$T/out"
check "wrong key share, fanout all: zero failed operations" grep -q 'ops=40 ok=40 failed=0' "$T/out"
# holder-fanout needed: two holders asked per signature, taking turns, so h2
# is among them in most operations, and the third is asked once they fail
echo "holder-fanout needed" >>"$T/cfg/nw.conf"
"$BH" run --config "$T/cfg/nw.conf" --count 40 >"$T/out" 2>&1
cat "$T/out"
check "wrong key share: zero failed operations" grep -q 'ops=40 ok=40 failed=0' "$T/out"
check "wrong key share: counted against h2" \
    sh -c "awk '/^source h2 /{split(\$5,b,\"=\"); exit !(b[2] > 0)}' '$T/out'"
check "wrong key share: h1 and h3 not blamed" \
    sh -c "grep -q '^source h1 .* bad=0 ' '$T/out' && grep -q '^source h3 .* bad=0 ' '$T/out'"
for _ in 1 2 3 4 5 6; do
    daemon_sig "$KN" sign-pkcs1-sha256 "$T/pub3072.pem" pkcs1 || bad "daemon signature with h2 wrong"
done
check "wrong key share: the daemon logs h2 by name" \
    grep -q "combiner: key ${KN:0:16}: h2 sent a wrong signature share" "$T/comb.log"
M=$(curl -s "http://127.0.0.1:$P_M/metrics")
check "wrong key share: the daemon's metrics count it for h2" \
    awk '/^spk_combiner_bad_signature_shares_total\{holder="h2"\}/{n = $2} END{exit !(n > 0)}' <<<"$M"
check "wrong key share: the metrics count none for h1" \
    grep -q '^spk_combiner_bad_signature_shares_total{holder="h1"} 0$' <<<"$M"

# every holder of N down: the daemon fails at once (holders refuse to connect), naming them
stop_holder h1
stop_holder h2
stop_holder h3
sleep 0.3
t0=$(date +%s%3N)
out=$(op "$EP" "$KN" sign-pkcs1-sha256 "$DG")
t1=$(date +%s%3N)
check "all holders down: refused with a threshold error naming them ($out)" \
    sh -c "echo '$out' | grep -q '^error .*h1.*h2.*h3\|^error .*h2.*h1.*h3'"
check "all holders down: within the 2000 ms timeout ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 1500

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
