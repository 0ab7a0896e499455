#!/usr/bin/env bash
# holder-fanout, with real share-holders on 127.0.0.1: a 2-of-3 key (the
# combiner's own share and holders h1, h2). With `needed` each
# rebuild asks one holder (k-1), the two take turns: over 10,000 operations
# each releases about half the shares and together about one per rebuild
# (with `all`, both release one for every rebuild). kill -9 of a holder
# during a `needed` run fails no operation (the hedge asks the other).
# Usage: test_combiner_fanout.sh BUILD_DIR
set -u

B=$(cd "${1:?usage: test_combiner_fanout.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
KS=$B/split/keysplit
SH=$B/share-holder/share-holder
BH=$B/tests/bench_holder
# shellcheck source=tests/integration/lib_holder.sh
. "$SRC/tests/integration/lib_holder.sh"
holder_need_bins "$KS" "$SH" "$BH"
export SPK_ALLOW_UNLOCKED=1 # sanitizer builds cannot lock their shadow memory
holder_scratch spk-comb-fanout
# The holders fdatasync their audit log before each share leaves (4-15 ms on
# this kind of disk): on tmpfs, when there is one, 10,000 rebuilds stay quick.
HOLDER_AUDIT_DIR=$T
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    HOLDER_AUDIT_DIR=$(mktemp -d /dev/shm/spk-comb-fanout.XXXXXX) # removed by holder_cleanup
fi

for n in edge h1 h2; do
    "$KS" keygen --name "$n" --out "$T" >/dev/null 2>&1 || bad "keygen $n"
done
mkdir -p "$T/a"
KA=$("$KS" split --key "$SRC/tests/data/rsa2048.pem" --threshold 2 --holder "$T/edge.pub" \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --out "$T/a" 2>/dev/null)
echo "client edge $(z85 edge) * 127.0.0.1/32" >"$T/allow"
for h in h1 h2; do
    mkdir -p "$T/$h.d"
    cp "$T/a/$KA.$h.share" "$T/a/$KA.record" "$T/$h.d/"
    holder_start "$h" "$T/$h.d" "$T/allow" "*" --rate 1000000 --burst 1000000
done
check "two holders started" test -n "$h1_ep" -a -n "$h2_ep"

conf() { # FANOUT-LINE
    cat <<EOF
splitkey-combiner 1
key $T/edge.key
record $T/a/$KA.record
share $T/a/$KA.edge.share
holder h1 $h1_ep $(z85 h1)
holder h2 $h2_ep $(z85 h2)
timeout-ms 2000
$1
EOF
}
conf "holder-fanout needed" >"$T/needed.conf"
conf "holder-fanout all" >"$T/all.conf"
released() { grep -c "outcome=released" "$HOLDER_AUDIT_DIR/$1.audit" 2>/dev/null || echo 0; }

# ---- needed: 10,000 operations, one at a time ----------------------
"$BH" run --config "$T/needed.conf" --count 10000 --inflight 1 >"$T/out" 2>&1
check "needed: 10,000 operations, none failed" grep -q 'ops=10000 ok=10000 failed=0' "$T/out"
n1=$(released h1)
n2=$(released h2)
total=$((n1 + n2))
echo "needed: h1 released $n1, h2 released $n2 shares for 10,000 operations"
check "needed: one holder per rebuild, not two ($total shares for 10,000 operations)" \
    test "$total" -ge 10000 -a "$total" -le 11000
# Equal holders take turns, but "equal" is their recent latency: under a
# sanitizer build on a loaded machine one holder process is often slower for
# long stretches and is rightly asked less. The bound there is looser; the
# functional checks (one holder per rebuild, no failure) are the same.
min_share=4000
if grep -qE '^SPK_(ASAN|UBSAN):BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null; then
    min_share=2500
fi
check "needed: each holder served about half (h1 $n1, h2 $n2; at least $min_share)" \
    test "$n1" -ge $min_share -a "$n2" -ge $min_share

# ---- all: every holder for every rebuild ------------------------------------------
"$BH" run --config "$T/all.conf" --count 1000 --inflight 1 >"$T/out" 2>&1
check "all: 1,000 operations, none failed" grep -q 'ops=1000 ok=1000 failed=0' "$T/out"
a1=$(($(released h1) - n1))
a2=$(($(released h2) - n2))
check "all: both holders asked for every rebuild (h1 $a1, h2 $a2)" \
    test "$a1" -ge 950 -a "$a2" -ge 950

# ---- needed, and a holder killed mid-run ------------------------------------------
"$BH" run --config "$T/needed.conf" --count 2000 --inflight 4 --kill "$h2_pid@500" >"$T/out" 2>&1
check "needed: kill -9 of h2 after 500 of 2,000 operations: zero failed" \
    grep -q 'ops=2000 ok=2000 failed=0' "$T/out"
check "h2 is gone" sh -c "! kill -0 $h2_pid 2>/dev/null"

if [ "$fail" -ne 0 ]; then
    tail -5 "$T/out"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
