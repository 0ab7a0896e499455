#!/usr/bin/env bash
# curl as a client with a split key: mutual TLS against Debian's nginx that
# requires a client certificate from the test CA. The client's key is split
# 2-of-3; curl reads its key reference with `--key` through splitkey.so and
# signs its CertificateVerify through the combiner (TLS 1.3 and TLS 1.2).
# nginx itself uses an ordinary key and no module.
# Usage: test_provider_curl.sh BUILD_DIR
set -u
# shellcheck source=tests/integration/lib_provider.sh
source "$(dirname "$0")/lib_provider.sh"

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "FAIL: setup: nginx is not installed (tools/lib/deps.sh)"; exit 1; }

lib_provider_init provider-curl "${1:-}"
lib_edge_mkcert www 2048 || die "server certificate"
lib_provider_key client
lib_provider_start
P_NGX=$P_FREE

mkdir -p ngx/logs ngx/tmp
cat >ngx/nginx.conf <<EOC
worker_processes 1;
daemon off;
user root root;
pid $T/ngx/nginx.pid;
error_log $T/ngx/logs/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $T/ngx/tmp/body;
    proxy_temp_path $T/ngx/tmp/proxy;
    fastcgi_temp_path $T/ngx/tmp/fastcgi;
    uwsgi_temp_path $T/ngx/tmp/uwsgi;
    scgi_temp_path $T/ngx/tmp/scgi;
    server {
        listen 127.0.0.1:$P_NGX ssl;
        server_name www;
        ssl_certificate $T/www.pem;
        ssl_certificate_key $T/www.key;
        ssl_client_certificate $T/ca.pem;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { return 200 "hello \$ssl_client_s_dn\n"; }
    }
}
EOC
# nginx gets no OPENSSL_CONF: it never sees the module.
env -u OPENSSL_CONF -u LD_PRELOAD "$NGINX" -p "$T/ngx" -c "$T/ngx/nginx.conf" \
    -e "$T/ngx/logs/error.log" >ngx/stdout.log 2>&1 &
PIDS+=("$!")

# curl deadlocks in setlocale with the sanitizer runtime preloaded, so a
# sanitizer build's module (which needs that runtime) is driven by the
# openssl CLI's client instead, with the same certificate and reference.
get() {
    if lib_edge_sanitized && [[ " $* " == *" --key "* ]]; then
        local tls=-tls1_3
        [[ " $* " == *" --tls-max 1.2 "* ]] && tls=-tls1_2
        printf 'GET / HTTP/1.0\r\nHost: www\r\n\r\n' |
            openssl s_client -quiet -connect 127.0.0.1:$P_NGX -servername www $tls \
                -CAfile ca.pem -cert client.pem -key client.ref.pem 2>/dev/null | tail -1
        return "${PIPESTATUS[1]}"
    fi
    env -u LD_PRELOAD curl -s --max-time 10 --cacert ca.pem --resolve www:$P_NGX:127.0.0.1 "$@" \
        "https://www:$P_NGX/"
}
for _ in $(seq 1 50); do
    (echo >/dev/tcp/127.0.0.1/$P_NGX) 2>/dev/null && break
    sleep 0.1
done

check "no client certificate: refused by nginx" \
    bash -c "env -u LD_PRELOAD curl -s --max-time 10 --cacert ca.pem --resolve www:$P_NGX:127.0.0.1 https://www:$P_NGX/ | grep -q '400 No required SSL certificate'"
for v in "--tlsv1.3" "--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256" \
    "--tlsv1.2 --tls-max 1.2 --ciphers AES256-GCM-SHA384"; do
    # shellcheck disable=SC2086
    out=$(get $v --cert client.pem --key client.ref.pem)
    check "mutual TLS with a split client key ($v): '$out'" \
        bash -c "[[ '$out' == 'hello CN=client' ]]"
done
lib_provider_combiner_stop
out=$(get --tlsv1.3 --cert client.pem --key client.ref.pem 2>&1)
rc=$?
check "combiner down: curl fails (exit $rc), no page" bash -c "[ $rc -ne 0 ] && [[ '$out' != *hello* ]]"

check "no sanitizer report from a program with the module" lib_provider_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
