#!/usr/bin/env bash
# test_edge_faults.sh BUILD_DIR: share-holder and combiner faults while the
# edge is under load. The key is split 2-of-3 (the combiner's share + h1 +
# h2), so one holder is enough. 20 clients make full TLS 1.3 handshakes
# (tests/bench/bench_tls_client: one epoll loop, a new connection each) for
# FAULT_SECONDS per phase (default 10 s rather than the 30 s of issue 6, so
# that the whole script stays near two minutes; FAULT_SECONDS=30 for the full
# length). h2 is reached through bench_tls_client's delay-proxy, which holds
# every byte coming back from h2 for 200 ms while it has SIGUSR1 (SIGUSR2
# ends that).
#
#   1. normal load: no failed handshake (p99 taken as "normal")
#   2. h1 killed (SIGKILL) under load: no failed handshake
#   3. h1 and h2 killed: every handshake fails with an alert, within the
#      configured op-timeout-ms (+ slack), and the edge learns why: the
#      combiner's too-few-shares (its metrics and its log say so, no failure
#      counted as a plain error); the edge stays up; h1 back: the first good
#      handshake within a second of h1 listening again
#   4. h2 slow (200 ms): p99 within 2x of normal load (taking turns with
#      it), no failure
#   5. the combiner process SIGKILLed under load: the edge restarts it and
#      sends the operations it had in flight to the new one: not one
#      handshake fails (client side and the edge's metrics), and service is
#      back within a second
# Ends with "N passed, N failed".
set -u

source "$(dirname "$0")/lib_edge.sh"
lib_edge_init edge-faults "${1:-}"
# The promise is "back within a second" (Release); a sanitizer build starts a
# process 2-3x slower, so there the bound is two seconds.
BACK_MS=1000
if lib_edge_sanitized; then
    BACK_MS=2000
fi
CLIENT=$BUILD/tests/bench_tls_client
[ -x "$CLIENT" ] || die "missing $CLIENT"
export SPK_ALLOW_UNLOCKED=1
SECS=${FAULT_SECONDS:-10}
CONC=20
OP_TIMEOUT_MS=2000
P_PROXY=$P_FREE
P_MET=$((P_FREE + 1))

now_ms() { date +%s%3N; }

lib_edge_pki
lib_edge_mkcert faults 2048 || die "certificate"
lib_edge_holder_keys
lib_edge_split faults >/dev/null || die "split"
LIB_EDGE_HOLDER_ARGS="--rate 100000 --burst 100000" lib_edge_holders

# start_holder NAME PORT: (re)start one holder; returns when it serves. Its
# audit log goes where lib_edge_holders put the first one's ($AUDIT, tmpfs
# when there is one): on this disk one fdatasync per answer round takes up
# to 200 ms, and these phases measure the edge's fault handling, not the disk.
start_holder() {
    local log=$1.log.$RANDOM
    "$SH" run --key keys/$1.key --shares $1 --allow allow.txt --bind tcp://127.0.0.1:$2 \
        --allow-unlocked --audit-log "$AUDIT/$1.audit" --rate 100000 --burst 100000 2>"$log" &
    eval "${1^^}_PID=$!"
    PIDS+=($!)
    for _ in $(seq 1 200); do
        grep -q "serving" "$log" 2>/dev/null && return 0
        sleep 0.02
    done
    cat "$log"
    return 1
}

wait_serving() { # LOG
    for _ in $(seq 1 100); do
        grep -q "serving" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
wait_serving h1.log || die "h1 did not start"
wait_serving h2.log || die "h2 did not start"

"$CLIENT" delay-proxy $P_PROXY $P_H2 200 2>proxy.log &
PROXY_PID=$!
PIDS+=("$PROXY_PID")

{
    LIB_EDGE_COMB_EXTRA="share-timeout-ms 500" lib_edge_conf faults
    echo "op-timeout-ms $OP_TIMEOUT_MS"
    echo "handshake-timeout-ms 5000"
    echo "metrics 127.0.0.1:$P_MET"
} >edge.conf
# h2 behind the delay proxy; one share request waits at most 500 ms.
sed -i -e "s|tcp://127.0.0.1:$P_H2|tcp://127.0.0.1:$P_PROXY|" -e '/^share-timeout-ms 1000$/d' \
    -e "s/^timeout-ms 4000$/timeout-ms $OP_TIMEOUT_MS/" comb.conf
lib_edge_start edge.conf

# load SECONDS EVENTS: the load client, in the foreground; its summary line.
load() {
    "$CLIENT" load 127.0.0.1 $P_EDGE faults ca.pem 1.3 "$1" $CONC "$2"
}
field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }
# p99 of the good handshakes in EVENTS (ms)
p99_of() {
    awk '$2 == 1 {print $3}' "$1" | sort -n |
        awk '{v[n++] = $1} END {if (n == 0) print 0; else printf "%.1f\n", v[int(0.99 * (n - 1) + 0.5)] / 1000}'
}
edge_alive() { kill -0 "$EDGE_PID" 2>/dev/null; }
metric() { curl -s "http://127.0.0.1:$P_MET/metrics" | awk -v n="$1" '$1 == n {s += $2} END {print s + 0}'; }
failed_hs() {
    curl -s "http://127.0.0.1:$P_MET/metrics" |
        awk '/^spk_edge_handshakes_total\{result="failed"/ {s += $2} END {print s + 0}'
}

echo "phases of $SECS s, $CONC clients, TLS 1.3, key 2-of-3 (combiner + h1 + h2)"

# 1. normal
out=$(load "$SECS" ev1)
echo "  normal:           $out"
check "normal load: handshakes succeed" [ "$(field "$out" ok)" -gt 0 ]
check "normal load: no failed handshake" [ "$(field "$out" failed)" = 0 ]
P99_NORMAL=$(p99_of ev1)

# 2. h1 killed under load
(sleep 2 && kill -9 "$H1_PID") &
KPID=$!
out=$(load "$SECS" ev2)
wait $KPID
echo "  h1 killed at 2 s: $out"
check "one holder killed under load: handshakes go on" [ "$(field "$out" ok)" -gt 0 ]
check "one holder killed under load: no failed handshake" [ "$(field "$out" failed)" = 0 ]

# 3. h1 and h2 both down, then h1 back
start_holder h1 $P_H1 || die "h1 restart"
sleep 1
kill -9 "$H2_PID"
kill -9 "$H1_PID"
sleep 0.2
sign_result() { metric "spk_edge_key_operations_total{kind=\"sign\",result=\"$1\"}"; }
FEW_BEFORE=$(sign_result too_few_shares)
ERR_BEFORE=$(sign_result error)
load 4 ev3a >/dev/null &
LPID=$!
sleep 3
# Handshakes that ended before h1 was started again were made with both
# holders down; h1 may serve some 20 ms before start_holder sees its log
# line, so T_BACK cannot bound that window.
T_UP=$(now_ms)
start_holder h1 $P_H1 || die "h1 restart"
T_BACK=$(now_ms)
wait $LPID
FEW_AFTER=$(sign_result too_few_shares)
ERR_AFTER=$(sign_result error)
out=$(load 2 ev3b)
echo "  both down 3 s, h1 back: $out"
awk -v t="$T_UP" '$1 < t' ev3a >ev3-down
ndown=$(wc -l <ev3-down)
nok_down=$(awk '$2 == 1' ev3-down | wc -l)
nalert=$(awk '$2 == 0 && $4 ~ /^alert:/' ev3-down | wc -l)
# the slowest failure (ms), and the configured bound with slack for a busy machine
slow_fail=$(awk '$2 == 0 {if ($3 > m) m = $3} END {printf "%d", m / 1000}' ev3-down)
echo "  both down: $ndown handshakes ended, $nok_down ok, $nalert with an alert, slowest" \
    "failure $slow_fail ms (op-timeout-ms $OP_TIMEOUT_MS)"
check "both holders down: handshakes fail" [ "$ndown" -gt 0 -a "$nok_down" = 0 ]
check "both holders down: every failure is an alert from the edge" [ "$nalert" = "$ndown" ]
check "both holders down: failures within op-timeout-ms (+500 ms)" \
    [ "$slow_fail" -le $((OP_TIMEOUT_MS + 500)) ]
check "both holders down: the edge stays up" edge_alive
echo "  edge sign results while down: too_few_shares $FEW_BEFORE -> $FEW_AFTER," \
    "error $ERR_BEFORE -> $ERR_AFTER"
check "both holders down: the edge's metrics count too_few_shares" \
    [ "$FEW_AFTER" -gt "$FEW_BEFORE" ]
check "both holders down: no failure counted as a plain error" [ "$ERR_AFTER" = "$ERR_BEFORE" ]
check "both holders down: the edge logs the combiner's too-few-shares" \
    grep -q "handshake failed: client .*: splitkey: combiner says too-few-shares" edge.log
first_ok=$(cat ev3a ev3b | awk -v t="$T_BACK" '$2 == 1 && $1 >= t {print $1 - t}' | sort -n | head -1)
echo "  first good handshake ${first_ok:-never} ms after h1 served again"
last_fail=$(cat ev3a ev3b | awk -v t="$T_BACK" '$2 == 0 && $1 >= t {print $1 - t}' | sort -n | tail -1)
echo "  last failed handshake ${last_fail:-none} ms after h1 served again"
check "h1 back: serving again within $BACK_MS ms" [ "${first_ok:-9999}" -le $BACK_MS ]
check "h1 back: load without failures" [ "$(field "$out" failed)" = 0 -a "$(field "$out" ok)" -gt 0 ]

# 4. h2 slow (200 ms through the proxy), h1 fine. Normal and slow take turns
# (half a phase each, twice) so that the shared machine's load swings fall on
# both alike.
start_holder h2 $P_H2 || die "h2 restart"
sleep 1.5
HALF=$(awk -v s="$SECS" 'BEGIN { printf "%.1f", s / 2 }')
: >ev4a
: >ev4b
fail4=0
for turn in 1 2; do
    out=$(load "$HALF" ev4.tmp)
    cat ev4.tmp >>ev4a
    echo "  normal ($turn):       $out"
    kill -USR1 $PROXY_PID
    sleep 0.3
    out=$(load "$HALF" ev4.tmp)
    cat ev4.tmp >>ev4b
    kill -USR2 $PROXY_PID
    echo "  h2 slow 200 ms ($turn): $out"
    fail4=$((fail4 + $(field "$out" failed)))
    sleep 0.3
done
P99_BEFORE=$(p99_of ev4a)
P99_SLOW=$(p99_of ev4b)
echo "  p99: normal $P99_BEFORE ms (phase 1: $P99_NORMAL ms), h2 slow $P99_SLOW ms"
check "slow holder: no failed handshake" [ "$fail4" = 0 ]
check "slow holder: p99 within 2x of normal" \
    awk -v s="$P99_SLOW" -v n="$P99_BEFORE" 'BEGIN { exit !(s <= 2 * n) }'

# 5. the combiner SIGKILLed under load
COMB_PID=$(pgrep -P "$EDGE_PID" | head -1)
FAILED_BEFORE=$(failed_hs)
RESTARTS_BEFORE=$(metric spk_edge_combiner_restarts_total)
(sleep 2 && echo "$(now_ms)" >t_kill && kill -9 "$COMB_PID") &
KPID=$!
out=$(load "$SECS" ev5)
wait $KPID
T_KILL=$(cat t_kill)
echo "  combiner killed at 2 s: $out"
NEW_COMB=$(pgrep -P "$EDGE_PID" | head -1)
check "combiner killed: the edge stays up" edge_alive
check "combiner killed: restarted (new pid $NEW_COMB, was $COMB_PID)" \
    [ -n "$NEW_COMB" -a "$NEW_COMB" != "$COMB_PID" ]
check "combiner killed: restart counted in the metrics" \
    [ "$(metric spk_edge_combiner_restarts_total)" -gt "${RESTARTS_BEFORE:-0}" ]
nfail=$(field "$out" failed)
failed_after=$(failed_hs)
echo "  failed handshakes: $nfail seen by the clients; edge metrics failed" \
    "$FAILED_BEFORE -> $failed_after"
# The edge keeps what was in flight and sends it to the restarted combiner
# (signing and decrypting are idempotent): not one handshake fails.
check "combiner killed: no handshake failed at the load client (failed=$nfail)" [ "$nfail" = 0 ]
check "combiner killed: the edge's metrics count no failed handshake" \
    [ "$failed_after" = "$FAILED_BEFORE" ]
# service is back: from the last failure after the kill to the next success
last_fail=$(awk -v t="$T_KILL" '$2 == 0 && $1 >= t {print $1}' ev5 | sort -n | tail -1)
back=$(awk -v t="$T_KILL" '$2 == 1 && $1 >= t {print $1 - t}' ev5 | sort -n | head -1)
gap=$(awk -v t="$T_KILL" '$1 >= t {print $1, $2}' ev5 | sort -n |
    awk 'BEGIN {g = 0} $2 == 0 && !s {s = $1} $2 == 1 && s {if ($1 - s > g) g = $1 - s; s = 0}
         END {print g}')
# the first good handshake that began after the kill (end - latency >= kill)
back_new=$(awk -v t="$T_KILL" '$2 == 1 && $1 - $3 / 1000 >= t {print int($1 - t)}' ev5 | sort -n |
    head -1)
echo "  first good handshake ${back:-never} ms after the kill; first one begun after the kill" \
    "done at +${back_new:-never} ms; longest stretch from a failure to the next success:" \
    "$gap ms; last failure at +$((${last_fail:-$T_KILL} - T_KILL)) ms"
check "combiner killed: service back within $BACK_MS ms" \
    [ -n "$back_new" -a "${back_new:-9999}" -le $BACK_MS -a "$gap" -le $BACK_MS ]
out=$(load 2 ev5b)
check "combiner killed: then load without failures" \
    [ "$(field "$out" failed)" = 0 -a "$(field "$out" ok)" -gt 0 ]

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
