#!/usr/bin/env bash
# splitkey.so reaching its combiner over tcp:// with CURVE: the combiner
# listens on 127.0.0.1 with an allow file and a `client NAME curve` line; the
# key reference names that endpoint, the combiner's CURVE public key and the
# client's key file (keysplit pem --combiner-pub --client-key).
#   - openssl pkeyutl -sign equals the whole key's signature; s_server -key
#     REF serves s_client; Debian's nginx (2 workers) serves TLS 1.3 and
#     TLS 1.2 with RSA key exchange
#   - a client key not in the allow file: "splitkey: combiner says
#     not-allowed"; a reference naming another combiner key:
#     "splitkey: combiner broke off the CURVE handshake"; a client key file
#     others may read is refused; each without a hang or a crash, and nginx
#     fails those handshakes and stays up; an nginx worker refused once is
#     let in when the allow file is fixed and reloaded, without a restart
#   - a combiner killed (SIGKILL) with an operation in flight and restarted
#     at once: the module sends it again and it is signed, not timed out;
#     one asked for while a combiner restarts with a holder down (1.5 s
#     before it serves) waits for it and is signed, also when that combiner
#     is killed once more while the module is in its CURVE handshake
#   - valgrind: clean over the CURVE path, allowed and refused
# Usage: test_provider_tcp.sh BUILD_DIR
set -u
# shellcheck source=tests/integration/lib_provider.sh
source "$(dirname "$0")/lib_provider.sh"

PROV_TIMEOUT_MS=4000
lib_provider_init provider-tcp "${1:-}"
P_COMB=$P_FREE
P_NGX=$((P_FREE + 1))
P_SSL=$((P_FREE + 2))
COMB_EP=tcp://127.0.0.1:$P_COMB
for k in cli stranger; do
    "$KS" keygen --name $k --out keys >/dev/null || die "keygen $k"
done
PROV_PEM_ARGS="--combiner-pub keys/comb.pub --client-key $T/keys/cli.key"
lib_provider_key www
echo "client cli $(pubkey keys/cli.pub) *" >comb-allow.txt
PROV_COMB_CLIENTS=$'allow comb-allow.txt\nclient cli curve sign,tls'
lib_provider_start

no_crash() { ! grep -qE 'Segmentation|Aborted|core dumped|AddressSanitizer' "$1"; }
# sign_ms REF: pkeyutl -sign of msg's digest with REF into REF.sig, errors in
# REF.err; prints how long it took (ms); its exit status is openssl's.
sign_ms() {
    local start rc
    start=$(date +%s%N)
    openssl pkeyutl -sign -inkey "$1" -in msg.dgst -pkeyopt digest:sha256 -out "$1.sig" 2>"$1.err"
    rc=$?
    echo $((($(date +%s%N) - start) / 1000000))
    return $rc
}

echo "a message for the combiner behind CURVE" >msg
openssl dgst -sha256 -binary msg >msg.dgst
check "the reference names the tcp:// endpoint and the client key file" \
    bash -c "sed '1d;\$d' www.ref.pem | base64 -d | grep -q '$COMB_EP' &&
        sed '1d;\$d' www.ref.pem | base64 -d | grep -q '$T/keys/cli.key'"
sign_ms www.ref.pem >/dev/null
env -u OPENSSL_CONF openssl pkeyutl -sign -inkey www.key -in msg.dgst -pkeyopt digest:sha256 \
    -out whole.sig
check "pkeyutl -sign over tcp+CURVE equals the whole key's signature" cmp -s www.ref.pem.sig whole.sig

# s_client_to OUT VERSION_FLAGS...: a handshake (the client without the
# module) with the s_server on P_SSL; its output in OUT.
s_client_to() {
    local out=$1
    shift
    echo | env -u OPENSSL_CONF -u LD_PRELOAD timeout 10 openssl s_client \
        -connect "127.0.0.1:$P_SSL" -servername www -CAfile ca.pem -verify_return_error "$@" \
        >"$out" 2>&1
}
lib_provider_s_server "$P_SSL" s_server.out
for v in "-tls1_3" "-tls1_2 -cipher AES128-GCM-SHA256"; do
    # shellcheck disable=SC2086 # v: words
    s_client_to s_client.out $v
    check "s_server -key REF (tcp+CURVE) serves s_client ($v)" \
        grep -q "Verify return code: 0 (ok)" s_client.out
done
kill "$S_PID" 2>/dev/null
wait "$S_PID" 2>/dev/null

lib_provider_nginx_start 2 "$T/www.ref.pem" "
        ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / { return 200 \"hello from nginx over curve\n\"; }"
get() { lib_provider_nginx_get "$@"; }
lib_provider_tls_checks "hello from nginx over curve" "nginx over tcp+CURVE"
n_ok=$(lib_provider_served 8 "hello from nginx over curve")
check "nginx over tcp+CURVE: 8 of 8 more ($n_ok)" test "$n_ok" -eq 8

# ---- refused ---------------------------------------------------------------------------
# refused NAME DESC REASON PEM_ARGS...: a reference NAME.ref.pem to the same
# key written with PEM_ARGS; pkeyutl -sign with it fails, not hung (the
# timeout is 3 s: REASON shows it was not the timeout), naming REASON.
refused() {
    local name=$1 desc=$2 reason=$3 ms rc
    shift 3
    "$KS" pem --record "shares/$(cat www.keyid).record" --combiner "$COMB_EP" "$@" \
        --out "$name.ref.pem" >/dev/null || die "keysplit pem ($desc)"
    ms=$(sign_ms "$name.ref.pem")
    rc=$?
    check "$desc: refused (exit $rc) in ${ms} ms with '$reason'" \
        bash -c "[ $rc -ne 0 ] && [ $ms -lt 5000 ] && grep -qF \"\$1\" $name.ref.pem.err" _ "$reason"
    check "$desc: no crash" no_crash "$name.ref.pem.err"
}
# A client key the allow file does not name: the combiner's ZAP refuses the
# CURVE handshake, which the module reports as not-allowed, without waiting.
refused stranger "client key not allowed" "splitkey: combiner says not-allowed" \
    --combiner-pub keys/comb.pub --client-key "$T/keys/stranger.key"
check "client key not allowed: the combiner names the refused key" \
    grep -q "refused a connection from key .*client key not in the allow file" combiner.log
# Another combiner key in the reference (h1's): the combiner cannot open the
# client's HELLO and drops the connection.
refused wrongsrv "wrong combiner key" "splitkey: combiner broke off the CURVE handshake" \
    --combiner-pub keys/h1.pub --client-key "$T/keys/cli.key"
# The client key file readable by others: the module will not use it.
cp keys/cli.key open.key
chmod 644 open.key
refused open "client key file mode 644" "splitkey: permissions too open" \
    --combiner-pub keys/comb.pub --client-key "$T/open.key"
# nginx with a refused reference: handshakes fail fast, the workers live on.
kill "$NGX_PID"
wait "$NGX_PID" 2>/dev/null
lib_provider_nginx_start 2 "$T/stranger.ref.pem" "
        location / { return 200 \"should not be served\n\"; }"
start=$(date +%s%N)
get --tlsv1.3 >/dev/null
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "nginx, client key not allowed: the handshake fails (curl $rc) in ${ms} ms" \
    bash -c "[ $rc -ne 0 ] && [ $ms -lt 5000 ]"
check "nginx, client key not allowed: its log names the reason" \
    grep -q "splitkey: combiner says not-allowed" ngx/logs/error.log
check "nginx, client key not allowed: both workers alive ($(pgrep -P "$NGX_PID" | wc -l))" \
    test "$(pgrep -P "$NGX_PID" | wc -l)" -eq 2
check "no worker crashed" bash -c "! grep -q 'exited on signal' ngx/logs/error.log"

# A worker refused once gets in when the allow file is fixed and the
# combiner reloads it, without a restart: ZeroMQ never connects again after
# a refused handshake; the module does (after 250 ms, doubling to 5 s). One
# worker, so the page comes from the very process that was refused.
# comb_reload: SIGHUP to the combiner, back when it says it reloaded
comb_reload() {
    local n0
    n0=$(grep -c "combiner: reloaded" combiner.log)
    kill -HUP "$COMB_PID"
    for _ in $(seq 1 100); do
        [ "$(grep -c "combiner: reloaded" combiner.log)" -gt "$n0" ] && return 0
        sleep 0.1
    done
    return 1
}
kill "$NGX_PID"
wait "$NGX_PID" 2>/dev/null
lib_provider_nginx_start 1 "$T/stranger.ref.pem" "
        location / { return 200 \"let in after the reload\n\"; }"
worker=$(pgrep -P "$NGX_PID")
out=$(get --tlsv1.3)
check "one worker, client key not allowed: refused ($out)" test -z "$out"
echo "client cli $(pubkey keys/stranger.pub) *" >comb-allow.txt
check "the allow file now names the key: the combiner reloads it" comb_reload
for _ in $(seq 1 40); do # the module tries again at most every 5 s
    out=$(get --tlsv1.3)
    [ "$out" = "let in after the reload" ] && break
    sleep 0.25
done
check "the refused worker is let in without a restart ($out)" \
    test "$out" = "let in after the reload"
check "... the same worker, not a new one ($worker)" test "$(pgrep -P "$NGX_PID")" = "$worker"
kill "$NGX_PID"
wait "$NGX_PID" 2>/dev/null
echo "client cli $(pubkey keys/cli.pub) *" >comb-allow.txt
check "the allow file back as it was: the combiner reloads it" comb_reload

# A combiner killed with an operation in flight and restarted at once: the
# module sends the operation again on the new connection. s_server's first
# handshake connects the module; then the combiner is stopped (SIGSTOP), so
# that the next handshake's signature is surely in flight on that connection
# when the combiner is killed. libspk_zmqeof.so holds s_server's ZeroMQ I/O
# thread between reporting the disconnect and detaching the dead
# connection: what the module sends again at once goes into the dead one,
# and only the copy it sends once the new connection is up gets there.
ZMQEOF=$BUILD/tests/libspk_zmqeof.so
[ -f "$ZMQEOF" ] || die "missing $ZMQEOF"
LIB_PROVIDER_PRELOAD="${LIB_PROVIDER_PRELOAD:+$LIB_PROVIDER_PRELOAD }$ZMQEOF" \
    lib_provider_s_server "$P_SSL" s_server2.out
s_client_to s_client_a.out -tls1_3
check "s_server with the module connected to the combiner" grep -q "Verify return code: 0 (ok)" \
    s_client_a.out
kill -STOP "$COMB_PID"
start=$(date +%s%N)
s_client_to s_client_b.out -tls1_3 &
CLIENT=$!
sleep 0.5
lib_provider_combiner_stop -9
lib_provider_combiner_start
wait "$CLIENT"
ms=$((($(date +%s%N) - start) / 1000000))
check "combiner killed with a signature in flight and restarted: the handshake completes in $ms ms (timeout-ms $PROV_TIMEOUT_MS)" \
    bash -c "grep -q 'Verify return code: 0 (ok)' s_client_b.out && [ $ms -lt $PROV_TIMEOUT_MS ]"
# sign_across_restart MS_FILE SECONDS...: a new process (openssl pkeyutl,
# the module never connected before) asks for a signature; SECONDS later
# the combiner is killed, if it runs, and started again, once per SECONDS
# (still warming up, but listening, when more follow). How long the
# signature took goes to MS_FILE, the module's error (if any) to SIGN_ERR;
# true if the signature is the whole key's.
sign_across_restart() {
    local signer ms_file=$1 left s
    shift
    left=$#
    rm -f www.ref.pem.sig
    sign_ms www.ref.pem >"$ms_file" &
    signer=$!
    for s in "$@"; do
        left=$((left - 1))
        sleep "$s"
        lib_provider_combiner_stop -9
        if [ "$left" -gt 0 ]; then
            lib_provider_combiner_start listening
        else
            lib_provider_combiner_start
        fi
    done
    wait "$signer"
    SIGN_ERR=$(grep -m 1 splitkey www.ref.pem.err)
    cmp -s www.ref.pem.sig whole.sig
}
# The combiner down when the signature is asked for, started again at once
# (as systemd's Restart= would) with holder h2 down (2-of-3: its own share
# and h1's suffice). It then waits all of its 1.5 s for h2 before it serves,
# longer than the module waits for a combiner to connect to (1 s); it
# listens from its start, so the module's connection waits in its handshake
# instead, up to the operation's deadline.
kill "$H2_PID"
wait "$H2_PID" 2>/dev/null
lib_provider_combiner_stop -9
signed=no
sign_across_restart restart.ms 0.2 && signed=yes
check "a signature asked for as the combiner restarts, waiting 1.5 s for a holder that is down: made (in $(cat restart.ms) ms)${SIGN_ERR:+ ($SIGN_ERR)}" \
    bash -c "[ '$signed' = yes ] && [ $(cat restart.ms) -lt $PROV_TIMEOUT_MS ]"
# The combiner killed while the module waits in its CURVE handshake (the
# combiner still warming up, h2 still down): the connection breaks off
# mid-handshake, as it does for a wrong combiner key, but once is no wrong
# key. The module waits for the combiner started again, which signs.
lib_provider_combiner_stop -9
lib_provider_combiner_start listening
signed=no
sign_across_restart midhs.ms 0.5 && signed=yes
check "a combiner killed while a new process is in its CURVE handshake, then restarted: signed (in $(cat midhs.ms) ms)${SIGN_ERR:+ ($SIGN_ERR)}" \
    bash -c "[ '$signed' = yes ] && [ $(cat midhs.ms) -lt $PROV_TIMEOUT_MS ]"
# Twice in a row, as a combiner that crash-loops would be: the second break
# comes 0.7 s into its connection, long after a combiner with another key
# would have dropped it (at the HELLO), so it is no second sign of a wrong
# key either. The module's deadline is longer for this one: the combiner
# started a third time waits its 1.5 s for h2 before it signs.
sed "s/^timeout-ms = .*/timeout-ms = $((PROV_TIMEOUT_MS + 2000))/" openssl.cnf >long.cnf
lib_provider_combiner_stop -9
lib_provider_combiner_start listening
signed=no
OPENSSL_CONF=$T/long.cnf sign_across_restart twice.ms 0.3 0.7 && signed=yes
check "a combiner killed twice while a new process is in its CURVE handshake, then restarted: signed (in $(cat twice.ms) ms)${SIGN_ERR:+ ($SIGN_ERR)}" \
    bash -c "[ '$signed' = yes ] && [ $(cat twice.ms) -lt $((PROV_TIMEOUT_MS + 2000)) ]"
kill "$S_PID" 2>/dev/null
wait "$S_PID" 2>/dev/null

# The CURVE path under memcheck: the client key file is read into and freed
# from sodium_malloc memory, once allowed and once refused.
if command -v valgrind >/dev/null && ! lib_edge_sanitized; then
    # Under memcheck a CURVE handshake alone takes seconds on a busy machine.
    sed 's/^timeout-ms = .*/timeout-ms = 30000/' openssl.cnf >vg.cnf
    for f in www stranger; do
        OPENSSL_CONF=$T/vg.cnf valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --log-file="vg.$f.%p.log" openssl pkeyutl -sign -inkey $f.ref.pem -in msg.dgst \
            -pkeyopt digest:sha256 -out vg.$f.sig 2>vg.$f.err
        echo $? >vg.$f.rc
    done
    check "valgrind: pkeyutl -sign over tcp+CURVE clean (exit $(cat vg.www.rc))" cmp -s vg.www.sig whole.sig
    check "valgrind: a refused client key clean (exit $(cat vg.stranger.rc), not 99)" \
        bash -c "[ $(cat vg.stranger.rc) -ne 99 ] && [ $(cat vg.stranger.rc) -ne 0 ]"
    check "valgrind: no errors reported" bash -c "! grep -qE '(Invalid|uninitialised|definitely lost)' vg.*.log"
fi
check "the combiner still serves the allowed client" bash -c "$(declare -f sign_ms); sign_ms www.ref.pem >/dev/null"
check "no sanitizer report from a program with the module" lib_provider_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
