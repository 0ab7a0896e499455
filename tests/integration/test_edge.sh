#!/usr/bin/env bash
# The edge end to end, with real processes on 127.0.0.1: a test CA, two
# certificates (a.test: RSA-2048, b.test: RSA-4096) whose keys are split
# 2-of-3 between the edge's combiner and two share-holders, the edge, and a
# small origin. curl and openssl s_client fetch through the edge for every
# key exchange and version, large transfers are checksummed (also to a client
# that half-closes at once and reads slowly), 32 handshakes run at once, bad
# clients must not stop the edge, and all of it holds again when a third of
# the edge's TCP writes fail with EAGAIN and a third go through in part, and
# again when its reads do the same (libspk_shortio.so); and a close_notify
# that finds the client's output buffer full to the last byte still comes,
# after all of it.
# Usage: test_edge.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init test-edge "${1:-}"

# ---- PKI and split keys ------------------------------------------------------
lib_edge_pki
lib_edge_mkcert a.test 2048 || die "a.test certificate"
lib_edge_mkcert b.test 4096 || die "b.test certificate"
lib_edge_holder_keys
lib_edge_split a.test >/dev/null || die "split a.test"
lib_edge_split b.test >/dev/null || die "split b.test"
# The private keys are not needed any more: the edge must never see them.
rm -f a.test.key b.test.key
lib_edge_holders

# ---- origin: GET files, POST answers the body's SHA-256 -----------------------
lib_edge_origin 64

lib_edge_conf a.test b.test >edge.conf
# TLS 1.2 RSA key exchange is off by default (no forward secrecy); the checks
# below use it, so this configuration turns it on (after the ECDHE suites).
echo "tls12-rsa-key-exchange yes" >>edge.conf
lib_edge_start edge.conf

# ---- fetches -----------------------------------------------------------------------
CURL=(curl -sS --max-time 20 --cacert ca.pem --resolve a.test:$P_EDGE:127.0.0.1
    --resolve b.test:$P_EDGE:127.0.0.1)
fetch_is() { # EXPECTED CURL-ARGS...
    local want=$1
    shift
    [ "$("${CURL[@]}" "$@" 2>>curl.err)" = "$want" ]
}
HELLO="hello from the origin"
check "curl TLS 1.3, a.test (RSA-2048)" fetch_is "$HELLO" --tlsv1.3 https://a.test:$P_EDGE/index.html
check "curl TLS 1.3, b.test (RSA-4096)" fetch_is "$HELLO" --tlsv1.3 https://b.test:$P_EDGE/index.html
check "curl TLS 1.2 ECDHE-RSA, a.test" fetch_is "$HELLO" --tlsv1.2 --tls-max 1.2 \
    --ciphers ECDHE-RSA-AES128-GCM-SHA256 https://a.test:$P_EDGE/index.html
check "curl TLS 1.2 RSA key exchange, b.test" fetch_is "$HELLO" --tlsv1.2 --tls-max 1.2 \
    --ciphers AES128-GCM-SHA256 https://b.test:$P_EDGE/index.html

sclient() { # SERVERNAME|- ARGS...: print the response body's last line
    local sn=$1
    shift
    local snarg=(-servername "$sn")
    [ "$sn" = - ] && snarg=(-noservername)
    printf 'GET /index.html HTTP/1.0\r\n\r\n' |
        timeout 20 openssl s_client -connect 127.0.0.1:$P_EDGE "${snarg[@]}" -CAfile ca.pem \
            -verify_return_error -ign_eof "$@" 2>/dev/null
}
s_ok() { sclient "$@" | grep -qx "$HELLO"; }
check "s_client TLS 1.3" s_ok a.test -tls1_3
check "s_client TLS 1.2 ECDHE-RSA PKCS#1 v1.5 signature" s_ok a.test -tls1_2 \
    -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs RSA+SHA256
check "s_client TLS 1.2 ECDHE-RSA PSS signature" s_ok b.test -tls1_2 \
    -cipher ECDHE-RSA-AES256-GCM-SHA384 -sigalgs rsa_pss_rsae_sha256
check "s_client TLS 1.2 RSA key exchange (AES128-GCM-SHA256)" s_ok a.test -tls1_2 \
    -cipher AES128-GCM-SHA256
check "s_client TLS 1.2 RSA key exchange, RSA-4096" s_ok b.test -tls1_2 -cipher AES128-GCM-SHA256
subject_is() { # SERVERNAME CN
    sclient "$1" -tls1_3 -showcerts </dev/null | grep -q "^subject=CN *= *$2\$"
}
check "SNI a.test gets the a.test certificate" subject_is a.test a.test
check "SNI b.test gets the b.test certificate" subject_is b.test b.test
check "no SNI gets the default (first) certificate" subject_is - a.test
check "unknown SNI gets the default certificate" subject_is c.test a.test
check "no SNI still serves the origin" s_ok - -tls1_2

# ---- 64 MiB both ways --------------------------------------------------------------
want=$(sha256sum www/big.bin | cut -d' ' -f1)
got=$("${CURL[@]}" --max-time 120 https://a.test:$P_EDGE/big.bin | sha256sum | cut -d' ' -f1)
check "64 MiB download intact" [ "$got" = "$want" ]
got=$("${CURL[@]}" --max-time 120 --data-binary @www/big.bin -H 'Content-Type: application/octet-stream' \
    https://b.test:$P_EDGE/upload)
check "64 MiB upload intact" [ "$got" = "$want" ]

# A client that sends close_notify right after its request and reads slowly
# through a small window: the edge holds what the socket does not take yet,
# and must still send all of it, then its own close_notify, before closing.
halfclose_ok() { # SECONDS PATH SHA256 [PAUSE_SECONDS]: the whole body, then the edge's close_notify
    local got
    got=$(timeout "$1" python3 "$SRC/tests/integration/tls_halfclose.py" 127.0.0.1 $P_EDGE a.test \
        ca.pem "$2" ${4:+"$4"} 2>>halfclose.err)
    [ "$got" = "$(printf '%s\nclose_notify' "$3")" ]
}
check "64 MiB to a client that half-closed at once and reads slowly, then close_notify" \
    halfclose_ok 120 /big.bin "$want"

# ---- 32 handshakes at once -------------------------------------------------------------
wait_children() {
    local j
    for j in $(jobs -p); do
        case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j" 2>/dev/null ;; esac
    done
}
concurrent_ok() { # N TAG NAME...: N curls at once, the names in turn; prints how many got the page
    local n=$1 tag=$2 i ok=0
    shift 2
    local names=("$@")
    for i in $(seq 1 "$n"); do
        ("${CURL[@]}" "https://${names[$((i % ${#names[@]}))]}:$P_EDGE/index.html" \
            >"$tag.$i.out" 2>"$tag.$i.err") &
    done
    wait_children
    for i in $(seq 1 "$n"); do
        [ "$(cat "$tag.$i.out" 2>/dev/null)" = "$HELLO" ] && ok=$((ok + 1))
    done
    echo "$ok"
}
ok=$(concurrent_ok 32 par b.test a.test)
check "32 concurrent handshakes all succeed ($ok/32)" [ "$ok" -eq 32 ]

# ---- bad clients -------------------------------------------------------------------------
cat >bad.py <<'EOF'
import os, socket, sys, time
port = int(sys.argv[2])
mode = sys.argv[1]
if mode == "garbage":
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(os.urandom(4096))
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
elif mode == "half":
    # A ClientHello record header promising more than is sent; keep it open.
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
    print("open", flush=True)
    time.sleep(float(sys.argv[3]))
    s.close()
elif mode == "churn":
    n = 0
    for _ in range(int(sys.argv[3])):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        n += 1
    print(n)
EOF
python3 bad.py garbage $P_EDGE
check "garbage instead of a ClientHello: edge keeps serving" fetch_is "$HELLO" \
    https://a.test:$P_EDGE/index.html
python3 bad.py half $P_EDGE 8 >half.out &
HALF=$!
sleep 0.5
check "a half-finished handshake left open: others are served" fetch_is "$HELLO" \
    https://b.test:$P_EDGE/index.html
kill $HALF 2>/dev/null
wait $HALF 2>/dev/null
n=$(python3 bad.py churn $P_EDGE 1000)
check "1000 connections opened and dropped ($n)" [ "$n" = 1000 ]
check "edge still serves after the churn" fetch_is "$HELLO" https://a.test:$P_EDGE/index.html
check "edge process is alive" kill -0 $EDGE_PID

# ---- the TLS process holds no share --------------------------------------------------------
comb_pid=$(pgrep -P $EDGE_PID | head -1)
check "the combiner runs as a child process" [ -n "$comb_pid" ]
no_share_files() {
    ! ls -l /proc/$EDGE_PID/fd 2>/dev/null | grep -q '\.share$\|\.key$'
}
check "the TLS process has no share or key file open" no_share_files
check "holders released shares (audit log)" grep -q "outcome=released" "$AUDIT/h1.audit" "$AUDIT/h2.audit"

# ---- the combiner dies: handshakes fail cleanly, then it is back ----------------------------------
if [ -n "$comb_pid" ]; then
    kill -9 "$comb_pid"
    sleep 0.1
    out=$("${CURL[@]}" https://a.test:$P_EDGE/index.html 2>&1)
    case "$out" in
    "$HELLO" | *alert* | *SSL*) pass "combiner killed: a handshake succeeds or fails with an alert" ;;
    *) fail "combiner killed: unexpected result: $out" ;;
    esac
    back=0
    for _ in $(seq 1 50); do
        if fetch_is "$HELLO" https://a.test:$P_EDGE/index.html; then
            back=1
            break
        fi
        sleep 0.2
    done
    check "the combiner is restarted and serves again" [ $back -eq 1 ]
fi

kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null
check "edge stops on SIGTERM and reports" grep -q "edge: stopping" edge.log

# ---- the edge dies (SIGKILL): its combiner leaves at once ---------------------------------
LEAVE_MS=1000
if lib_edge_sanitized; then
    LEAVE_MS=2000 # a sanitizer build's exit (leak check) is slower; the bound is not the point
fi
lib_edge_start edge.conf
comb_pid=$(pgrep -P $EDGE_PID | head -1)
check "edge started again, with its combiner" [ -n "$comb_pid" ]
if [ -n "$comb_pid" ]; then
    kill -9 $EDGE_PID
    wait $EDGE_PID 2>/dev/null
    check "edge killed (SIGKILL): its combiner leaves within $LEAVE_MS ms" \
        lib_edge_exits_within "$comb_pid" $LEAVE_MS
fi

# ---- a slow network: TCP writes, then reads, that fail with EAGAIN or move a part ----------
# libspk_shortio.so makes a third of the edge's TCP writes fail with EAGAIN
# and a third send 1 to 512 bytes: what the SSL wrote and the socket did not
# take waits in the connection's output buffer, and must all arrive, in order.
# With SPK_SHORTIO_READS=1 its reads do the same: a third find nothing
# although bytes wait (a spurious readiness), a third take 1 to 512 of them,
# so records, the ClientHello and relayed bytes arrive in pieces.
SHORTIO=$BUILD/tests/libspk_shortio.so
# slow_network LABEL READS: the checks, with the edge's reads cut too when
# READS is 1.
slow_network() {
    local how=$1 ok i got
    SPK_SHORTIO_READS=$2 LD_PRELOAD=$SHORTIO lib_edge_start edge.conf
    check "the edge runs with $how (libspk_shortio.so loaded)" \
        grep -q libspk_shortio "/proc/$EDGE_PID/maps"
    check "$how: curl TLS 1.3, a.test" fetch_is "$HELLO" --tlsv1.3 https://a.test:$P_EDGE/index.html
    check "$how: curl TLS 1.2 ECDHE-RSA, b.test" fetch_is "$HELLO" --tlsv1.2 --tls-max 1.2 \
        --ciphers ECDHE-RSA-AES128-GCM-SHA256 https://b.test:$P_EDGE/index.html
    check "$how: s_client TLS 1.3" s_ok a.test -tls1_3
    got=$("${CURL[@]}" --max-time 120 https://a.test:$P_EDGE/big.bin | sha256sum | cut -d' ' -f1)
    check "$how: 64 MiB download intact" [ "$got" = "$want" ]
    got=$("${CURL[@]}" --max-time 120 --data-binary @www/big.bin \
        -H 'Content-Type: application/octet-stream' https://b.test:$P_EDGE/upload)
    check "$how: 64 MiB upload intact" [ "$got" = "$want" ]
    check "$how: 64 MiB to a client that half-closed at once, then close_notify" \
        halfclose_ok 120 /big.bin "$want"
    # The origin's end often comes while the last bytes wait for the socket:
    # the connection must stay until they are sent. Ten short answers make
    # that happen here (most of them do).
    ok=0
    for i in $(seq 1 10); do
        halfclose_ok 30 /quarter.bin "$want_quarter" 0 && ok=$((ok + 1))
    done
    check "$how: 10 half-closing clients get all 256 KiB and close_notify ($ok/10)" [ $ok -eq 10 ]
    ok=$(concurrent_ok 16 "sw$2" b.test a.test)
    check "$how: 16 concurrent handshakes all succeed ($ok/16)" [ "$ok" -eq 16 ]
    kill $EDGE_PID 2>/dev/null
    wait $EDGE_PID 2>/dev/null
}
head -c $((256 * 1024)) /dev/urandom >www/quarter.bin
want_quarter=$(sha256sum www/quarter.bin | cut -d' ' -f1)
slow_network "short writes" 0
slow_network "short reads and writes" 1

# ---- close_notify waits for room in the output buffer ------------------------------------
# The origin answers in 16 pieces of 4074 bytes, 40 ms apart, then closes:
# 16 TLS 1.3 records of exactly 4096 bytes (4074 + content type + tag +
# header), which fill the connection's 64 KiB client output buffer to the
# last byte while libspk_shortio.so holds back the edge's writes of
# application data (SPK_SHORTIO_HOLD, the client not reading). The origin's
# close then finds no room for the close_notify: SSL_shutdown wants to write,
# and the connection must wait, then send all 16 records and the close_notify.
# (The socket itself stays writable, so the edge retries at once until the
# hold ends: a busy second, which a really full socket would not cause.)
cat >paced.py <<'EOF'
import hashlib, socket, sys, time
port, pieces, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
data = bytes((i * 7 + 3) % 251 for i in range(pieces * size))
srv = socket.create_server(("127.0.0.1", port))
with open(sys.argv[4], "w") as f:
    f.write("%d %s\n" % (len(data), hashlib.sha256(data).hexdigest()))
while True:
    c, _ = srv.accept()
    c.recv(64)
    for i in range(pieces):
        c.sendall(data[i * size:(i + 1) * size])
        time.sleep(0.04)
    c.close()
EOF
P_PACED=$P_FREE
python3 paced.py $P_PACED 16 4074 paced.want 2>paced.log &
PIDS+=($!)
lib_edge_wait_log paced.want " " || die "the paced origin did not start: $(cat paced.log)"
sed "s/^upstream .*/upstream 127.0.0.1:$P_PACED/" edge.conf >edge-held.conf
SPK_SHORTIO_HOLD=$T/hold LD_PRELOAD=$SHORTIO lib_edge_start edge-held.conf
held_ok() {
    local got
    got=$(timeout 30 python3 "$SRC/tests/integration/tls_heldclose.py" 127.0.0.1 $P_EDGE a.test \
        ca.pem "$T/hold" 1.5 2>>heldclose.err)
    [ "$got" = "$(printf '%s\nclose_notify' "$(cat paced.want)")" ]
}
check "an answer that fills the output buffer to its last byte, then the origin's close: all of it, then close_notify" \
    held_ok
check "the edge serves on after it" kill -0 $EDGE_PID
kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null

if [ $failed -ne 0 ]; then
    echo "--- edge.log"
    tail -20 edge.log
    echo "--- curl.err"
    tail -5 curl.err 2>/dev/null
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
