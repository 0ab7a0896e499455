#!/usr/bin/env bash
# Edge operations with real processes on 127.0.0.1: session resumption
# (TLS 1.2 and 1.3 tickets from a shared ticket key file) proven by the
# metrics endpoint to need no private-key operation; the metrics of the edge
# and of its combiner process; one log line per failed handshake; `edge check`
# on a good configuration and on four broken ones; SIGHUP adding a certificate
# while a download runs; SIGTERM draining and exiting 0.
# Usage: test_edge_ops.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init test-edge-ops "${1:-}"
P_MET=$((BASE + 4))
P_CMET=$((BASE + 5))
P_DEAD=$((BASE + 6)) # nothing listens here
P_H3=$((BASE + 7))   # a holder that refuses the combiner's key

# ---- PKI and split keys ------------------------------------------------------
lib_edge_pki
lib_edge_mkcert a.test 2048 || die "a.test certificate"
lib_edge_mkcert b.test 2048 || die "b.test certificate"
lib_edge_holder_keys h3 stranger
mkdir -p h3
KA=$(lib_edge_split a.test) || die "split a.test"
KB=$(lib_edge_split b.test) || die "split b.test"
rm -f a.test.key b.test.key
lib_edge_holders
cp shares/*.h1.share shares/*.record h3/
echo "client stranger $(pubkey keys/stranger.pub) *" >allow-stranger.txt
# h3 holds h1's share under h1's key but admits only "stranger": it refuses us.
"$SH" run --key keys/h1.key --shares h3 --allow allow-stranger.txt \
    --bind tcp://127.0.0.1:$P_H3 --allow-unlocked --audit-log h3.audit 2>h3.log &
PIDS+=($!)

# ---- origin ----------------------------------------------------------------------
lib_edge_origin 48

# Two ticket keys; a second edge process would share this file.
{
    echo "# newest first"
    openssl rand -hex 80
    openssl rand -hex 80
} >tickets.keys
chmod 600 tickets.keys # secret: the edge refuses a ticket key file others may read

# base_conf [NAME...]: the good configuration (certificate a.test only by
# default); the combiner's file comb.conf with its metrics endpoint.
base_conf() {
    LIB_EDGE_COMB_EXTRA="metrics 127.0.0.1:$P_CMET" lib_edge_conf "${@:-a.test}"
    echo "ticket-key-file tickets.keys"
    echo "metrics 127.0.0.1:$P_MET"
}
base_conf >edge.conf
lib_edge_start edge.conf

metrics() { curl -sS --max-time 5 http://127.0.0.1:$P_MET/metrics; }
cmetrics() { curl -sS --max-time 5 http://127.0.0.1:$P_CMET/metrics; }
# metric NAME{LABELS}: its value from the edge's endpoint (0 if absent)
metric() { metrics | awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'; }
keyops() { # every private-key operation the edge asked for, whatever the result
    metrics | awk '/^spk_edge_key_operations_total\{/ { s += $2 } END { print s + 0 }'
}

HELLO="hello from the origin"
sclient() { # ARGS...: GET / through s_client, print everything
    printf 'GET /index.html HTTP/1.0\r\n\r\n' |
        timeout 20 openssl s_client -connect 127.0.0.1:$P_EDGE -servername a.test -CAfile ca.pem \
            -verify_return_error -ign_eof "$@" 2>&1
}

# ---- metrics endpoint --------------------------------------------------------------
check "metrics endpoint answers in Prometheus text format" \
    bash -c "curl -sS -D - http://127.0.0.1:$P_MET/metrics | grep -qi '^content-type: text/plain; version=0.0.4'"
check "metrics: unknown path is 404" \
    bash -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$P_MET/nope | grep -qx 404"
check "metrics: ticket keys loaded from the file (2)" [ "$(metric spk_edge_ticket_keys)" = 2 ]

# ---- session resumption: no private-key operation ----------------------------------
resume_test() { # VERSION-FLAG LABEL
    local flag=$1 ver=$2 before after hs_before hs_after out
    sclient "$flag" -sess_out "sess$flag.pem" >full$flag.out
    grep -qx "$HELLO" full$flag.out || {
        fail "$ver: first (full) handshake"
        return
    }
    grep -q "^Reused, " full$flag.out && {
        fail "$ver: first handshake is not resumed"
        return
    }
    before=$(keyops)
    hs_before=$(metric "spk_edge_handshakes_total{result=\"ok\",version=\"$ver\",resumed=\"yes\"}")
    out=$(sclient "$flag" -sess_in "sess$flag.pem")
    after=$(keyops)
    hs_after=$(metric "spk_edge_handshakes_total{result=\"ok\",version=\"$ver\",resumed=\"yes\"}")
    check "$ver: resumed session is served" bash -c "grep -qx '$HELLO' <<<\"\$1\"" _ "$out"
    check "$ver: s_client reports the session reused" bash -c "grep -q '^Reused, ' <<<\"\$1\"" _ "$out"
    check "$ver: metrics count one more resumed handshake ($hs_before -> $hs_after)" \
        [ "$hs_after" -eq $((hs_before + 1)) ]
    check "$ver: resumption made no private-key operation ($before -> $after)" \
        [ "$before" -eq "$after" -a "$before" -gt 0 ]
}
resume_test -tls1_3 TLSv1.3
resume_test -tls1_2 TLSv1.2
# A second edge sharing the ticket key file resumes the first one's sessions.
P_EDGE2=$((BASE + 8))
P_MET2=$((BASE + 9))
# Its own combiner, without the first one's metrics port.
grep -v '^metrics ' comb.conf >comb2.conf
base_conf | sed -e "s#^listen .*#listen 127.0.0.1:$P_EDGE2#" -e "s#^metrics .*#metrics 127.0.0.1:$P_MET2#" \
    -e "s#combiner.sock#combiner2.sock#" -e "s#^combiner-config .*#combiner-config comb2.conf#" >edge2.conf
"$EDGE" run edge2.conf 2>edge2.log &
EDGE2_PID=$!
PIDS+=($EDGE2_PID)
lib_edge_wait_log edge2.log "edge: serving" 150
keyops2() {
    curl -s --max-time 5 http://127.0.0.1:$P_MET2/metrics |
        awk '/^spk_edge_key_operations_total\{/ { s += $2 } END { print s + 0 }'
}
for v in -tls1_3 -tls1_2; do
    b2=$(keyops2)
    out=$(printf 'GET /index.html HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client \
        -connect 127.0.0.1:$P_EDGE2 -servername a.test -CAfile ca.pem -verify_return_error \
        -ign_eof $v -sess_in "sess$v.pem" 2>&1)
    check "second edge, same ticket keys ($v): the first edge's session resumes" \
        bash -c "grep -q '^Reused, ' <<<\"\$1\" && grep -qx '$HELLO' <<<\"\$1\"" _ "$out"
    check "second edge ($v): no private-key operation ($b2 -> $(keyops2))" [ "$(keyops2)" = "$b2" ]
done
resumed2=$(curl -s --max-time 5 http://127.0.0.1:$P_MET2/metrics |
    awk '/^spk_edge_handshakes_total\{result="ok".*resumed="yes"/ { s += $2 } END { print s + 0 }')
check "second edge: its metrics count the 2 resumed handshakes ($resumed2)" [ "$resumed2" = 2 ]
kill $EDGE2_PID
wait $EDGE2_PID 2>/dev/null

before=$(keyops)
sclient -tls1_2 >/dev/null
after=$(keyops)
check "a full handshake does move the key operation counter ($before -> $after)" \
    [ "$after" -gt "$before" ]


# ---- one log line per failed handshake ---------------------------------------------
fails_before=$(metrics | awk '/^spk_edge_handshakes_total\{result="failed"/ { s += $2 } END { print s + 0 }')
sclient -tls1_2 -cipher CAMELLIA128-SHA >/dev/null
sleep 0.2
check "failed handshake: one log line with the client address and reason" \
    grep -Eq "^edge: handshake failed: client 127\.0\.0\.1:[0-9]+: .*no shared cipher" edge.log
fails_after=$(metrics | awk '/^spk_edge_handshakes_total\{result="failed"/ { s += $2 } END { print s + 0 }')
check "failed handshake counted ($fails_before -> $fails_after)" [ "$fails_after" -gt "$fails_before" ]

# ---- the combiner's own metrics ------------------------------------------------------
cmetric() { cmetrics | awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'; }
check "combiner metrics: operations answered" [ "$(cmetric 'spk_combiner_operations_total{result="ok"}')" -gt 0 ]
check "combiner metrics: key lifetime histogram has samples" \
    [ "$(cmetric spk_combiner_key_lifetime_seconds_count)" -gt 0 ]
check "combiner metrics: key lifetime histogram's +Inf bucket equals its count" \
    [ "$(cmetric 'spk_combiner_key_lifetime_seconds_bucket{le="+Inf"}')" = \
        "$(cmetric spk_combiner_key_lifetime_seconds_count)" ]
check "combiner metrics: key lifetime window summary has samples" \
    [ "$(cmetric spk_combiner_key_lifetime_window_seconds_count)" -gt 0 ]
# With crt-threads 2 (the default with more than one CPU) an operation that
# finds the combiner idle, as these one-at-a-time ones do, runs its two CRT
# halves on two threads, where the combiner measured that to be faster for
# the key's size (not on a CPU whose x2 call does both halves in one pass).
check "the combiner says how it runs the CRT halves" \
    grep -q "^combiner: RSA private-key operations: CRT halves on" edge.log
if grep -q "CRT halves on two threads when idle for RSA-2048" edge.log; then
    check "combiner metrics: idle operations ran their CRT halves on two threads ($(cmetric spk_combiner_crt_two_threads_total))" \
        [ "$(cmetric spk_combiner_crt_two_threads_total)" -gt 0 ]
else
    check "combiner metrics: no CRT halves on two threads where that is not faster" \
        [ "$(cmetric spk_combiner_crt_two_threads_total)" = 0 ]
fi
check "combiner metrics: per-holder latency histogram for h1 and h2" \
    bash -c "curl -s http://127.0.0.1:$P_CMET/metrics | grep -c '^spk_combiner_holder_share_seconds_count{holder=\"h[12]\"}' | grep -qx 2"
check "combiner metrics: shares rejected by the commitment check, per source" \
    bash -c "curl -s http://127.0.0.1:$P_CMET/metrics | grep -q '^spk_combiner_source_shares_rejected_total{source=\"h1\"} 0'"

# ---- edge check --------------------------------------------------------------------
# run_check CONF: exit status into $rc, everything it said into check-CONF.out
run_check() {
    timeout 60 "$EDGE" check "$1" >"check-$1.out" 2>&1
    rc=$?
}
run_check edge.conf
check "edge check: the good configuration passes (exit 0)" [ $rc -eq 0 ]
check "edge check: it made and verified a test signature" \
    grep -q "test signature verified" check-edge.conf.out
check "edge check: it ran combiner check on the combiner's file (holders, a test operation)" \
    bash -c "grep -q 'combiner check: holder h1 at .*: accepts the combiner' check-edge.conf.out &&
        grep -q 'combiner check: key .*test signature made and checked' check-edge.conf.out"
check "edge check: the running edge was not disturbed" \
    bash -c "[ \"\$(curl -sS --max-time 10 --cacert ca.pem --resolve a.test:$P_EDGE:127.0.0.1 https://a.test:$P_EDGE/index.html)\" = '$HELLO' ]"

# bad_check NAME EXPECTED-TEXT SED-SCRIPT [comb]: the sed script spoils the
# edge's file, or with "comb" the combiner's (that edge file names the copy).
bad_check() {
    base_conf >"bad-$1.conf"
    if [ "${4:-}" = comb ]; then
        sed "$3" comb.conf >"bad-$1.comb.conf"
        sed -i "s#^combiner-config .*#combiner-config bad-$1.comb.conf#" "bad-$1.conf"
    else
        sed -i "$3" "bad-$1.conf"
    fi
    run_check "bad-$1.conf"
    check "edge check: $1: fails (exit $rc)" [ $rc -ne 0 ]
    check "edge check: $1: names the fault" grep -q -- "$2" "check-bad-$1.conf.out"
}
bad_check missing-certificate "certificate missing.pem: cannot read it" \
    "s#^certificate a.test.pem#certificate missing.pem#"
bad_check wrong-key-share "share '.*$KB.comb.share' has no key record among the 'record' paths" \
    "s#^share shares/$KA.comb.share#share shares/$KB.comb.share#" comb
bad_check unreachable-holder "holder h2 at tcp://127.0.0.1:$P_DEAD: unreachable" \
    "s#tcp://127.0.0.1:$P_H2#tcp://127.0.0.1:$P_DEAD#" comb
bad_check refusing-holder "holder h1 at tcp://127.0.0.1:$P_H3: reachable, but does not accept the combiner: it refuses the combiner's key" \
    "s#tcp://127.0.0.1:$P_H1#tcp://127.0.0.1:$P_H3#" comb
check "edge check: the refusing holder did refuse (its log)" grep -qi "not allowed\|refus\|denied" h3.log

# ---- SIGHUP: a new certificate and rotated ticket keys while a download runs -------------
want=$(sha256sum www/big.bin | cut -d' ' -f1)
CURL=(curl -sS --cacert ca.pem --resolve a.test:$P_EDGE:127.0.0.1 --resolve b.test:$P_EDGE:127.0.0.1)
"${CURL[@]}" --max-time 60 --limit-rate 10M -o dl-reload.bin https://a.test:$P_EDGE/big.bin 2>dl-reload.err &
DL=$!
sclient -tls1_3 -sess_out sess-k1.pem >/dev/null # sealed with the first ticket key
sleep 1
check "before the reload, b.test gets the default certificate" \
    bash -c "openssl s_client -connect 127.0.0.1:$P_EDGE -servername b.test -tls1_3 </dev/null 2>/dev/null | grep -q '^subject=CN *= *a.test'"
k1=$(grep -v '^#' tickets.keys | head -1)
{
    openssl rand -hex 80 # the new first key
    echo "$k1"           # the old first key: its tickets still resume
} >tickets.keys
base_conf a.test b.test >edge.conf
kill -HUP $EDGE_PID
for _ in $(seq 1 50); do
    grep -q "combiner: reloaded" edge.log && break
    sleep 0.1
done
check "SIGHUP: the edge reloaded (2 certificates, 2 ticket keys)" \
    grep -q "^edge: reloaded: 2 certificate(s), 2 ticket key(s)" edge.log
check "SIGHUP: the combiner reloaded its keys and holders" \
    grep -q "^combiner: reloaded: 2 key(s), 2 holder(s)" edge.log
check "SIGHUP: new handshakes for b.test see the new certificate" \
    bash -c "openssl s_client -connect 127.0.0.1:$P_EDGE -servername b.test -tls1_3 </dev/null 2>/dev/null | grep -q '^subject=CN *= *b.test'"
check "SIGHUP: b.test is served (its key signs through the reloaded combiner)" \
    bash -c "[ \"\$(\"\${@}\" https://b.test:$P_EDGE/index.html)\" = '$HELLO' ]" _ "${CURL[@]}"
check "SIGHUP: a session sealed with the old first key still resumes" \
    bash -c "printf 'GET /index.html HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:$P_EDGE -servername a.test -tls1_3 -ign_eof -sess_in sess-k1.pem 2>&1 | grep -q '^Reused, '"
check "SIGHUP: metrics count the reload" [ "$(metric 'spk_edge_reloads_total{result="ok"}')" = 1 ]
wait $DL
dl_rc=$?
check "the download in progress during the reload completed (curl $dl_rc)" [ $dl_rc -eq 0 ]
check "the download in progress during the reload is intact" \
    [ "$(sha256sum dl-reload.bin | cut -d' ' -f1)" = "$want" ]

# A key dropped from the file: its tickets no longer resume (full handshake).
openssl rand -hex 80 >tickets.keys
kill -HUP $EDGE_PID
for _ in $(seq 1 30); do
    grep -q "^edge: reloaded: 2 certificate(s), 1 ticket key(s)" edge.log && break
    sleep 0.1
done
before=$(keyops)
check "ticket key removed: the old session is not resumed" \
    bash -c "! (printf 'GET /index.html HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:$P_EDGE -servername a.test -tls1_3 -ign_eof -sess_in sess-k1.pem 2>&1 | grep -q '^Reused, ')"
check "ticket key removed: a full handshake with a key operation instead" [ "$(keyops)" -gt "$before" ]

# Holders are reloaded too: without the h2 line the combiner no longer asks h2.
base_conf a.test b.test >edge.conf
sed -i '/^holder h2 /d' comb.conf
n_rel=$(grep -c '^combiner: reloaded' edge.log)
kill -HUP $EDGE_PID
for _ in $(seq 1 50); do
    [ "$(grep -c '^combiner: reloaded' edge.log)" -gt "$n_rel" ] && break
    sleep 0.1
done
check "SIGHUP: the combiner reloaded with one holder" \
    grep -q "^combiner: reloaded: 2 key(s), 1 holder(s)" edge.log
h2_before=$(grep -c 'outcome=released' "$AUDIT/h2.audit")
check "SIGHUP without h2: still served (own share + h1)" \
    bash -c "[ \"\$(\"\${@}\" https://b.test:$P_EDGE/index.html)\" = '$HELLO' ]" _ "${CURL[@]}"
check "SIGHUP without h2: the combiner's metrics list no h2" \
    bash -c "curl -s http://127.0.0.1:$P_CMET/metrics | grep -q 'source=\"h1\"' &&
        ! curl -s http://127.0.0.1:$P_CMET/metrics | grep -q 'source=\"h2\"'"
check "SIGHUP without h2: h2 released no share since" [ "$(grep -c 'outcome=released' "$AUDIT/h2.audit")" = "$h2_before" ]

# A broken configuration: the edge keeps what it has.
{
    base_conf a.test b.test
    echo "certificate missing.pem shares/$KB.record"
} >edge.conf
kill -HUP $EDGE_PID
for _ in $(seq 1 30); do
    grep -q "^edge: reload failed" edge.log && break
    sleep 0.1
done
check "SIGHUP with a broken config: refused, with the reason" \
    grep -q "^edge: reload failed: .*missing.pem.*serving the previous configuration" edge.log
check "SIGHUP with a broken config: still serves b.test" \
    bash -c "[ \"\$(\"\${@}\" https://b.test:$P_EDGE/index.html)\" = '$HELLO' ]" _ "${CURL[@]}"

# ---- the combiner alone on SIGTERM: answers what it has in flight, exits 0 ----------------
# Both holders behind a proxy that holds their answers 400 ms: an operation is
# in flight long enough to SIGTERM the combiner in the middle of it.
cat >slowproxy.py <<'EOF2'
import asyncio, sys
listen, target, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
async def pump(r, w, d):
    try:
        while True:
            b = await r.read(65536)
            if not b:
                break
            if d:
                await asyncio.sleep(d)
            w.write(b)
            await w.drain()
    except Exception:
        pass
    w.close()
async def conn(cr, cw):
    ur, uw = await asyncio.open_connection("127.0.0.1", target)
    await asyncio.gather(pump(cr, uw, 0), pump(ur, cw, delay))
async def main():
    s = await asyncio.start_server(conn, "127.0.0.1", listen)
    async with s:
        await s.serve_forever()
asyncio.run(main())
EOF2
P_S1=$((BASE + 10))
P_S2=$((BASE + 11))
python3 slowproxy.py $P_S1 $P_H1 0.4 >/dev/null 2>&1 &
PIDS+=($!)
python3 slowproxy.py $P_S2 $P_H2 0.4 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.3
base_conf >edge.conf
sed -i -e "s#tcp://127.0.0.1:$P_H1 #tcp://127.0.0.1:$P_S1 #" \
    -e "s#tcp://127.0.0.1:$P_H2 #tcp://127.0.0.1:$P_S2 #" comb.conf
n_rel=$(grep -c '^combiner: reloaded' edge.log)
kill -HUP $EDGE_PID
for _ in $(seq 1 100); do
    [ "$(grep -c '^combiner: reloaded' edge.log)" -gt "$n_rel" ] && break
    sleep 0.1
done
comb_pid=$(pgrep -P $EDGE_PID | head -1)
"${CURL[@]}" --max-time 20 -o slow.out https://a.test:$P_EDGE/index.html 2>slow.err &
C=$!
for _ in $(seq 1 150); do # until the combiner has the operation
    [ "$(cmetric spk_combiner_operations_in_flight)" -ge 1 ] 2>/dev/null && break
    sleep 0.02
done
kill -TERM "$comb_pid"
wait $C
c_rc=$?
check "combiner SIGTERM mid-operation: that handshake still completes (curl $c_rc)" \
    [ $c_rc -eq 0 -a "$(cat slow.out 2>/dev/null)" = "$HELLO" ]
for _ in $(seq 1 100); do # the answer comes before the exit
    grep -q 'combiner exited' edge.log && break
    sleep 0.05
done
check "combiner SIGTERM: it drained one operation and exited 0" \
    bash -c "grep -q '^combiner: draining 1 operation' edge.log && grep -q 'combiner exited (status 0)' edge.log"
# The edge restarts it (with the slow holders: its warm-up waits for them).
n_serv=$(grep -c '^combiner: serving' edge.log)
for _ in $(seq 1 100); do
    [ "$(grep -c '^combiner: serving' edge.log)" -gt "$n_serv" ] && break
    sleep 0.1
done
base_conf >edge.conf
n_rel=$(grep -c '^combiner: reloaded' edge.log)
kill -HUP $EDGE_PID
for _ in $(seq 1 100); do
    [ "$(grep -c '^combiner: reloaded' edge.log)" -gt "$n_rel" ] && break
    sleep 0.1
done
check "the edge restarted its combiner and serves" \
    bash -c "[ \"\$(\"\${@}\" --max-time 20 https://a.test:$P_EDGE/index.html)\" = '$HELLO' ]" _ "${CURL[@]}"

# ---- SIGTERM: stop accepting, drain, exit 0 --------------------------------------------
"${CURL[@]}" --max-time 60 --limit-rate 12M -o dl-term.bin https://a.test:$P_EDGE/big.bin 2>dl-term.err &
DL=$!
sleep 1
kill -TERM $EDGE_PID
sleep 0.3
curl -s -o /dev/null --max-time 5 --cacert ca.pem --resolve a.test:$P_EDGE:127.0.0.1 \
    https://a.test:$P_EDGE/index.html
rc=$?
check "SIGTERM: new connections are refused (curl $rc)" [ $rc -eq 7 ]
check "SIGTERM: the edge is still running while a download drains" kill -0 $EDGE_PID
wait $DL
dl_rc=$?
check "SIGTERM: the download in progress completed intact (curl $dl_rc)" \
    [ $dl_rc -eq 0 -a "$(sha256sum dl-term.bin | cut -d' ' -f1)" = "$want" ]
wait $EDGE_PID
rc=$?
check "SIGTERM: the edge exits 0 after draining (exit $rc)" [ $rc -eq 0 ]
check "SIGTERM: the edge logged draining and stopping" \
    bash -c "grep -q '^edge: draining: 1 connection' edge.log && grep -q '^edge: stopping' edge.log"
check "SIGTERM: the combiner drained and stopped" \
    bash -c "grep -q '^combiner: draining' edge.log && grep -q '^combiner: stopping' edge.log"

# ---- deployment: cmake --install puts hardened systemd units --------------------------
if cmake --install "$BUILD" --prefix "$T/inst" >install.log 2>&1; then
    U=$T/inst/lib/systemd/system
    for unit in spk-edge.service spk-combiner.service spk-share-holder@.service; do
        check "install: $unit runs the installed binary" \
            grep -q "^ExecStart=$T/inst/bin/" "$U/$unit"
        check "install: $unit is hardened (dedicated user, LimitMEMLOCK, NoNewPrivileges, ProtectSystem)" \
            bash -c "grep -q '^User=spk-' '$U/$unit' && grep -q '^LimitMEMLOCK=infinity' '$U/$unit' &&
                grep -q '^NoNewPrivileges=yes' '$U/$unit' && grep -q '^ProtectSystem=strict' '$U/$unit'"
    done
    check "install: sysusers.d makes the dedicated users" \
        bash -c "grep -q '^u spk-edge ' '$T/inst/lib/sysusers.d/splitkey.conf' && grep -q '^u spk-holder ' '$T/inst/lib/sysusers.d/splitkey.conf'"
    if command -v systemd-analyze >/dev/null; then
        cp "$U/spk-share-holder@.service" "$T/spk-share-holder@h1.service"
        check "install: systemd-analyze verify accepts the units" \
            systemd-analyze verify "$U/spk-edge.service" "$U/spk-combiner.service" \
            "$T/spk-share-holder@h1.service"
    fi
else
    fail "cmake --install $BUILD: $(tail -3 install.log)"
fi

# ---- end ---------------------------------------------------------------------------------
if [ $failed -ne 0 ]; then
    echo "--- edge.log"
    tail -30 edge.log
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
