#!/usr/bin/env bash
# Integration test of the combiner with remote share-holders: real
# share-holder daemons on 127.0.0.1 with CURVE, keys and splits made by
# keysplit, the combiner built from a config file (proto/PROTOCOL.md
# section 8). End to end 2-of-3 and 3-of-5 (every signature algorithm and the
# decryptions, checked with openssl and the public key), then faults with
# 2-of-3: kill -9 of a holder during 2,000 operations, both holders stopped
# and one restarted, and a holder serving a share of another split.
# Usage: test_combiner_remote.sh BUILD_DIR
set -u

B=$(cd "${1:?usage: test_combiner_remote.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
KS=$B/split/keysplit
SH=$B/share-holder/share-holder
BH=$B/tests/bench_holder
COMB=$B/combiner/combiner
# shellcheck source=tests/integration/lib_holder.sh
. "$SRC/tests/integration/lib_holder.sh"
holder_need_bins "$KS" "$SH" "$BH"
# The combiner command takes --config once its owner added it; until then the
# same library call runs through the test driver.
if [ -x "$COMB" ] && "$COMB" sign --help 2>/dev/null | grep -q -- '--config'; then
    ONE=("$COMB")
else
    ONE=("$BH")
fi
echo "one-shot operations through: ${ONE[*]}"
SIGN_CMD=("${ONE[@]}") # lib_holder.sh's sign_check
export SPK_ALLOW_UNLOCKED=1 # sanitizer builds cannot lock their shadow memory

holder_scratch spk-comb-remote
# The holders fdatasync their audit log before each batch of shares leaves:
# 4-15 ms on this kind of disk, at times 200 ms. The checks below are about
# the combiner (which answers it uses, kill -9, a wrong share seen first), so
# the audit logs go to tmpfs, where the sync costs nothing, when there is one.
HOLDER_AUDIT_DIR=$T
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    HOLDER_AUDIT_DIR=$(mktemp -d /dev/shm/spk-comb-remote.XXXXXX) # removed by holder_cleanup
fi
now_ms() { date +%s%3N; }

# ---- keys, splits, holders -------------------------------------------------------
for n in edge h1 h2 h3 h4; do
    "$KS" keygen --name "$n" --out "$T" >/dev/null 2>&1 || bad "keygen $n"
done
mkdir -p "$T/a" "$T/b" "$T/c"
KA=$("$KS" split --key "$SRC/tests/data/rsa2048.pem" --threshold 2 --holder "$T/edge.pub" \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --out "$T/a" 2>/dev/null)
# a second split of the same key, for the wrong-share test
KB=$("$KS" split --key "$SRC/tests/data/rsa2048.pem" --threshold 2 --holder "$T/edge.pub" \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --out "$T/b" 2>/dev/null)
KC=$("$KS" split --key "$SRC/tests/data/rsa3072.pem" --threshold 3 --holder "$T/edge.pub" \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --holder "$T/h3.pub" --holder "$T/h4.pub" \
    --out "$T/c" 2>/dev/null)
check "keysplit made the 2-of-3, second 2-of-3 and 3-of-5 splits" \
    test -n "$KA" -a "$KA" = "$KB" -a -n "$KC" -a -f "$T/c/$KC.record"

echo "client edge $(z85 edge) * 127.0.0.1/32" >"$T/allow"
for h in h1 h2 h3 h4; do
    mkdir -p "$T/$h.d"
    cp "$T/c/$KC.$h.share" "$T/c/$KC.record" "$T/$h.d/"
done
for h in h1 h2; do
    cp "$T/a/$KA.$h.share" "$T/a/$KA.record" "$T/$h.d/"
done

for h in h1 h2 h3 h4; do
    holder_start_unlimited "$h" "$T/$h.d"
done
check "four holders started" test -n "$h1_ep" -a -n "$h2_ep" -a -n "$h3_ep" -a -n "$h4_ep"

# Config files: holder keys as a NAME.pub path and as Z85, relative paths.
mkdir -p "$T/cfg"
cp "$T/edge.key" "$T/cfg/"
cat >"$T/cfg/c23.conf" <<EOF
# 2-of-3: the combiner's own share and two holders
splitkey-combiner 1
key edge.key
record ../a/$KA.record
share ../a/$KA.edge.share
holder h1 $h1_ep ../h1.pub
holder h2 $h2_ep $(z85 h2)
timeout-ms 1000
EOF
cat >"$T/cfg/c35.conf" <<EOF
splitkey-combiner 1
key edge.key
record ../c
share ../c
holder h1 $h1_ep $(z85 h1)
holder h2 $h2_ep $(z85 h2)
holder h3 $h3_ep ../h3.pub
holder h4 $h4_ep ../h4.pub
timeout-ms 1000
EOF

openssl pkey -in "$SRC/tests/data/rsa2048.pem" -pubout -out "$T/pub2048.pem" 2>/dev/null
openssl pkey -in "$SRC/tests/data/rsa3072.pem" -pubout -out "$T/pub3072.pem" 2>/dev/null
head -c 1000 /dev/urandom >"$T/msg"


# decrypt_check CONF PUB ALG: encrypt with openssl, decrypt through the holders
decrypt_check() {
    local conf=$1 pub=$2 alg=$3 opts=() extra=()
    case $alg in
    pkcs1) opts=(-pkeyopt rsa_padding_mode:pkcs1) ;;
    oaep-sha1) opts=(-pkeyopt rsa_padding_mode:oaep) ;;
    oaep-sha256) opts=(-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256
        -pkeyopt rsa_mgf1_md:sha256) ;;
    tls-premaster)
        opts=(-pkeyopt rsa_padding_mode:pkcs1)
        extra=(--tls-version 0x0303)
        ;;
    esac
    if [ "$alg" = tls-premaster ]; then
        { printf '\003\003'; head -c 46 /dev/urandom; } >"$T/pt"
    else
        head -c 32 /dev/urandom >"$T/pt"
    fi
    openssl pkeyutl -encrypt -pubin -inkey "$pub" "${opts[@]}" -in "$T/pt" -out "$T/ct" \
        2>/dev/null || return 1
    rm -f "$T/dec"
    "${ONE[@]}" decrypt --config "$conf" --alg "$alg" --in "$T/ct" --out "$T/dec" \
        "${extra[@]}" 2>"$T/err" || { cat "$T/err"; return 1; }
    cmp -s "$T/dec" "$T/pt"
}

# ---- end to end -------------------------------------------------------------------
for alg in pkcs1-sha1 pkcs1-sha224 pkcs1-sha256 pkcs1-sha384 pkcs1-sha512 pkcs1-md5sha1 \
    pss-sha256 pss-sha384 pss-sha512; do
    check "2-of-3 sign $alg verifies with openssl" sign_check "$T/cfg/c23.conf" "$T/pub2048.pem" "$alg"
done
for alg in pkcs1 oaep-sha1 oaep-sha256 tls-premaster; do
    check "2-of-3 decrypt $alg gives the plaintext back" \
        decrypt_check "$T/cfg/c23.conf" "$T/pub2048.pem" "$alg"
done
# a premaster with the wrong version decrypts to 48 other bytes, and no error
{ printf '\003\001'; head -c 46 /dev/urandom; } >"$T/pt"
openssl pkeyutl -encrypt -pubin -inkey "$T/pub2048.pem" -pkeyopt rsa_padding_mode:pkcs1 \
    -in "$T/pt" -out "$T/ct" 2>/dev/null
rm -f "$T/dec"
"${ONE[@]}" decrypt --config "$T/cfg/c23.conf" --alg tls-premaster --in "$T/ct" --out "$T/dec" \
    --tls-version 0x0303 2>/dev/null
check "tls-premaster with a wrong version: 48 random bytes, no error" \
    test "$(stat -c %s "$T/dec" 2>/dev/null)" = 48 -a "$(cmp -s "$T/dec" "$T/pt"; echo $?)" = 1
for alg in pkcs1-sha1 pkcs1-sha256 pkcs1-sha512 pkcs1-md5sha1 pss-sha256 pss-sha384 pss-sha512; do
    check "3-of-5 sign $alg verifies with openssl" sign_check "$T/cfg/c35.conf" "$T/pub3072.pem" "$alg"
done
for alg in pkcs1 oaep-sha1 oaep-sha256 tls-premaster; do
    check "3-of-5 decrypt $alg gives the plaintext back" \
        decrypt_check "$T/cfg/c35.conf" "$T/pub3072.pem" "$alg"
done
if [ "${ONE[0]}" = "$COMB" ]; then
    # several keys in one config: --key-id chooses
    cat >"$T/cfg/both.conf" <<EOF
splitkey-combiner 1
key edge.key
record ../a/$KA.record
record ../c/$KC.record
share ../a/$KA.edge.share
share ../c/$KC.edge.share
holder h1 $h1_ep ../h1.pub
holder h2 $h2_ep ../h2.pub
holder h3 $h3_ep ../h3.pub
EOF
    "$COMB" sign --config "$T/cfg/both.conf" --alg pkcs1-sha256 --digest "$(printf '%064d' 0)" \
        --out "$T/x.sig" 2>"$T/err"
    check "combiner: a config with two keys needs --key-id" \
        sh -c "test ! -e '$T/x.sig' && grep -q 'key-id' '$T/err'"
    "$COMB" sign --config "$T/cfg/both.conf" --key-id "$KC" --alg pkcs1-sha256 \
        --digest "$(printf '%064d' 0)" --out "$T/x.sig" 2>"$T/err"
    check "combiner: --key-id picks the 3-of-5 key (3072-bit signature)" \
        test "$(stat -c %s "$T/x.sig" 2>/dev/null)" = 384
    "$COMB" sign --config "$T/cfg/c23.conf" --record "$T/a/$KA.record" --alg pkcs1-sha256 \
        --digest "$(printf '%064d' 0)" --out "$T/y.sig" 2>"$T/err"
    check "combiner: --config with --record is a usage error" test $? -eq 2
fi
# holder-fanout needed asks two of the five holders per rebuild (with the
# local share): some of them, not necessarily h3, released shares.
cat "$HOLDER_AUDIT_DIR"/h*.audit 2>/dev/null | grep -c "client=edge key=$KC .*outcome=released" >"$T/n"
check "holders wrote audit lines for the 3-of-5 key" test "$(cat "$T/n")" -gt 0

# 3-of-5 with two holders down still works; with three down it fails
stop_holder h3
stop_holder h4
check "3-of-5 with h3 and h4 stopped still signs" \
    sign_check "$T/cfg/c35.conf" "$T/pub3072.pem" pss-sha256
stop_holder h2
"$BH" run --config "$T/cfg/c35.conf" --count 1 >"$T/out" 2>&1
check "3-of-5 with only the local share and h1 fails (threshold)" \
    grep -q 'ops=1 ok=0 failed=1' "$T/out"
holder_start_unlimited h2 "$T/h2.d" "$(port_of "$h2_ep")"

# ---- faults with 2-of-3 ---------------------------------------------------------------
# kill -9 of h1 after 300 of 2,000 operations: none may fail
"$BH" run --config "$T/cfg/c23.conf" --count 2000 --inflight 4 --kill "$h1_pid@300" >"$T/out" 2>&1
cat "$T/out"
check "kill -9 of a holder during 2,000 operations: zero failed" \
    grep -q 'ops=2000 ok=2000 failed=0' "$T/out"
check "h1 was killed during the run" \
    sh -c "grep -q 'killing pid' '$T/out' && ! kill -0 $h1_pid 2>/dev/null"
check "h2 served the operations after the kill" \
    sh -c "awk '/^source h2 /{split(\$4,g,\"=\"); exit !(g[2] > 0)}' '$T/out'"

# both remote holders stopped: fail fast, with a clear error
stop_holder h2
"$BH" run --config "$T/cfg/c23.conf" --count 5 --timeline >"$T/out" 2>&1
cat "$T/out"
check "both holders down: every operation fails" grep -q 'ops=5 ok=0 failed=5' "$T/out"
check "both holders down: each failure within the 1000 ms timeout" \
    awk -F'elapsed_ms=' '/^op /{split($2, a, " "); if (a[1] + 0 >= 1000) bad = 1} END {exit bad}' \
    "$T/out"
check "both holders down: the error names both holders" \
    sh -c "grep '^first_error=' '$T/out' | grep -q h1 && grep '^first_error=' '$T/out' | grep -q h2"

# restart h1 (same port) while operations keep coming every 20 ms: success
# again within a second of it being up (the driver first waits up to the
# 1000 ms timeout for holders to connect, then runs 3 s of operations)
"$BH" run --config "$T/cfg/c23.conf" --count 150 --interval-ms 20 --timeline >"$T/tl" 2>&1 &
run_pid=$!
sleep 2
holder_start_unlimited h1 "$T/h1.d" "$(port_of "$h1_ep")"
up_ms=$(now_ms)
wait $run_pid
first_ok=$(awk -F'wall_ms=' '/status=0 /{split($2, a, " "); print a[1]; exit}' "$T/tl")
failed_before=$(awk -F'wall_ms=' -v up="$up_ms" '/^op /{split($2, a, " "); if (a[1] < up - 100 && $0 !~ /status=0 /) n++} END {print n + 0}' "$T/tl")
echo "h1 up at $up_ms, first success at ${first_ok:-never}, $failed_before failures before"
check "operations failed while both holders were down" test "$failed_before" -gt 0
check "operations succeed again within a second of h1 restarting" \
    test -n "$first_ok" -a $((${first_ok:-0} - up_ms)) -lt 1000
check "after recovery every operation succeeds" \
    sh -c "awk -v t='${first_ok:-0}' -F'wall_ms=' '/^op /{split(\$2,a,\" \"); if (a[1] > t && \$0 !~ /status=0 /) bad=1} END{exit bad}' '$T/tl'"

# a holder serving a share of another split of the same key: h2 gets split b's
# share; in the first case with split a's split id written over (so that only
# the commitment tells), in the second as it is (another split id)
mkdir -p "$T/h2w.d" "$T/h2m.d"
sed "s/^split-id .*/$(grep '^split-id ' "$T/a/$KA.record")/" "$T/b/$KB.h2.share" >"$T/h2w.d/$KA.h2.share"
cp "$T/b/$KB.h2.share" "$T/h2m.d/"
chmod 600 "$T/h2w.d/$KA.h2.share" # a share file is secret: the holder refuses one others may read
# h2 first in the config, so that its share is examined first when both arrive together
cat >"$T/cfg/c23w.conf" <<EOF
splitkey-combiner 1
key edge.key
record ../a/$KA.record
share ../a/$KA.edge.share
holder h2 $h2_ep $(z85 h2)
holder h1 $h1_ep $(z85 h1)
timeout-ms 1000
EOF
for variant in w m; do
    holder_start_unlimited h2 "$T/h2$variant.d" "$(port_of "$h2_ep")"
    "$BH" run --config "$T/cfg/c23w.conf" --count 300 >"$T/out" 2>&1
    cat "$T/out"
    case $variant in
    w) what="commitment" why="does not match its commitment" ;;
    m) what="split id" why="different splits" ;;
    esac
    check "wrong share ($what): zero failed operations" grep -q 'ops=300 ok=300 failed=0' "$T/out"
    check "wrong share ($what): detected and counted against h2" \
        sh -c "awk '/^source h2 /{split(\$5,b,\"=\"); exit !(b[2] > 0)}' '$T/out'"
    check "wrong share ($what): the reason is recorded" grep -q "^source h2 .*$why" "$T/out"
    check "wrong share ($what): h2's share was never accepted" grep -q '^source h2 .* good=0 ' "$T/out"
    stop_holder h2
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
