#!/usr/bin/env bash
# Debian's nginx, unmodified, serving HTTPS with a 2-of-3 split key through
# splitkey.so: its own config (2 workers) and OPENSSL_CONF, a real combiner
# and two real holders on loopback.
#   - curl gets the page on TLS 1.3, TLS 1.2 ECDHE and TLS 1.2 RSA key
#     exchange, from both workers
#   - `nginx -s reload` keeps serving
#   - killing one holder changes nothing visible
#   - killing the combiner gives handshake failures within the timeout, not a
#     hung worker; serving resumes when it returns
# Usage: test_provider_nginx.sh BUILD_DIR
set -u
# shellcheck source=tests/integration/lib_provider.sh
source "$(dirname "$0")/lib_provider.sh"

PROV_TIMEOUT_MS=2000
lib_provider_init provider-nginx "${1:-}"
lib_provider_key www
lib_provider_start
P_NGX=$P_FREE

lib_provider_nginx_start 2 "$T/www.ref.pem" "
        ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / { return 200 \"hello from nginx pid \$pid\n\"; }"

get() { lib_provider_nginx_get "$@"; }
lib_provider_tls_checks "hello from nginx"

# Both workers sign: each answer names its worker's pid.
read -r n_ok n_workers < <(lib_provider_nginx_workers 24 "hello from nginx")
check "24 of 24 handshakes ($n_ok)" test "$n_ok" -eq 24
check "served by both workers ($n_workers)" test "$n_workers" -eq 2

lib_provider_run "$NGINX" -p "$T/ngx" -c "$T/ngx/nginx.conf" -s reload 2>>ngx/stdout.log
sleep 1
n_ok=$(lib_provider_served 10 "hello from nginx")
check "after nginx -s reload: 10 of 10 ($n_ok)" test "$n_ok" -eq 10

kill "$H1_PID"
wait "$H1_PID" 2>/dev/null
n_ok=$(lib_provider_served 10 "hello from nginx")
check "holder h1 killed: 10 of 10 still served ($n_ok)" test "$n_ok" -eq 10

lib_provider_combiner_stop -9
start=$(date +%s%N)
get --tlsv1.3 >down.txt
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "combiner killed: the handshake fails (curl exit $rc)" test "$rc" -ne 0
check "combiner killed: it failed in ${ms} ms, not hung (timeout-ms 2000)" test "$ms" -lt 4000
check "combiner killed: nginx names the reason" \
    grep -q "splitkey: combiner" ngx/logs/error.log
n_workers=$(pgrep -P "$NGX_PID" | wc -l)
check "combiner killed: both workers alive ($n_workers)" test "$n_workers" -eq 2

# From the moment the combiner says it serves, every handshake is served:
# each worker's module waits for its own reconnection.
lib_provider_combiner_start
n_ok=$(lib_provider_served 10 "hello from nginx")
check "combiner back: 10 of 10 served again ($n_ok)" test "$n_ok" -eq 10

# Bad references: `nginx -t` refuses its configuration, naming the module's
# reason where OpenSSL passes it on (a wrong key id), OpenSSL's own for a
# body that is no PEM at all; never a crash.
lib_provider_bad_refs www
for bad in wrongid corrupt; do
    sed "s|ssl_certificate_key .*;|ssl_certificate_key $T/www.$bad.ref.pem;|" ngx/nginx.conf \
        >ngx/bad.conf
    lib_provider_run "$NGINX" -t -p "$T/ngx" -c "$T/ngx/bad.conf" >ngx/bad.$bad.out 2>&1
    echo $? >ngx/bad.$bad.rc
done
check "nginx -t, reference with a wrong key id: refused ($(cat ngx/bad.wrongid.rc)) naming it" \
    bash -c "[ $(cat ngx/bad.wrongid.rc) -ne 0 ] &&
        grep -q \"splitkey: the key reference's key id is not its public key's\" ngx/bad.wrongid.out"
check "nginx -t, corrupted reference: refused ($(cat ngx/bad.corrupt.rc)) with a reason" \
    bash -c "[ $(cat ngx/bad.corrupt.rc) -ne 0 ] && grep -q 'cannot load certificate key' ngx/bad.corrupt.out"
check "nginx -t, bad references: no crash" \
    bash -c "! grep -qE 'Segmentation|Aborted|AddressSanitizer|runtime error' ngx/bad.*.out"
check "no worker crashed" bash -c "! grep -q 'exited on signal' ngx/logs/error.log"
check "no sanitizer report from a program with the module" lib_provider_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
