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

lib_provider_init provider-curl "${1:-}"
lib_edge_mkcert www 2048 || die "server certificate"
lib_provider_key client
lib_provider_start
P_NGX=$P_FREE

# nginx runs without the module: only curl's key is split.
lib_provider_nginx_start 1 "$T/www.key" "
        ssl_client_certificate $T/ca.pem;
        ssl_verify_client on;
        location / { return 200 \"hello \$ssl_client_s_dn\n\"; }" plain

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
