#!/usr/bin/env bash
# The origin is down: with the default `upstream-failure reset` the client's
# TCP connection is reset after the handshake (curl and a plain TLS client see
# a reset, not a clean close); after a reload with `upstream-failure http502`
# an HTTP client gets a 502 response and close_notify. The edge counts both,
# keeps serving, and serves normally again once the origin is back. With
# proxy-protocol yes the origin gets a PROXY v2 header with both addresses.
# An origin that waits to be spoken to, with a client that waits longer than
# handshake-timeout-ms, and one that speaks first, are relayed, not failed.
# The PROXY header, a 502 answer and the metrics page arrive whole again while
# a third of the edge's TCP writes and reads fail with EAGAIN and a third go
# through in part (libspk_shortio.so).
# Usage: test_edge_upstream.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init test-edge-upstream "${1:-}"

lib_edge_sites a.test
P_METRICS=$P_FREE
# No origin yet: nothing listens on P_ORIGIN.
write_conf() { # EXTRA-LINES...
    lib_edge_conf a.test
    echo "metrics 127.0.0.1:$P_METRICS"
    printf '%s\n' "$@"
}
write_conf >edge.conf
lib_edge_start edge.conf

CURL=(curl -sS --max-time 10 --cacert ca.pem --resolve a.test:$P_EDGE:127.0.0.1)
failures() {
    curl -s --max-time 5 http://127.0.0.1:$P_METRICS/metrics |
        awk '$1 == "spk_edge_upstream_failures_total" { print $2 }'
}


# ---- default: reset --------------------------------------------------------------
f0=$(failures)
"${CURL[@]}" https://a.test:$P_EDGE/index.html >curl.out 2>curl.err
rc=$?
# curl says "reset by peer" (56), or fails to send its request on the reset
# socket (55); either way it got no answer.
check "reset: curl fails (exit $rc) on the reset: $(tail -1 curl.err)" \
    eval '[ $rc -eq 55 ] || [ $rc -eq 56 ] && [ ! -s curl.out ]'
# s_client says how its read ended: errno 104 is ECONNRESET.
sleep 2 | timeout 10 openssl s_client -connect 127.0.0.1:$P_EDGE -servername a.test \
    -CAfile ca.pem >sclient.out 2>&1
seen=$(grep -o 'read:errno=[0-9]*' sclient.out | head -1)
check "reset: a TLS client that sends nothing sees a reset ($seen)" [ "$seen" = read:errno=104 ]
f1=$(failures)
check "reset: counted ($f0 -> $f1)" [ "$f1" -eq $((f0 + 2)) ]

# ---- http502 ------------------------------------------------------------------------
write_conf "upstream-failure http502" >edge.conf
kill -HUP $EDGE_PID
sleep 0.5
code=$("${CURL[@]}" -o body.out -w '%{http_code}' https://a.test:$P_EDGE/index.html 2>>curl.err)
check "http502: curl gets 502 ($code)" [ "$code" = 502 ]
check "http502: ... with a body that says why" grep -q "the origin cannot be reached" body.out
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' --data-binary @edge.conf \
    https://a.test:$P_EDGE/upload 2>>curl.err)
check "http502: a POST gets 502 too ($code)" [ "$code" = 502 ]
f2=$(failures)
check "http502: counted ($f1 -> $f2)" [ "$f2" -eq $((f1 + 2)) ]

# ---- the origin is back -----------------------------------------------------------------
lib_edge_origin
got=$("${CURL[@]}" https://a.test:$P_EDGE/index.html 2>>curl.err)
check "origin back: served again" [ "$got" = "hello from the origin" ]
check "the edge process is alive" kill -0 $EDGE_PID

# ---- proxy-protocol yes: a PROXY v2 header with both addresses -------------------------
P_PP=$((P_FREE + 1))
cat >pp_origin.py <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
c, _ = s.accept()
data = b""
# The 28-byte PROXY v2 header comes first; its signature itself begins with
# CR LF CR LF, so the request's end is looked for only after it.
while b"\r\n\r\n" not in data[28:]:
    d = c.recv(4096)
    if not d:
        break
    data += d
open(sys.argv[2], "w").write(data[:28].hex())
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nproxy\n")
c.close()
EOF
python3 pp_origin.py $P_PP pp.hex 2>pp.err &
PIDS+=($!)
sleep 0.3
write_conf "proxy-protocol yes" | sed "s|^upstream .*|upstream 127.0.0.1:$P_PP|" >edge.conf
kill -HUP $EDGE_PID
sleep 0.5
got=$("${CURL[@]}" https://a.test:$P_EDGE/index.html 2>>curl.err)
check "proxy-protocol: served through an origin that reads the header ($got)" [ "$got" = proxy ]
# v2 signature, PROXY over TCP/IPv4, 12 address bytes: 127.0.0.1 -> 127.0.0.1,
# then the client's port and the edge's listening port.
want_dst=$(printf '%04x' "$P_EDGE")
hdr=$(cat pp.hex 2>/dev/null)
check "proxy-protocol: the v2 header names the client and the edge's address ($hdr)" \
    bash -c "[[ \$1 =~ ^0d0a0d0a000d0a515549540a2111000c7f0000017f000001[0-9a-f]{4}$want_dst\$ ]]" _ "$hdr"

# ---- origins that are not HTTP: nobody speaks at first, or the origin first -------------
# The edge counts its connection to the origin as made on the first byte either
# way, or asks the kernel when neither side has anything to say: a quiet start
# is no failure, however long it lasts (here longer than handshake-timeout-ms,
# which bounds the connecting).
P_QUIET=$((P_FREE + 2))
cat >quiet_origin.py <<'EOF2'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
# first connection: says nothing until spoken to, then echoes a line;
# second: speaks first.
c, _ = s.accept()
c.sendall(c.recv(100))
c.close()
c, _ = s.accept()
c.sendall(b"banner\n")
c.recv(100)
c.close()
EOF2
cat >quiet_client.py <<'EOF2'
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile="ca.pem")
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
tls = ctx.wrap_socket(raw, server_hostname="a.test")
if sys.argv[2] == "quiet":
    time.sleep(1.6)
    tls.sendall(b"ping\n")
print(tls.recv(100).decode().strip())
EOF2
python3 quiet_origin.py $P_QUIET 2>quiet.err &
PIDS+=($!)
sleep 0.3
write_conf "handshake-timeout-ms 1000" | sed -e "s|^upstream .*|upstream 127.0.0.1:$P_QUIET|" \
    -e '/^handshake-timeout-ms 5000/d' >edge.conf
kill -HUP $EDGE_PID
sleep 0.5
f3=$(failures)
got=$(python3 quiet_client.py $P_EDGE quiet 2>quiet-client.err)
check "quiet origin: 1.6 s of silence after the handshake, then an echo ($got)" [ "$got" = ping ]
got=$(python3 quiet_client.py $P_EDGE banner 2>>quiet-client.err)
check "an origin that speaks first reaches a client that sends nothing ($got)" [ "$got" = banner ]
f4=$(failures)
check "no upstream failure counted for either ($f3 -> $f4)" [ "$f4" = "$f3" ]

# ---- short I/O: the same answers when the edge's TCP writes and reads stall ----------
# libspk_shortio.so makes a third of the edge's TCP writes fail with EAGAIN
# and a third send 1 to 512 bytes, and (SPK_SHORTIO_READS=1) its reads too:
# the PROXY header (written to the origin ahead of the request), a 502 answer
# and the metrics page (its request read in pieces) must arrive whole.
kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null
python3 pp_origin.py $P_PP pp-short.hex 2>>pp.err &
PIDS+=($!)
sleep 0.3
write_conf "proxy-protocol yes" "upstream-failure http502" |
    sed "s|^upstream .*|upstream 127.0.0.1:$P_PP|" >edge.conf
SPK_SHORTIO_READS=1 LD_PRELOAD=$BUILD/tests/libspk_shortio.so lib_edge_start edge.conf
check "short I/O: the edge runs with libspk_shortio.so" \
    grep -q libspk_shortio "/proc/$EDGE_PID/maps"
got=$("${CURL[@]}" https://a.test:$P_EDGE/index.html 2>>curl.err)
check "short I/O, proxy-protocol: served ($got)" [ "$got" = proxy ]
hdr=$(cat pp-short.hex 2>/dev/null)
check "short I/O, proxy-protocol: the v2 header arrived whole ($hdr)" \
    bash -c "[[ \$1 =~ ^0d0a0d0a000d0a515549540a2111000c7f0000017f000001[0-9a-f]{4}$want_dst\$ ]]" _ "$hdr"
# That origin served its one connection and is gone: the next client gets the 502.
code=$("${CURL[@]}" -o body-short.out -w '%{http_code}' https://a.test:$P_EDGE/index.html 2>>curl.err)
check "short I/O, http502: curl gets 502 ($code) and the whole body" \
    eval '[ "$code" = 502 ] && grep -q "the origin cannot be reached" body-short.out'
# curl fails (exit 18) on a body shorter than its Content-Length.
check "short I/O: the metrics page arrives whole" \
    eval 'curl -sS --max-time 5 -o metrics-short.out http://127.0.0.1:$P_METRICS/metrics 2>>curl.err &&
        grep -q "^spk_edge_upstream_failures_total 1\$" metrics-short.out'

write_conf "upstream-failure sometimes" >bad.conf
check "upstream-failure with another value is refused" \
    eval '! "$EDGE" check bad.conf >check.out 2>&1 && grep -q "upstream-failure is reset or http502" check.out'

kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null
if [ $failed -ne 0 ]; then
    echo "--- edge.log"
    tail -20 edge.log
    echo "--- curl.err"
    tail -5 curl.err
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
