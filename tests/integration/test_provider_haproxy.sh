#!/usr/bin/env bash
# Debian's HAProxy 2.6, unmodified and multi-threaded, serving HTTPS with a
# 2-of-3 split key through splitkey.so: `ssl crt` names one file holding the
# certificate and the key reference, as it would hold the certificate and the
# key. With ssl-mode-async, handshakes waiting for the combiner pause their
# ASYNC job and the thread goes on. The same curl checks as for nginx, and
# many handshakes at once over the threads.
# Usage: test_provider_haproxy.sh BUILD_DIR
set -u
# shellcheck source=tests/integration/lib_provider.sh
source "$(dirname "$0")/lib_provider.sh"

HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { echo "FAIL: setup: haproxy is not installed (tools/lib/deps.sh)"; exit 1; }

PROV_TIMEOUT_MS=3000
lib_provider_init provider-haproxy "${1:-}"
lib_provider_key www
lib_provider_start
P_HA=$P_FREE
cat www.pem www.ref.pem >www.crt-and-ref.pem

run_haproxy() { # ASYNC: "ssl-mode-async" or ""
    cat >haproxy.cfg <<EOC
global
    nbthread 4
    $1
    tune.ssl.default-dh-param 2048
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:$P_HA ssl crt $T/www.crt-and-ref.pem ssl-min-ver TLSv1.2 ciphers ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256
    http-request return status 200 content-type text/plain string "hello from haproxy"
EOC
    lib_provider_exec "$HAPROXY" -db -f haproxy.cfg >>haproxy.log 2>&1 &
    HA_PID=$!
    PIDS+=("$HA_PID")
}

get() {
    env -u LD_PRELOAD -u OPENSSL_CONF curl -s --max-time 10 --cacert ca.pem \
        --resolve www:$P_HA:127.0.0.1 "$@" "https://www:$P_HA/"
}

for mode in "" ssl-mode-async; do
    label=${mode:-blocking}
    run_haproxy "$mode"
    for _ in $(seq 1 50); do
        get >/dev/null && break
        sleep 0.1
    done
    lib_provider_tls_checks "hello from haproxy" "$label"
    # 64 handshakes, 16 at a time, over 4 threads.
    seq 1 64 | xargs -P 16 -I{} env -u LD_PRELOAD -u OPENSSL_CONF curl -s --max-time 15 --cacert ca.pem \
        --resolve www:$P_HA:127.0.0.1 "https://www:$P_HA/" -o "par.{}.out"
    n_ok=$(cat par.*.out 2>/dev/null | grep -o 'hello from haproxy' | wc -l)
    rm -f par.*.out
    check "$label: 64 of 64 concurrent handshakes ($n_ok)" test "$n_ok" -eq 64
    kill "$H1_PID" 2>/dev/null
    n_ok=$(lib_provider_served 5 "hello from haproxy")
    check "$label: holder h1 gone: 5 of 5 served ($n_ok)" test "$n_ok" -eq 5
    lib_provider_combiner_outage "$HA_PID" "hello from haproxy" "$label"
    kill "$HA_PID"
    wait "$HA_PID" 2>/dev/null
done

check "no sanitizer report from a program with the module" lib_provider_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
