#!/usr/bin/env bash
# A connection closed while its handshake waits for the combiner: the edge
# ends that key operation (it finds it by connection, edge_client_cancel),
# resumes the job so it fails and frees it, and keeps serving. The combiner
# is stopped (SIGSTOP), CLIENTS handshakes pause on their signatures, and
# handshake-timeout-ms (1.5 s) closes them long before op-timeout-ms (20 s)
# would end their operations: right after the timeouts the edge has no
# operation in flight. Then the combiner goes on (SIGCONT), its late answers
# are dropped, and a new handshake is served. On a sanitizer build a wake-up
# that reached a freed connection would be reported.
# Usage: test_edge_cancel.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init test-edge-cancel "${1:-}"

CLIENTS=4
lib_edge_sites a.test
lib_edge_origin
P_METRICS=$P_FREE
{
    lib_edge_conf a.test | sed -e 's/^handshake-timeout-ms .*/handshake-timeout-ms 1500/' \
        -e 's/^op-timeout-ms .*/op-timeout-ms 20000/'
    echo "metrics 127.0.0.1:$P_METRICS"
} >edge.conf
lib_edge_start edge.conf

CURL=(curl -sS --max-time 10 --cacert ca.pem --resolve a.test:$P_EDGE:127.0.0.1)
metric() { # NAME: its value ("absent": no answer, and every check on it fails)
    curl -s --max-time 5 "http://127.0.0.1:$P_METRICS/metrics" |
        awk -v n="$1" '$1 == n { v = $2 } END { print (v == "" ? "absent" : v) }'
}

got=$("${CURL[@]}" https://a.test:$P_EDGE/index.html 2>>curl.err)
check "before: served" [ "$got" = "hello from the origin" ]
COMB_PID=$(pgrep -P "$EDGE_PID" | head -1)
[ -n "$COMB_PID" ] || die "the edge's combiner process"
timeouts0=$(metric spk_edge_handshake_timeouts_total)

kill -STOP "$COMB_PID"
CPIDS=()
for i in $(seq 1 $CLIENTS); do
    timeout 15 openssl s_client -connect 127.0.0.1:$P_EDGE -servername a.test -CAfile ca.pem \
        </dev/null >"sclient.$i.out" 2>&1 &
    CPIDS+=($!)
done
# Every handshake pauses on its operation...
seen=0
for _ in $(seq 1 50); do
    seen=$(metric spk_edge_key_operations_in_flight)
    [ "$seen" -ge $CLIENTS ] && break
    sleep 0.05
done
check "stopped combiner: $seen operations in flight (of $CLIENTS clients)" [ "$seen" -ge 1 ]
# ... until handshake-timeout-ms closes every connection.
timeouts=$timeouts0
for _ in $(seq 1 100); do
    timeouts=$(metric spk_edge_handshake_timeouts_total)
    [ "$timeouts" -ge $((timeouts0 + seen)) ] && break
    sleep 0.1
done
left=$(metric spk_edge_key_operations_in_flight)
check "handshake timeouts counted ($timeouts0 -> $timeouts)" [ "$timeouts" -ge $((timeouts0 + seen)) ]
check "closed connections left no operation in flight ($left)" [ "$left" -eq 0 ]
for p in "${CPIDS[@]}"; do
    wait "$p" 2>/dev/null
done
# The cancelled operation fails its job, which sends an internal_error alert.
alerted=$(grep -l "alert internal error" sclient.*.out | wc -l)
check "every client got an internal_error alert ($alerted of $CLIENTS)" [ "$alerted" -eq $CLIENTS ]
check "the edge is alive with the combiner stopped" kill -0 $EDGE_PID

kill -CONT "$COMB_PID"
got=$("${CURL[@]}" https://a.test:$P_EDGE/index.html 2>>curl.err)
check "combiner going on: served again" [ "$got" = "hello from the origin" ]
check "the combiner was not restarted ($(metric spk_edge_combiner_restarts_total))" \
    [ "$(metric spk_edge_combiner_restarts_total)" -eq 0 ]
check "no operation in flight at the end" [ "$(metric spk_edge_key_operations_in_flight)" -eq 0 ]
check "the edge process is alive" kill -0 $EDGE_PID
check "no sanitizer report in the logs" lib_edge_no_sanitizer_reports

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
