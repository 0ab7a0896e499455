#!/usr/bin/env bash
# The edge with a threshold-mode key (proto/PROTOCOL.md section 5.1) beside a
# rebuild-mode one, tls12-rsa-key-exchange on: the threshold certificate is
# never chosen with TLS 1.2 RSA key exchange (the ClientHello callback gives
# that connection a list without it), so a client offering only RSA key
# exchange gets a handshake failure and no key operation is asked for (edge
# and combiner metrics), while the rebuild-mode certificate on the same edge
# still completes one; both with either certificate as the default (a reload
# swaps them). `edge check` names the threshold certificate.
# Usage: test_edge_threshold.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init test-edge-threshold "${1:-}"

P_MET=$P_FREE
P_CMET=$((P_FREE + 1))

lib_edge_pki
lib_edge_mkcert t.test 2048 || die "t.test certificate"
lib_edge_mkcert r.test 2048 || die "r.test certificate"
lib_edge_holder_keys
T_ID=$(lib_edge_split t.test threshold) || die "split t.test --mode threshold"
R_ID=$(lib_edge_split r.test) || die "split r.test"
rm -f t.test.key r.test.key
check "t.test's record is in threshold mode" grep -qx "mode threshold" "shares/$T_ID.record"
check "r.test's record is in rebuild mode" grep -q "^field " "shares/$R_ID.record"
lib_edge_holders
lib_edge_origin

# edge_conf FIRST SECOND: the edge's file, FIRST the default certificate;
# the combiner's file comb.conf serves the keys in $COMB_KEYS.
COMB_KEYS="r.test"
edge_conf() {
    lib_edge_conf "$1" "$2"
    echo "metrics 127.0.0.1:$P_MET"
    echo "tls12-rsa-key-exchange yes"
    {
        lib_edge_comb_conf $COMB_KEYS
        echo "metrics 127.0.0.1:$P_CMET"
    } >comb.conf
}
edge_conf t.test r.test >edge.conf
lib_edge_start edge.conf

metrics() { curl -sS --max-time 5 http://127.0.0.1:$P_MET/metrics; }
keyops() { metrics | awk '/^spk_edge_key_operations_total\{/ { s += $2 } END { print s + 0 }'; }
comb_ops() {
    curl -sS --max-time 5 http://127.0.0.1:$P_CMET/metrics |
        awk '/^spk_combiner_operations_total\{/ { s += $2 } END { print s + 0 }'
}
sclient() { # SERVERNAME ("": none) ARGS...: a GET through the edge
    local sn=(-servername "$1")
    [ -n "$1" ] || sn=(-noservername)
    shift
    printf 'GET /index.html HTTP/1.0\r\n\r\n' |
        timeout 20 openssl s_client -connect 127.0.0.1:$P_EDGE "${sn[@]}" -CAfile ca.pem \
            -ign_eof "$@" 2>&1
}
# rsa_kx_refused NAME: a client offering only TLS 1.2 RSA key exchange gets a
# handshake failure alert, and neither the edge nor the combiner counts an
# operation.
rsa_kx_refused() {
    local k0 c0 k1 c1
    k0=$(keyops)
    c0=$(comb_ops)
    sclient "$1" -tls1_2 -cipher AES128-GCM-SHA256:AES256-GCM-SHA384 </dev/null >"refused-$1.out"
    k1=$(keyops)
    c1=$(comb_ops)
    echo "      $1: edge key operations $k0 -> $k1, combiner operations $c0 -> $c1"
    grep -q "alert handshake failure" "refused-$1.out" &&
        ! grep -q "^New, TLSv1.2, Cipher is" "refused-$1.out" &&
        [ "$k0" = "$k1" ] && [ "$c0" = "$c1" ]
}
# rsa_kx_served NAME: the same client completes a handshake with RSA key
# exchange, the origin's page comes back, and the edge counts a decryption.
rsa_kx_served() {
    local d0 d1
    d0=$(metrics | awk '/^spk_edge_key_operations_total\{kind="decrypt",result="ok"\}/ { print $2 }')
    sclient "$1" -tls1_2 -cipher AES128-GCM-SHA256 </dev/null >"served-$1.out"
    d1=$(metrics | awk '/^spk_edge_key_operations_total\{kind="decrypt",result="ok"\}/ { print $2 }')
    grep -q "^New, TLSv1.2, Cipher is AES128-GCM-SHA256" "served-$1.out" &&
        grep -q "hello from the origin" "served-$1.out" && [ "${d1:-0}" -eq $((${d0:-0} + 1)) ]
}

# ---- t.test the default certificate ------------------------------------------------
check "threshold t.test (default): TLS 1.2 RSA key exchange refused, no key operation" \
    rsa_kx_refused t.test
check "threshold t.test (default, no SNI): refused the same" rsa_kx_refused ""
check "rebuild r.test on the same edge: TLS 1.2 RSA key exchange served" rsa_kx_served r.test
check "the edge logs the refusal as no shared cipher" \
    grep -q "handshake failed: .*no shared cipher" edge.log

# ---- after a reload, r.test the default certificate ------------------------------------
edge_conf r.test t.test >edge.conf
kill -HUP $EDGE_PID
sleep 0.5
check "reload with r.test first" grep -q "edge: reloaded" edge.log
check "rebuild r.test (default): TLS 1.2 RSA key exchange served" rsa_kx_served r.test
check "rebuild r.test (default, no SNI): served the same" rsa_kx_served ""
check "threshold t.test: TLS 1.2 RSA key exchange refused, no key operation" rsa_kx_refused t.test

# ---- edge check names the threshold certificate -------------------------------------------
timeout 60 "$EDGE" check edge.conf >check.out 2>&1
check "edge check: a line for t.test.pem, threshold mode, no RSA key exchange" \
    grep -q "^edge check: certificate t.test.pem: its key is in threshold mode (2 of 3 .*TLS 1.2 RSA key exchange is never offered for it (tls12-rsa-key-exchange yes applies to rebuild-mode certificates only)" check.out
check "edge check: no such line for the rebuild-mode r.test.pem" \
    eval '! grep -q "r.test.pem: its key is in threshold mode" check.out'
check "edge check: tls12-ciphers with only RSA key exchange leave a threshold certificate nothing" \
    bash -c "{ cat edge.conf; echo 'tls12-ciphers AES128-GCM-SHA256'; } >only-rsa.conf &&
        ! timeout 60 '$EDGE' check only-rsa.conf >check-only-rsa.out 2>&1 &&
        grep -q \"threshold-mode certificates: tls12-ciphers 'AES128-GCM-SHA256': only RSA key exchange, which a threshold-mode key never serves\" check-only-rsa.out"

check "the edge process is alive" kill -0 $EDGE_PID
kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null
check "no sanitizer report in any log" lib_edge_no_sanitizer_reports
if [ $failed -ne 0 ]; then
    echo "--- edge.log"
    tail -20 edge.log
    echo "--- check.out"
    tail -20 check.out
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
