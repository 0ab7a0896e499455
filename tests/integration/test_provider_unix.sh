#!/usr/bin/env bash
# splitkey.so over unix:// (a SOCK_SEQPACKET socket, the edge's channel)
# instead of ZeroMQ ipc://: key references written with
# `keysplit pem --combiner unix://...`, a real combiner listening there, two
# real holders, Debian's openssl and nginx (2 workers).
#   - pkeyutl -sign through the reference equals the whole key's signature
#   - nginx serves TLS 1.3, TLS 1.2 ECDHE and RSA key exchange, from both
#     workers, each with its own connection
#   - killing the combiner fails handshakes fast; they are served again
#     from the moment it is back (operations are sent again on the new
#     connection)
#   - another uid (nobody) at the socket it may not open: "not-allowed" at
#     once, not an I/O error
#   - a combiner whose client lines leave this uid out: the operation ends
#     "not-allowed" within the timeout, the combiner logs the refusal, and
#     nothing is served
# Usage: test_provider_unix.sh BUILD_DIR
set -u
# shellcheck source=tests/integration/lib_provider.sh
source "$(dirname "$0")/lib_provider.sh"

PROV_TIMEOUT_MS=2000
lib_provider_init provider-unix "${1:-}"
COMB_EP=unix://$T/combiner.sock
lib_provider_key www
lib_provider_start
P_NGX=$P_FREE

check "the reference names the unix:// endpoint" \
    bash -c "sed '1d;\$d' www.ref.pem | base64 -d | grep -qx 'combiner unix://$T/combiner.sock'"

printf 'to be signed over unix://\n' >msg.txt
openssl dgst -sha256 -binary -out msg.sha256 msg.txt
openssl pkeyutl -sign -inkey www.ref.pem -pkeyopt digest:sha256 -in msg.sha256 \
    -out sig.ref 2>err.txt
openssl pkeyutl -sign -inkey www.key -pkeyopt digest:sha256 -in msg.sha256 -out sig.key
check "pkeyutl -sign over unix:// equals the whole key's signature" cmp -s sig.ref sig.key

lib_provider_nginx_start 2 "$T/www.ref.pem" "
        ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / { return 200 \"hello from nginx pid \$pid\n\"; }"

get() { lib_provider_nginx_get "$@"; }
lib_provider_tls_checks "hello from nginx" "unix://"

read -r n_ok n_workers < <(lib_provider_nginx_workers 24 "hello from nginx")
check "unix://: 24 of 24 handshakes ($n_ok)" test "$n_ok" -eq 24
check "unix://: served by both workers ($n_workers)" test "$n_workers" -eq 2
# No ZeroMQ between a worker and the combiner: a worker that signed runs its
# own thread and the module's I/O thread, not ZeroMQ's I/O and reaper threads
# (over ipc:// it runs four).
threads=$(for w in $(pgrep -P "$NGX_PID"); do ls "/proc/$w/task" | wc -l; done | sort -u | xargs)
check "unix://: each worker runs 2 threads, none of ZeroMQ's ($threads)" test "$threads" = 2

lib_provider_combiner_outage "$NGX_PID" "hello from nginx" "unix://"

# Another uid at the socket (0600, in this test's 0700 directory): the
# connect is refused with EACCES, which the module reports as the door's
# refusal. Only the public files are copied where nobody may read them.
NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
if "${NOBODY[@]}" true 2>/dev/null; then
    pub=$(mktemp -d /tmp/spk-provider-nobody.XXXXXX)
    chmod 755 "$pub"
    cp www.ref.pem msg.sha256 openssl.cnf "$pub/"
    chmod 644 "$pub"/*
    start=$(date +%s%N)
    out=$(cd "$pub" && "${NOBODY[@]}" env OPENSSL_CONF="$pub/openssl.cnf" \
        ${LIB_PROVIDER_PRELOAD:+LD_PRELOAD=$LIB_PROVIDER_PRELOAD} \
        ASAN_OPTIONS=detect_leaks=0:log_path="$pub/asan-report" \
        UBSAN_OPTIONS=print_stacktrace=1:log_path="$pub/asan-report" \
        openssl pkeyutl -sign -inkey www.ref.pem -pkeyopt digest:sha256 -in msg.sha256 \
        -out /dev/null 2>&1)
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    check "another uid at the socket: refused (exit $rc)" test "$rc" -ne 0
    check "another uid at the socket: not-allowed, not an I/O error" \
        grep -q "combiner says not-allowed" <<<"$out"
    check "another uid at the socket: at once (${ms} ms, no wait for a combiner)" test "$ms" -lt 900
    check "another uid at the socket: no sanitizer report" \
        bash -c "! grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' $pub/asan-report.* 2>/dev/null"
    rm -rf "$pub"
else
    fail "setpriv --reuid=nobody does not work here (the second-uid check needs root)"
fi

# A combiner that does not let this uid in closes each connection unanswered.
lib_provider_combiner_stop
PROV_COMB_CLIENTS="client someone-else uid 65534 sign,tls" lib_provider_combiner_start
start=$(date +%s%N)
openssl pkeyutl -sign -inkey www.ref.pem -pkeyopt digest:sha256 -in msg.sha256 \
    -out sig.refused 2>refused.txt
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "uid not let in: pkeyutl fails (exit $rc)" test "$rc" -ne 0
check "uid not let in: it says not-allowed" grep -q "combiner says not-allowed" refused.txt
check "uid not let in: it failed in ${ms} ms (timeout-ms 2000)" test "$ms" -lt 3000
check "uid not let in: the combiner logs the refusal" \
    grep -q "refused a connection from uid $(id -u)" combiner.log
check "uid not let in: no signature written" test ! -s sig.refused
out=$(get --tlsv1.3)
check "uid not let in: nginx serves nothing" test -z "$out"
check "uid not let in: nginx names the reason" grep -q "not-allowed" ngx/logs/error.log

check "no worker crashed" bash -c "! grep -q 'exited on signal' ngx/logs/error.log"
check "no sanitizer report from a program with the module" lib_provider_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
