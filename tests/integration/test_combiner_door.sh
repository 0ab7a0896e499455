#!/usr/bin/env bash
# test_combiner_door.sh BUILD_DIR: the combiner's door, with real processes.
#   - unix:// (SOCK_SEQPACKET) and ipc:// (ZeroMQ) alike: the socket is 0600
#     whatever the umask it was started with; a malformed request gets ERROR
#     malformed and serving goes on; a second uid (nobody, through setpriv) gets no answer, also when the
#     socket file is opened up to everyone (the peer-uid check); the uid of
#     its client line gets signatures and TLS premaster decryption, and
#     decrypt-raw / decrypt-pkcs1 are refused with not-allowed unless a
#     client line names them; each refusal is one log line;
#   - tcp://: a CURVE server; a client whose key is in the allow file with a
#     client line is served; a stranger's key, and a client without CURVE,
#     get nothing;
#   - a listening impostor holder, named in the file but not in the key's
#     record, receives no SHARE_REQUEST for that key (only PINGs);
#   - batching: a signature and a decryption sent together never share one
#     SHARE_REQUEST; the holders' audit lines show ops=N and the digest of
#     all N inputs for a batch of N;
#   - an edge with combiner-external over tcp:// (CURVE with its client key)
#     serves TLS, and a kill -9 of that combiner under load, restarted at
#     once, fails no handshake: the edge sends what was in flight again.
#     The edge runs with libspk_zmqeof.so, which holds its ZeroMQ I/O thread
#     for 50 ms between reporting the disconnect and detaching the dead
#     connection: what the edge sends again at once goes into the dead one,
#     and only what it sends once the new connection is up gets there.
#   - told to stop together, the edge and the combiner both exit: the shim
#     also holds the edge 300 ms after it closes its monitor's reader, so the
#     combiner's connection ends while the edge closes its sockets.
set -u
PROBE=$(cd "$(dirname "$0")" && pwd)/wire_probe.py
. "$(dirname "$0")/lib_edge.sh"
lib_edge_init test-combiner-door "${1:-}"
TC=$BUILD/combiner/comb-testclient
[ -x "$COMBINER" ] && [ -x "$TC" ] || die "missing $COMBINER or $TC"
PY=/usr/bin/python3 # Debian's, with python3-zmq

lib_edge_pki
lib_edge_mkcert door 2048 || die "door certificate and key"
lib_edge_holder_keys h9 stranger
ID=$(lib_edge_split door) || die "split"
lib_edge_holders
MOD_LEN=256
DGST=$(printf 'door' | openssl dgst -sha256 -hex | awk '{print $NF}')
CT=00$(printf '11%.0s' $(seq 255)) # a modulus-long input below n
P_TCP=$P_FREE
P_IMP=$((P_FREE + 1))
ME=$(id -u)

# The impostor: a CURVE server with h9's key that counts what it is sent.
cat >impostor.py <<'EOF'
import sys, zmq
secret = [l.split()[1] for l in open(sys.argv[2]) if l.startswith("curve-secret ")][0]
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
s.curve_server = True
s.curve_secretkey = secret.encode()
s.bind("tcp://127.0.0.1:" + sys.argv[1])
out = open(sys.argv[3], "a", buffering=1)
while True:
    parts = s.recv_multipart()
    f = parts[-1]
    out.write("type=%d\n" % (f[3] if len(f) > 3 else -1))
EOF
"$PY" impostor.py $P_IMP keys/h9.key impostor.log 2>impostor.err &
PIDS+=($!)

# comb_conf NAME LISTEN [EXTRA...]: the combiner's file NAME.conf
comb_conf() {
    local name=$1 listen=$2
    shift 2
    {
        echo "splitkey-combiner 1"
        echo "key keys/comb.key"
        echo "record shares/$ID.record"
        echo "share shares/$ID.comb.share"
        echo "holder h1 tcp://127.0.0.1:$P_H1 keys/h1.pub"
        echo "holder h2 tcp://127.0.0.1:$P_H2 keys/h2.pub"
        echo "holder h9 tcp://127.0.0.1:$P_IMP keys/h9.pub"
        echo "listen $listen"
        echo "allow-unlocked yes"
        for l in "$@"; do echo "$l"; done
    } >"$name.conf"
}
# start_comb NAME UMASK: combiner run with NAME.conf under UMASK; waits until serving.
# A restart's log does not overwrite the last one's: that goes to NAME.log.N.
start_comb() {
    local n=1
    if [ -e "$1.log" ]; then
        while [ -e "$1.log.$n" ]; do n=$((n + 1)); done
        mv "$1.log" "$1.log.$n"
    fi
    (umask "$2" && exec "$COMBINER" run --config "$1.conf") 2>"$1.log" &
    PIDS+=($!)
    eval "PID_$1=$!"
    for _ in $(seq 1 100); do
        grep -q "combiner: serving" "$1.log" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$1.log"
    die "combiner $1 did not start"
}
op() { "$TC" --timeout "${TO:-3000}" "$@" 2>&1; }

# ---- unix:// and ipc:// ----------------------------------------------------------------
mkdir -m 0777 pub # a directory anyone may enter: only the socket's own door counts
chmod 0755 "$T"
NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
# local_door SCHEME: the checks of a local door (unix:// SOCK_SEQPACKET or
# ipc:// ZeroMQ), the same for both; the combiner's file and log are SCHEME.*
local_door() {
    local sc=$1 EP="$1://$T/pub/$1.sock" out n0
    comb_conf "$sc" "$EP" "client edge uid $ME tls"
    start_comb "$sc" 000
    check "$sc: the socket is 0600 though the combiner ran under umask 000" \
        [ "$(stat -c %a "pub/$sc.sock")" = 600 ]
    out=$(op "$EP" "$ID" sign-pkcs1-sha256 "$DGST")
    check "$sc: the edge's uid gets a PKCS#1 signature" grep -q "^ok [0-9a-f]\{512\}$" <<<"$out"
    out=$(op "$EP" "$ID" sign-pss-sha256 "$DGST")
    check "$sc: the edge's uid gets a PSS signature" grep -q "^ok [0-9a-f]\{512\}$" <<<"$out"
    out=$(op "$EP" "$ID" decrypt-tls-premaster "$CT")
    check "$sc: the edge's uid gets a premaster decryption (48 bytes)" \
        grep -q "^ok [0-9a-f]\{96\}$" <<<"$out"
    out=$(op "$EP" "$ID" decrypt-raw "$CT")
    check "$sc: decrypt-raw refused with not-allowed ($out)" grep -q "^error not allowed" <<<"$out"
    out=$(op "$EP" "$ID" decrypt-pkcs1 "$CT")
    check "$sc: decrypt-pkcs1 refused with not-allowed ($out)" grep -q "^error not allowed" <<<"$out"
    check "$sc: each refused operation is one log line" \
        [ "$(grep -c '^combiner: refused decrypt-\(raw\|pkcs1\) for client edge' "$sc.log")" = 2 ]

    # PROTOCOL.md 7.3: a type the combiner does not serve (PONG) gets ERROR
    # unsupported (25) with its request id; an ERROR is never answered. A PING
    # after each shows the order: the answer after the ERROR is the PING's PONG.
    out=$("$PY" "$PROBE" "$EP" 7:10:0e00020001 1:11 2:12 1:13 2>&1)
    check "$sc: ERROR unanswered, PONG 11, ERROR unsupported (25) for PONG 12, PONG 13 ($out)" \
        [ "$out" = "2:11:0 7:12:25 2:13:0" ]
    # A request cut short gets ERROR malformed, and the combiner still serves.
    out=$("$PY" "$PROBE" --wait 500 "$EP" 5:14:0102 1:15 2>&1)
    check "$sc: a truncated OP_REQUEST is answered as malformed, then PONG ($out)" \
        [ "$out" = "7:14:3 2:15:0" ]

    if "${NOBODY[@]}" true 2>/dev/null; then
        # (unix://: connect fails, or the combiner closes the connection
        # before the request is written: the client's own stderr line is
        # left out, the answer counts.)
        out=$(TO=1500 "${NOBODY[@]}" "$TC" --timeout 1500 "$EP" "$ID" sign-pkcs1-sha256 "$DGST" 2>&1 |
            grep -v '^comb-testclient: ')
        check "$sc: another uid gets no answer (socket 0600: $out)" [ "$out" = "no answer" ]
        # Even with the file opened to everyone, the peer uid decides.
        chmod 0666 "pub/$sc.sock"
        n0=$(grep -c "refused a connection from uid" "$sc.log")
        out=$(TO=1500 "${NOBODY[@]}" "$TC" --timeout 1500 "$EP" "$ID" sign-pkcs1-sha256 "$DGST" 2>&1 |
            grep -v '^comb-testclient: ')
        check "$sc: another uid gets no answer with the socket 0666 ($out)" [ "$out" = "no answer" ]
        check "$sc: the refused uid is one log line naming it" \
            grep -q "^combiner: refused a connection from uid $(id -u nobody): uid not among the client lines" \
            "$sc.log"
        check "$sc: refused connections counted ($n0 before)" \
            [ "$(grep -c "refused a connection from uid" "$sc.log")" -gt "$n0" ]
        out=$(op "$EP" "$ID" sign-pkcs1-sha256 "$DGST")
        check "$sc: the edge's uid is still served" grep -q "^ok " <<<"$out"
    else
        fail "setpriv --reuid=nobody does not work here (the second-uid checks need root)"
    fi
    eval "kill \$PID_$sc; wait \$PID_$sc 2>/dev/null"
}
local_door unix
local_door ipc

# A client line that names decrypt-raw and decrypt-pkcs1 gets them.
comb_conf ops "ipc://$T/pub/ops.sock" "client ops uid $ME tls,decrypt-raw,decrypt-pkcs1"
start_comb ops 022
out=$(op "ipc://$T/pub/ops.sock" "$ID" decrypt-raw "$CT")
check "ipc: decrypt-raw served when the client line names it" \
    grep -q "^ok [0-9a-f]\{512\}$" <<<"$out"
out=$(op "ipc://$T/pub/ops.sock" "$ID" decrypt-pkcs1 "$CT")
check "ipc: decrypt-pkcs1 answered when named (a padding error here: $out)" \
    grep -q "^error \|^ok " <<<"$out"

# ---- batching: one kind per SHARE_REQUEST, ops=N and the digest of all inputs ---------
D2=$(printf 'two' | openssl dgst -sha256 -hex | awk '{print $NF}')
D3=$(printf 'three' | openssl dgst -sha256 -hex | awk '{print $NF}')
# digest = SHA-256 over op || len (u16) || input for each operation, in order
want=$("$PY" - "$DGST" "$D2" <<'EOF'
import hashlib, sys
h = hashlib.sha256()
for d in sys.argv[1:]:
    b = bytes.fromhex(d)
    h.update(bytes([0x03, len(b) >> 8, len(b) & 255]) + b)
print(h.hexdigest())
EOF
)
# Sent together: two signatures, a decryption, a third signature. An
# operation joins only a batch of its own kind that has not asked the
# holders yet: [sig, sig] [decryption] [sig]. The combiner may read the
# first two in separate turns of its loop (then each is a batch of one, also
# correct), so the burst is sent up to five times until the two were read
# together.
for attempt in 1 2 3 4 5; do
    a1=$(wc -l <"$AUDIT/h1.audit")
    a2=$(wc -l <"$AUDIT/h2.audit")
    out=$(op "ipc://$T/pub/ops.sock" "$ID" sign-pkcs1-sha256 "$DGST" sign-pkcs1-sha256 "$D2" \
        decrypt-raw "$CT" sign-pkcs1-sha256 "$D3")
    sleep 0.3
    new=$( (tail -n +$((a1 + 1)) "$AUDIT/h1.audit"; tail -n +$((a2 + 1)) "$AUDIT/h2.audit") | grep 'outcome=released')
    grep -q "op=sign-pkcs1-sha256 ops=2 " <<<"$new" && break
done
echo "batch: the burst was sent $attempt time(s)"
check "batch: all four operations answered" [ "$(grep -c '^ok ' <<<"$out")" = 4 ]
check "batch: the first two signatures shared one SHARE_REQUEST (ops=2)" \
    grep -q "op=sign-pkcs1-sha256 ops=2 " <<<"$new"
check "batch: the decryption had its own SHARE_REQUEST (ops=1)" \
    grep -q "op=decrypt-raw ops=1 " <<<"$new"
check "batch: the signature after the decryption had its own (ops=1)" \
    grep -q "op=sign-pkcs1-sha256 ops=1 " <<<"$new"
check "batch: no SHARE_REQUEST served more operations than were of its kind in a row" \
    bash -c "! grep -q 'ops=[34]' <<<\"\$1\"" _ "$new"
check "batch: the audit line's digest covers both inputs of the batch of two" \
    grep -q "op=sign-pkcs1-sha256 ops=2 digest=$want" <<<"$new"
kill "$PID_ops"
wait "$PID_ops" 2>/dev/null

# ---- the impostor holder -------------------------------------------------------------------
check "impostor: it was connected to (the combiner PINGed it)" grep -q "^type=1$" impostor.log
check "impostor: not named in the key's record, it got no SHARE_REQUEST" \
    bash -c '! grep -q "^type=3$" impostor.log'

# ---- tcp:// ------------------------------------------------------------------------------
echo "client far $(pubkey keys/h2.pub) *" >comb-allow.txt # any keypair will do: h2's
comb_conf tcp "tcp://127.0.0.1:$P_TCP" "allow comb-allow.txt" "client far curve tls"
start_comb tcp 022
EPT=tcp://127.0.0.1:$P_TCP
CPK=$(pubkey keys/comb.pub)
out=$(op --curve "$CPK" keys/h2.key "$EPT" "$ID" sign-pss-sha256 "$DGST")
check "tcp: an allow-listed CURVE client gets a signature" grep -q "^ok [0-9a-f]\{512\}$" <<<"$out"
out=$(op --curve "$CPK" keys/h2.key "$EPT" "$ID" decrypt-raw "$CT")
check "tcp: ... but not decrypt-raw ($out)" grep -q "^error not allowed" <<<"$out"
# (Refused in the CURVE handshake before its request is queued, the client
# cannot send: its own stderr line is left out, the answer counts.)
out=$(TO=1500 op --curve "$CPK" keys/stranger.key "$EPT" "$ID" sign-pss-sha256 "$DGST" |
    grep -v '^comb-testclient: ')
check "tcp: a stranger's CURVE key gets nothing ($out)" [ "$out" = "no answer" ]
check "tcp: the stranger is one log line" \
    bash -c "grep -F 'combiner: refused a connection from key $(pubkey keys/stranger.pub) ' tcp.log |
        grep -q 'not in the allow file'"
out=$(TO=1500 op "$EPT" "$ID" sign-pss-sha256 "$DGST" | grep -v '^comb-testclient: ')
check "tcp: a client without CURVE gets nothing ($out)" [ "$out" = "no answer" ]
echo "splitkey-combiner 1
key keys/comb.key
record shares/$ID.record
listen tcp://127.0.0.1:$P_TCP
allow-unlocked yes" >tcp-open.conf
timeout 10 "$COMBINER" run --config tcp-open.conf 2>tcp-open.log
rc=$?
check "tcp: a tcp:// combiner without an allow file refuses to start (exit $rc)" \
    bash -c "[ $rc -eq 1 ] && grep -q 'needs an .allow. file' tcp-open.log"

# ---- its starter dies: it leaves by itself ----------------------------------------------
# A combiner started by anything but the edge has no PR_SET_PDEATHSIG (SIGTERM)
# to wake it: it must see on its own that its parent is gone, and leave
# within about a second (its idle loop wakes every second).
comb_conf orphan "unix://$T/orphan.sock" "client edge uid $ME tls"
bash -c '"$0" run --config orphan.conf 2>orphan.log & echo $! >orphan.pid; wait' "$COMBINER" &
STARTER=$!
PIDS+=($STARTER)
lib_edge_wait_log orphan.log "combiner: serving"
ORPHAN=$(cat orphan.pid 2>/dev/null)
PIDS+=($ORPHAN)
check "a combiner started by a shell serves" grep -q "combiner: serving" orphan.log
ORPHAN_MS=1500
if lib_edge_sanitized; then
    ORPHAN_MS=3000 # a sanitizer build's exit (leak check) is slower
fi
if [ -n "$ORPHAN" ]; then
    kill -9 "$STARTER"
    wait "$STARTER" 2>/dev/null
    check "its starter killed (SIGKILL): the combiner leaves within $ORPHAN_MS ms" \
        lib_edge_exits_within "$ORPHAN" $ORPHAN_MS
    check "... and says so" grep -q "combiner: stopping" orphan.log
fi

# ---- an edge that reaches it over tcp:// with CURVE; kill -9 under load ---------------
lib_edge_origin
{
    echo "listen 127.0.0.1:$P_EDGE"
    echo "certificate door.pem shares/$ID.record"
    echo "upstream 127.0.0.1:$P_ORIGIN"
    echo "combiner-endpoint $EPT"
    echo "combiner-external yes"
    echo "combiner-curve-public $CPK"
    echo "combiner-client-key keys/h2.key"
    echo "op-timeout-ms 4000"
    echo "metrics 127.0.0.1:$((P_FREE + 2))"
} >edge.conf
ZMQEOF=$BUILD/tests/libspk_zmqeof.so
[ -f "$ZMQEOF" ] || die "missing $ZMQEOF"
SPK_ZMQEOF_PAIR_CLOSE_MS=300 LD_PRELOAD=$ZMQEOF lib_edge_start edge.conf
get_door() { # MAX_SECONDS: the edge's page over TLS, or curl's error
    curl -sS --max-time "$1" --cacert ca.pem --resolve door:$P_EDGE:127.0.0.1 \
        https://door:$P_EDGE/index.html 2>&1
}
out=$(get_door 10)
check "tcp: an edge with combiner-curve-public and combiner-client-key is served ($out)" \
    [ "$out" = "hello from the origin" ]
LOAD=$BUILD/tests/bench_tls_client
if [ -x "$LOAD" ]; then
    "$LOAD" load 127.0.0.1 $P_EDGE door ca.pem 1.3 4 8 >load.out 2>load.err &
    LPID=$!
    sleep 1.5
    kill -9 "$PID_tcp"
    wait "$PID_tcp" 2>/dev/null
    start_comb tcp 022 # the same file, at once, as systemd's Restart=always would
    wait $LPID
    out=$(cat load.out)
    failed_hs=$(curl -s http://127.0.0.1:$((P_FREE + 2))/metrics |
        awk '/^spk_edge_handshakes_total\{result="failed"/ { s += $2 } END { print s + 0 }')
    check "tcp: kill -9 of the external combiner under load fails no handshake ($out)" \
        bash -c "grep -q ' failed=0 ' <<<\"\$1\" && ! grep -q ' ok=0 ' <<<\"\$1\"" _ "$out"
    check "tcp: ... and the edge's metrics count no failed handshake ($failed_hs)" \
        [ "$failed_hs" = 0 ]
    if ! grep -q ' failed=0 ' load.out; then # what the edge and both combiners said
        curl -s http://127.0.0.1:$((P_FREE + 2))/metrics | grep '^spk_edge_key_operations_total'
        grep -m 10 "handshake failed" edge.log
        cat tcp.log.* tcp.log
    fi
else
    fail "missing $LOAD"
fi
# Restarted with an allow file that leaves the edge out, the combiner refuses
# its handshake, after which ZeroMQ never connects again by itself: the edge
# must, or fixing the file would not let it back in without a restart.
kill -9 "$PID_tcp"
wait "$PID_tcp" 2>/dev/null
echo "client far $(pubkey keys/stranger.pub) *" >comb-allow.txt
start_comb tcp 022
out=$(get_door 5)
check "tcp: a combiner restarted without the edge's key refuses it ($out)" \
    [ "$out" != "hello from the origin" ]
check "... and the edge says so, once" \
    [ "$(grep -c "refused this edge's connection (not admitted)" edge.log)" = 1 ]
echo "client far $(pubkey keys/h2.pub) *" >comb-allow.txt
kill -HUP "$PID_tcp"
lib_edge_wait_log tcp.log "combiner: reloaded"
back=""
for _ in $(seq 1 40); do # the edge tries again at most every 5 s
    out=$(get_door 5)
    [ "$out" = "hello from the origin" ] && back=1 && break
    sleep 0.25
done
check "tcp: the allow file fixed and reloaded, the edge gets in without a restart ($out)" \
    [ -n "$back" ]
check "... and says so" grep -q "the combiner at $EPT admits this edge again" edge.log
# Both told to stop at once: the edge's connection ends while it closes its
# ZeroMQ sockets (the shim holds it 300 ms after closing the monitor's
# reader), and it must still exit, as must the combiner.
kill "$EDGE_PID" "$PID_tcp" 2>/dev/null
check "the edge stops within 10 s of SIGTERM while its combiner stops too" \
    lib_edge_exits_within "$EDGE_PID" 10000
check "... and so does the combiner" lib_edge_exits_within "$PID_tcp" 10000
kill -9 "$EDGE_PID" "$PID_tcp" 2>/dev/null
wait "$EDGE_PID" "$PID_tcp" 2>/dev/null

check "no sanitizer report in any log" lib_edge_no_sanitizer_reports
if [ "$failed" -ne 0 ]; then
    tail -n 5 ./*.log
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
