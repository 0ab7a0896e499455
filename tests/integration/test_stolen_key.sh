#!/usr/bin/env bash
# SECURITY.md's "compromised edge host, or its stolen disk", with real
# processes: whoever holds the combiner's key file (combiner.key, here
# keys/comb.key) and reaches a holder from an admitted address is served
# like the combiner, and the count that shows it is the holders' released
# lines against the combiner's own per-holder request counter
# (spk_combiner_source_requests_total on the combiner's metrics). The test
# runs the edge with its combiner, makes 20 full handshakes, checks that the
# holders released no more than the combiner asked for, then fetches h1's
# share with the stolen key file from outside the combiner and checks the
# excess appears. (That the same key from an address outside the holder's
# ranges gets nothing is checked in test_holder.sh.)
# Usage: test_stolen_key.sh BUILD_DIR
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$SRC/tests/integration/lib_edge.sh"
lib_edge_init test-stolen-key "${1:-}"
TAMPER=$BUILD/tests/bench_tls_tamper
TC=$BUILD/share-holder/sh-testclient
for bin in "$TAMPER" "$TC"; do
    [ -x "$bin" ] || die "missing $bin"
done
P_METRICS=$P_FREE

lib_edge_pki
lib_edge_mkcert s.test 2048 || die "s.test certificate"
lib_edge_holder_keys
ID=$(lib_edge_split s.test) || die "split s.test"
lib_edge_holders
lib_edge_origin
LIB_EDGE_COMB_EXTRA="metrics 127.0.0.1:$P_METRICS" lib_edge_conf s.test >edge.conf
lib_edge_start edge.conf

# released SOURCE: the holder's released lines for the combiner's key (client comb)
released() { grep -c "client=comb .*outcome=released" "$AUDIT/$1.audit"; }
# requests SOURCE: the combiner's share requests to that holder, from its metrics
requests() {
    curl -sS --max-time 5 "http://127.0.0.1:$P_METRICS/metrics" |
        sed -n "s/^spk_combiner_source_requests_total{source=\"$1\"} \\([0-9]*\\)$/\\1/p"
}

out=$("$TAMPER" load 10 127.0.0.1 $P_EDGE s.test ca.pem 1.3 2>>load.err)
out2=$("$TAMPER" load 10 127.0.0.1 $P_EDGE s.test ca.pem 1.2-ecdhe 2>>load.err)
check "20 full handshakes through the edge ($out, $out2)" \
    [ "$out/$out2" = "ok=10 failed=0/ok=10 failed=0" ]
sleep 0.5 # answers to called-off requests may still be on their way
r1=$(requests h1)
r2=$(requests h2)
a1=$(released h1)
a2=$(released h2)
check "the combiner's metrics count its requests to h1 and h2 ($r1, $r2)" \
    [ -n "$r1" ] && [ -n "$r2" ] && [ $((${r1:-0} + ${r2:-0})) -gt 0 ]
check "h1 released no more than the combiner asked h1 for ($a1 <= $r1)" [ "$a1" -le "${r1:-0}" ]
check "h2 released no more than the combiner asked h2 for ($a2 <= $r2)" [ "$a2" -le "${r2:-0}" ]

# The stolen key file, used by someone else from an address h1 admits.
"$TC" fetch --key keys/comb.key --holder tcp://127.0.0.1:$P_H1 keys/h1.pub --key-id "$ID" \
    --record "shares/$ID.record" --count 3 --connect-wait 3000 >stolen.out 2>&1
check "the stolen combiner key gets h1's share, verified against the record (3 times)" \
    [ "$(grep -c '^holder h1 ok index=2 verified$' stolen.out)" -eq 3 ]
r1b=$(requests h1)
a1b=$(released h1)
check "the combiner sent h1 no request meanwhile ($r1 -> $r1b)" [ "$r1b" = "$r1" ]
check "h1's released lines now exceed the combiner's requests by 3 ($a1b - $r1b)" \
    [ $((a1b - ${r1b:-0})) -ge 3 ] && [ $((a1b - a1)) -eq 3 ]

check "no sanitizer report in any log" lib_edge_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
