#!/usr/bin/env bash
# Integration test of the share-holder daemon: real daemons on 127.0.0.1,
# keys and shares made by keysplit, requests from sh-testclient over CURVE.
# Usage: test_holder.sh BUILD_DIR
set -u

SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/integration/lib_holder.sh
. "$SRC/tests/integration/lib_holder.sh"
holder_test_setup spk-holder-test "${1:?usage: test_holder.sh BUILD_DIR}"

# ---- keys and splits ----------------------------------------------------------
for n in h1 h2 h3 edge other noisy stranger; do
    "$KS" keygen --name "$n" --out "$T" >/dev/null 2>&1 || { bad "keygen $n"; }
done
mkdir -p "$T/split1" "$T/split2"
KEY1=$("$KS" split --key "$SRC/tests/data/rsa2048.pem" --threshold 2 \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --holder "$T/h3.pub" --out "$T/split1" 2>/dev/null)
KEY2=$("$KS" split --key "$SRC/tests/data/rsa3072.pem" --threshold 2 \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --out "$T/split2" 2>/dev/null)
check "keysplit made two splits" test -n "$KEY1" -a -n "$KEY2" -a -f "$T/split1/$KEY1.record"
UNKNOWN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

for h in h1 h2 h3; do
    mkdir -p "$T/$h.d"
    cp "$T"/split1/* "$T/$h.d/" # every holder sees every share: others' must be skipped
done
cp "$T/split2/$KEY2.h1.share" "$T/split2/$KEY2.record" "$T/h1.d/"
cp "$T/split2/$KEY2.h2.share" "$T/split2/$KEY2.record" "$T/h2.d/"

# a share whose y_1 is the field prime M itself (2^1279 - 1), sealed to h1:
# it opens, but it is no field element, so h1 must not load it
BADKEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
/usr/bin/python3 - "$(awk '/^storage-public /{print $2}' "$T/h1.pub")" "$BADKEY" >"$T/h1.d/$BADKEY.h1.share" <<'PY'
import base64, os, sys
import zmq.utils.z85
from nacl.public import PublicKey, SealedBox
storage_pk = zmq.utils.z85.decode(sys.argv[1])
y = b"\x7f" + b"\xff" * 159 + bytes(4 * 160)
sealed = SealedBox(PublicKey(storage_pk)).encrypt(y)
print("splitkey-share 1\nkey-id %s\nsplit-id %s\nindex 5\nholder h1\nthreshold 2\n"
      "shares 3\nfield 1279\nsealed %s" % (sys.argv[2], os.urandom(16).hex(),
                                           base64.b64encode(sealed).decode()))
PY
chmod 600 "$T/h1.d/$BADKEY.h1.share"

cat >"$T/h1.allow" <<EOF
# h1: edge may fetch anything, other only the second key, noisy everything
client edge $(z85 edge) * 127.0.0.1/32,::1
client other $(z85 other) $KEY2
client noisy $(z85 noisy) *
EOF
cat >"$T/h2.allow" <<EOF
client edge $(z85 edge) $KEY1,$KEY2 127.0.0.0/8
client noisy $(z85 noisy) *
EOF
cat >"$T/h3.allow" <<EOF
client edge $(z85 edge) *
client other $(z85 other) *
EOF

# start_holder NAME [OPTIONS...]: holder NAME serving $T/NAME.d to the clients
# of $T/NAME.allow on any port; sets NAME_pid and NAME_ep
start_holder() {
    local name=$1
    shift
    holder_start "$name" "$T/$name.d" "$T/$name.allow" '*' "$@"
}

# fetch CLIENT HOLDER KEYID [EXTRA...]: output in $T/out, status in $rc
fetch() {
    local client=$1 holder=$2 key=$3
    shift 3
    local ep_var="${holder}_ep"
    "$TC" fetch --key "$T/$client.key" --holder "${!ep_var}" "$T/$holder.pub" --key-id "$key" \
        --connect-wait 3000 "$@" >"$T/out" 2>&1
    rc=$?
}

start_holder h1
start_holder h2 --rate 100000 --burst 100000
start_holder h3 --rate 2 --burst 10
check "three holders started" test -n "$h1_ep" -a -n "$h2_ep" -a -n "$h3_ep"
check "shares of other holders reported and skipped" \
    grep -q "skipping $KEY1.h2.share: addressed to holder h2, not h1" "$T/h1.log"

check "a share with y = M is reported and not loaded" \
    grep -q "skipping $BADKEY.h1.share: a value of the share is not below the field's M" "$T/h1.log"
fetch edge h1 "$BADKEY"
check "a share with y = M is not served" grep -q '^holder h1 error unknown-key' "$T/out"

# ---- an allowed client gets verified shares from every holder -------------------
"$TC" fetch --key "$T/edge.key" --holder "$h1_ep" "$T/h1.pub" --holder "$h2_ep" "$T/h2.pub" \
    --holder "$h3_ep" "$T/h3.pub" --key-id "$KEY1" --record "$T/split1/$KEY1.record" >"$T/out" 2>&1
rc=$?
check "allowed client: all three shares fetched" test $rc -eq 0
check "share 1 verifies against the record" grep -q '^holder h1 ok index=1 verified$' "$T/out"
check "share 2 verifies against the record" grep -q '^holder h2 ok index=2 verified$' "$T/out"
check "share 3 verifies against the record" grep -q '^holder h3 ok index=3 verified$' "$T/out"
fetch edge h1 "$KEY2" --record "$T/split2/$KEY2.record" --op decrypt-tls-premaster
check "second key (RSA-3072 field) fetched and verified" grep -q '^holder h1 ok index=1 verified$' "$T/out"

# ---- a key not in the allow-list gets nothing, and the refusal is logged --------
fetch stranger h1 "$KEY1" --connect-wait 1000
check "stranger gets nothing" grep -q '^holder h1 error unavailable$' "$T/out"
check "stranger's refusal is in the holder's log with its key and address" \
    grep -qF "refused CURVE client $(z85 stranger) from 127.0.0.1" "$T/h1.log"

# ---- per-key permissions and unknown keys -----------------------------------------
fetch other h1 "$KEY1"
check "client asking for a key it may not have: not-allowed" \
    grep -q '^holder h1 error not-allowed' "$T/out"
fetch other h1 "$KEY2" --record "$T/split2/$KEY2.record"
check "same client, its own key: released" grep -q '^holder h1 ok index=1 verified$' "$T/out"
fetch edge h1 "$UNKNOWN"
check "unknown key id: unknown-key" grep -q '^holder h1 error unknown-key' "$T/out"
check "audit: refusals are not written one line each" grep -qv "outcome=not-allowed" "$T/h1.audit"

# ---- op-count: the audit line names how many operations a share serves ------------
# the digest of PROTOCOL.md 7.3 over sh-testclient's inputs, computed here
ops_digest() {
    python3 -c 'import hashlib, sys
h = hashlib.sha256()
for i in range(int(sys.argv[2])):
    data = b"sh-testclient-%d" % i
    h.update(bytes([int(sys.argv[1], 16)]) + len(data).to_bytes(2, "big") + data)
print(h.hexdigest())' "$1" "$2"
}
fetch edge h1 "$KEY1" --op-count 5 --op decrypt-raw --record "$T/split1/$KEY1.record"
check "op-count 5: released" grep -q '^holder h1 ok index=1 verified$' "$T/out"
check "audit: ops=5 and the digest over the five inputs" \
    grep -q "client=edge key=$KEY1 op=decrypt-raw ops=5 digest=$(ops_digest 25 5) outcome=released" \
    "$T/h1.audit"
check "audit: a single operation is ops=1 with its own digest" \
    grep -q "client=edge key=$KEY1 op=sign-pss-sha256 ops=1 digest=$(ops_digest 11 1) outcome=released" \
    "$T/h1.audit"

# ---- every release has its audit line --------------------------------------------
fetch edge h1 "$KEY1" --count 25 --record "$T/split1/$KEY1.record"
check "25 more releases" test "$(grep -c '^holder h1 ok index=1 verified$' "$T/out")" -eq 25
# releases from h1 so far: 1 + 1 (key2) + 1 (other, key2) + 1 (op-count) + 25
check "audit: one 'released' line per release (29)" \
    test "$(grep -c 'outcome=released' "$T/h1.audit")" -eq 29
check "audit: no share bytes in the log (only fixed fields)" \
    test "$(grep -vcE '^[0-9T:.Z-]+ (client=[^ ]+ key=[0-9a-f]{64} op=[a-z0-9-]+ ops=[0-9]+ digest=[0-9a-f]{64} outcome=released index=[0-9]+ req=[0-9]+ addr=[^ ]+|summary client=[^ ]+ addr=[^ ]+ seconds=[0-9]+ not-allowed=[0-9]+ unknown-key=[0-9]+ rate-limited=[0-9]+ error=[0-9]+ refused=[0-9]+)$' "$T/h1.audit")" -eq 0

# ---- garbage --------------------------------------------------------------------------
"$TC" garbage --key "$T/noisy.key" --holder "$h2_ep" "$T/h2.pub" --count 10000 >"$T/garbage" 2>&1
check "10,000 garbage frames sent to h2" grep -qE 'garbage sent=100[0-9]{2} ' "$T/garbage"
check "h2 answered garbage with ERROR replies" \
    grep -qE 'errors=[1-9][0-9]*$' "$T/garbage"
check "h2 still running after the garbage" kill -0 "$h2_pid"
fetch edge h2 "$KEY1" --record "$T/split1/$KEY1.record"
check "h2 still serves a good client" grep -q '^holder h2 ok index=2 verified$' "$T/out"

# PROTOCOL.md 7.3: a type the holder does not serve gets ERROR unsupported with
# its request id; an ERROR is never answered. A PING after each proves the
# order: the first answer after the ERROR must be the PING's PONG.
# ERROR internal (item 0x0e) 10, PING 11, OP_RESPONSE (result 0x0d) 12, PING 13.
out=$(/usr/bin/python3 "$SRC/tests/integration/wire_probe.py" --curve "$T/h2.pub" "$T/noisy.key" "$h2_ep" \
    7:10:0e00020001 1:11 6:12:0d000100 1:13 2>&1)
check "h2: ERROR unanswered, PONG 11, ERROR unsupported (25) for OP_RESPONSE 12, PONG 13 ($out)" \
    test "$out" = "2:11:0 7:12:25 2:13:0"

# SECURITY.md: the allow-list's address ranges bound a stolen client key. h1
# admits edge from 127.0.0.1/32 only: the same key from 127.0.0.2 (a ZeroMQ
# source address) gets no answer at all, and the refusal names the address.
from_addr() { # FROM_ADDRESS: a PING to h1 with edge's key from that source address
    /usr/bin/python3 "$SRC/tests/integration/wire_probe.py" --curve "$T/h1.pub" "$T/edge.key" \
        --from "$1" "$h1_ep" 1:21 2>&1
}
check "h1: edge's key from 127.0.0.1 (in its range) gets a PONG" test "$(from_addr 127.0.0.1)" = "2:21:0"
check "h1: edge's key from 127.0.0.2 (outside 127.0.0.1/32) gets nothing" test "$(from_addr 127.0.0.2)" = "no answer"
check "h1: the refusal is logged with the address" grep -qF "127.0.0.2" "$T/h1.log" "$T/h1.audit"
"$TC" garbage --key "$T/noisy.key" --holder "$h1_ep" "$T/h1.pub" --count 2000 >"$T/garbage" 2>&1
check "h1 (default rate) still running after garbage over the rate" kill -0 "$h1_pid"
fetch edge h1 "$KEY1"
check "h1 still serves a good client" grep -q '^holder h1 ok index=1' "$T/out"

# ---- frames up to PROTO_MSG_MAX reach the holder whole, CURVE included -------------
"$TC" big --key "$T/noisy.key" --holder "$h2_ep" "$T/h2.pub" >"$T/big" 2>&1
check "frames of 65504..65536 bytes over CURVE: each answered ERROR malformed" \
    grep -q '^big sent=33 answered=33$' "$T/big"
check "a frame of 65537 bytes gets no answer" grep -q '^over answered=0$' "$T/big"
check "h2 still running after the big frames" kill -0 "$h2_pid"

# ---- rate limit: one client over, the other unaffected ----------------------------------
fetch other h3 "$KEY1" --count 30 --timeout 1000
limited=$(grep -c '^holder h3 error rate-limited' "$T/out")
check "h3 (rate 2/s, burst 10): client other is rate-limited ($limited of 30)" test "$limited" -ge 15
check "audit: rate-limited requests are not written one line each" \
    test "$(grep -c 'client=other .*outcome=rate-limited' "$T/h3.audit")" -eq 0
fetch edge h3 "$KEY1" --count 3 --record "$T/split1/$KEY1.record"
check "h3: client edge unaffected" test "$(grep -c '^holder h3 ok index=3 verified$' "$T/out")" -eq 3

# ---- SIGHUP reloads the allow-list -----------------------------------------------------
echo "client stranger $(z85 stranger) $KEY1" >>"$T/h1.allow"
kill -HUP "$h1_pid"
for _ in $(seq 50); do grep -q reloaded "$T/h1.log" && break; sleep 0.05; done
check "SIGHUP: reload reported" grep -q 'reloaded: 4 clients' "$T/h1.log"
fetch stranger h1 "$KEY1" --record "$T/split1/$KEY1.record"
check "SIGHUP: a newly allowed client is served" grep -q '^holder h1 ok index=1 verified$' "$T/out"
# edge keeps a connection open across its revocation: a PING before, one after
cat >"$T/old.py" <<'EOF'
import os, struct, sys, time, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.curve_serverkey = os.environ["SERVER"].encode()
s.curve_publickey = os.environ["PUB"].encode()
s.curve_secretkey = os.environ["SEC"].encode()
s.linger = 0
s.rcvtimeo = 3000
s.connect(sys.argv[1])
out = []
for req in (31, 32):
    if req == 32:
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.05)
    s.send(b"SK" + bytes([1, 1, 0]) + struct.pack(">QI", req, 0))
    try:
        m = s.recv()
        out.append("%d:%d" % (m[3], struct.unpack(">H", m[20:22])[0] if m[3] == 7 else 0))
    except zmq.Again:
        out.append("none")
    print(" ".join(out), flush=True)
EOF
SERVER=$(z85 h1) PUB=$(z85 edge) SEC=$(awk '/^curve-secret /{print $2}' "$T/edge.key") \
    /usr/bin/python3 "$T/old.py" "$h1_ep" "$T/revoked" >"$T/old" 2>&1 &
old_pid=$!
for _ in $(seq 100); do grep -q . "$T/old" && break; sleep 0.05; done
grep -v '^client edge ' "$T/h1.allow" >"$T/h1.allow.new" && mv "$T/h1.allow.new" "$T/h1.allow"
"$SH" check --allow "$T/h1.allow" >"$T/check" 2>&1
check "share-holder check --allow: a good file exits 0" grep -q '^ok: .*3 clients$' "$T/check"
kill -HUP "$h1_pid"
for _ in $(seq 50); do test "$(grep -c reloaded "$T/h1.log")" -ge 2 && break; sleep 0.05; done
touch "$T/revoked"
wait "$old_pid"
check "a revoked client's request on its old connection: PONG before, ERROR not-allowed after ($(tail -1 "$T/old"))" \
    grep -q '^2:0 7:19$' "$T/old"
fetch edge h1 "$KEY1" --connect-wait 1000
check "SIGHUP: a removed client gets nothing" grep -qE '^holder h1 error (unavailable|not-allowed)' "$T/out"
echo "this is not an allow-list" >"$T/h1.allow"
"$SH" check --allow "$T/h1.allow" >"$T/check" 2>&1
st=$?
check "share-holder check --allow: a bad file exits 1 naming the line" \
    test $st -eq 1 -a -n "$(grep 'refused: line 1' "$T/check")"
kill -HUP "$h1_pid"
for _ in $(seq 50); do grep -q 'reload failed' "$T/h1.log" && break; sleep 0.05; done
check "SIGHUP: a broken allow-list is an ERROR, the previous list stays in force" \
    grep -q 'ERROR: reload failed: allow-list .*line 1.*still serving the PREVIOUS list' "$T/h1.log"

fetch stranger h1 "$KEY1"
check "SIGHUP: still serving with the old allow-list" grep -q '^holder h1 ok index=1' "$T/out"
check "h1 kept its pid through the reloads" kill -0 "$h1_pid"

# ---- SIGTERM: drain and exit 0 -----------------------------------------------------------
for h in h1 h2 h3; do
    pid_var="${h}_pid"
    kill -TERM "${!pid_var}"
    wait "${!pid_var}"
    st=$?
    check "SIGTERM: $h exits 0" test $st -eq 0
done
check "stop line reports the counters" grep -q 'stopping: .* released' "$T/h1.log"
check "stop line counts the failed reload" grep -q 'stopping: .* 1 failed reloads' "$T/h1.log"

# ---- the audit log: releases one line each, refusals summed per client ----------------------
# (the summaries of an interval are written at reload and stop, or after a minute)
check "audit: stranger's refused handshakes are summed under its key" \
    grep -qF "summary client=key:$(z85 stranger) addr=127.0.0.1 " "$T/h1.audit"
check "audit: ... with a refused count" grep -qE "summary client=key:.* refused=[1-9]" "$T/h1.audit"
check "audit: other's not-allowed request is in its summary" \
    grep -qE "summary client=other .* not-allowed=[1-9]" "$T/h1.audit"
check "audit: edge's unknown key is in its summary" \
    grep -qE "summary client=edge .* unknown-key=[1-9]" "$T/h1.audit"
check "audit: the revoked client's request on its old connection is in a summary" \
    grep -qF "summary client=key:$(z85 edge) " "$T/h1.audit"
rl=$(grep -oE 'summary client=other .* rate-limited=[0-9]+' "$T/h3.audit" | grep -oE '[0-9]+$' |
    awk '{s += $1} END {print s + 0}')
check "audit: h3's $limited rate-limited answers to other are summed ($rl)" test "$rl" -ge "$limited"
check "audit: ... in at most 2 lines, not one per request" \
    test "$(grep -c 'summary client=other ' "$T/h3.audit")" -le 2

# ---- start-up failures ------------------------------------------------------------------
mkdir -p "$T/empty.d"
cp "$T/split1/$KEY1.h2.share" "$T/empty.d/"
"$SH" run --key "$T/h1.key" --shares "$T/empty.d" --allow "$T/h3.allow" \
    --bind 'tcp://127.0.0.1:*' --allow-unlocked 2>"$T/err"
st=$?
check "no share for this holder: exit non-zero" test $st -ne 0
check "no share for this holder: one clear line" grep -q 'no usable share for holder h1' "$T/err"
echo "client x" >"$T/bad.allow"
"$SH" run --key "$T/h1.key" --shares "$T/h1.d" --allow "$T/bad.allow" \
    --bind 'tcp://127.0.0.1:*' --allow-unlocked 2>"$T/err"
st=$?
check "bad allow-list: exit non-zero naming the line" test $st -ne 0 -a -n "$(grep 'line 1' "$T/err")"
"$SH" run --shares "$T/h1.d" 2>"$T/err"
check "missing options: exit non-zero" test $? -ne 0
"$SH" run --key "$T/h1.key" --shares "$T/h1.d" --allow "$T/h3.allow" \
    --bind 'tcp://127.0.0.1:*' --allow-unlocked 2>"$T/err"
st=$?
check "no --audit-log: refused, naming --audit-log stderr" \
    test $st -ne 0 -a -n "$(grep -- '--audit-log stderr' "$T/err")"
ln -s "$T/elsewhere" "$T/link.audit"
"$SH" run --key "$T/h1.key" --shares "$T/h1.d" --allow "$T/h3.allow" \
    --bind 'tcp://127.0.0.1:*' --allow-unlocked --audit-log "$T/link.audit" 2>"$T/err"
st=$?
check "an audit log path that is a symlink: refused, nothing created through it" \
    test $st -ne 0 -a -n "$(grep 'symbolic link' "$T/err")" -a ! -e "$T/elsewhere"
"$SH" --help >"$T/err" 2>&1
check "--help exits 0 and documents the allow-list" grep -q 'client NAME CURVE_PUBLIC_Z85' "$T/err"
head -c 300 /dev/urandom >"$T/h3.d/$KEY1.corrupt.share"
start_holder h3
check "a corrupt share file is reported and the rest served" \
    grep -q "skipping $KEY1.corrupt.share" "$T/h3.log"
check "the holder still started" test -n "$h3_ep"
kill -TERM "$h3_pid" 2>/dev/null
wait "$h3_pid" 2>/dev/null

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
