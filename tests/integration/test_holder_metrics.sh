#!/usr/bin/env bash
# The share-holder's --metrics endpoint: a real holder on 127.0.0.1, requests
# from sh-testclient over CURVE, the counters read with curl. One release,
# two rate-limited requests, one denied request, refused handshakes of a key
# not in the allow-list, one failed SIGHUP reload; a non-loopback --metrics is
# refused at start.
# Usage: test_holder_metrics.sh BUILD_DIR
set -u

SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/integration/lib_holder.sh
. "$SRC/tests/integration/lib_holder.sh"
holder_test_setup spk-holder-metrics "${1:?usage: test_holder_metrics.sh BUILD_DIR}"

for n in h1 h2 edge other stranger; do
    "$KS" keygen --name "$n" --out "$T" >/dev/null 2>&1 || bad "keygen $n"
done
mkdir -p "$T/split" "$T/h1.d"
KEY=$("$KS" split --key "$SRC/tests/data/rsa2048.pem" --threshold 2 \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --out "$T/split" 2>/dev/null)
cp "$T/split/$KEY.h1.share" "$T/split/$KEY.record" "$T/h1.d/"
OTHERKEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$T/h1.allow" <<EOF2
client edge $(z85 edge) $KEY
client other $(z85 other) $OTHERKEY
EOF2

# ---- a metrics address that is not numeric loopback is refused at start ----------
for bad_addr in 0.0.0.0:9100 localhost:9100 127.attacker.example:9100 '[::]:9100'; do
    "$SH" run --key "$T/h1.key" --shares "$T/h1.d" --allow "$T/h1.allow" \
        --bind tcp://127.0.0.1:0 --audit-log stderr --allow-unlocked \
        --metrics "$bad_addr" >"$T/bad.out" 2>&1
    st=$?
    check "--metrics $bad_addr: refused at start (status $st)" test $st -eq 2
    check "--metrics $bad_addr: the message says why" \
        grep -qF "metrics $bad_addr: must be a numeric loopback HOST:PORT" "$T/bad.out"
done
printf 'metrics 0.0.0.0:9100\n' >"$T/bad.conf"
"$SH" run --key "$T/h1.key" --shares "$T/h1.d" --allow "$T/h1.allow" \
    --bind tcp://127.0.0.1:0 --audit-log stderr --allow-unlocked --config "$T/bad.conf" \
    >"$T/bad.out" 2>&1
check "metrics 0.0.0.0:9100 in --config: refused at start" \
    grep -qF "metrics 0.0.0.0:9100: must be a numeric loopback" "$T/bad.out"

# ---- a holder with metrics on a loopback port of this test's block ----------------
# (lib_ports.sh); a process outside the tests may hold one: try a few
h1_ep=""
lib_port_block || bad "a block of ports for this test"
for i in 0 1 2 3 4; do
    MPORT=$((PORT_BLOCK + i))
    holder_start h1 "$T/h1.d" "$T/h1.allow" '*' --rate 1 --burst 2 --metrics "127.0.0.1:$MPORT"
    [ -n "$h1_ep" ] && break
done
check "holder started with --metrics" test -n "$h1_ep"
check "the metrics address is in the start-up log" \
    grep -qF "metrics on http://127.0.0.1:$MPORT/metrics" "$T/h1.log"

# metric NAME: its value in a fresh scrape
metric() {
    curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics" | awk -v n="$1" '$1 == n {print $2}'
}
check "before any request: nothing released" test "$(metric spk_holder_shares_released_total)" = 0
check "before any request: no session" test "$(metric spk_holder_sessions)" = 0

# --count 3 against --rate 1 --burst 2: sh-testclient's PING and the first request
# take the burst, the other two requests are over the limit
"$TC" fetch --key "$T/edge.key" --holder "$h1_ep" "$T/h1.pub" --key-id "$KEY" --count 3 \
    --connect-wait 3000 >"$T/out" 2>&1
check "edge: one share released" test "$(grep -c '^holder h1 ok' "$T/out")" -eq 1
check "edge: two requests over the rate limit" \
    test "$(grep -c '^holder h1 error rate-limited' "$T/out")" -eq 2
# other is in the allow-list, but not for this key
"$TC" fetch --key "$T/other.key" --holder "$h1_ep" "$T/h1.pub" --key-id "$KEY" \
    --connect-wait 3000 >"$T/out" 2>&1
check "other: not-allowed" grep -q '^holder h1 error not-allowed' "$T/out"
# stranger is not in the allow-list: its handshakes are refused (it retries
# while it waits, so one or more)
"$TC" fetch --key "$T/stranger.key" --holder "$h1_ep" "$T/h1.pub" --key-id "$KEY" \
    --connect-wait 1000 >"$T/out" 2>&1
check "stranger: nothing" grep -q '^holder h1 error unavailable$' "$T/out"
# a reload with a bad allow-list line fails and keeps the previous list
cp "$T/h1.allow" "$T/h1.allow.good"
echo "client broken not-a-key *" >>"$T/h1.allow"
kill -HUP "$h1_pid"
for _ in $(seq 100); do grep -q 'reload failed' "$T/h1.log" && break; sleep 0.05; done
check "the bad reload is logged as an ERROR" grep -q 'ERROR: reload failed: allow-list' "$T/h1.log"

curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics" >"$T/scrape"
val() { awk -v n="$1" '$1 == n {print $2}' "$T/scrape"; }
check "metrics: released 1 ($(val spk_holder_shares_released_total))" \
    test "$(val spk_holder_shares_released_total)" = 1
check "metrics: rate-limited 2 ($(val spk_holder_requests_rate_limited_total))" \
    test "$(val spk_holder_requests_rate_limited_total)" = 2
check "metrics: denied 1 ($(val spk_holder_requests_denied_total))" \
    test "$(val spk_holder_requests_denied_total)" = 1
refused=$(val spk_holder_connections_refused_total)
check "metrics: refused handshakes counted ($refused)" test "${refused:-0}" -ge 1
check "metrics: failed reloads 1 ($(val spk_holder_reload_failures_total))" \
    test "$(val spk_holder_reload_failures_total)" = 1
check "metrics: one session in use (edge's; $(val spk_holder_sessions))" \
    test "$(val spk_holder_sessions)" = 1
check "metrics: the previous allow-list's 2 clients still in force" \
    test "$(val spk_holder_clients)" = 2
check "metrics: Prometheus text with TYPE lines" \
    grep -q '^# TYPE spk_holder_reload_failures_total counter$' "$T/scrape"
check "metrics: a path other than /metrics is 404" \
    test "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$MPORT/x")" = 404

check "h1 stopped cleanly" stop_holder h1
wait "$h1_pid"
check "h1 exited 0" test $? -eq 0
# the stop line counts the same refused handshakes the endpoint showed
check "stop line: the same $refused refused handshakes" \
    grep -q "stopping: 1 released, 1 denied, 2 rate-limited, $refused refused, 0 bad frames, 1 failed reloads" "$T/h1.log"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
