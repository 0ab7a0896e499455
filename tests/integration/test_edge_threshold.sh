#!/usr/bin/env bash
# The edge with threshold-mode keys (proto/PROTOCOL.md section 5.1; RSA-2048,
# 3072 and 4096, 2-of-3) beside a rebuild-mode one, tls12-rsa-key-exchange
# on, the combiner holding a key share of each and h1, h2 the others:
#   - curl and `openssl s_client` through the edge to the threshold
#     certificate: TLS 1.3 (RSA-PSS), TLS 1.2 ECDHE with PKCS#1 v1.5 and with
#     PSS signatures (SHA-256, 384, 512; one of each kind for RSA-3072 and
#     4096), each signature checked by the client,
#     each one counted by the edge and the combiner and signed by holders
#     (their audit logs: outcome=signed);
#   - it is never chosen with TLS 1.2 RSA key exchange (the ClientHello
#     callback gives that connection the site's list, without it), so a
#     client offering only RSA key exchange gets a handshake failure and no
#     key operation is asked for (edge and combiner metrics), while the
#     rebuild-mode certificate on the same edge still completes one; both with
#     either certificate as the default (a reload swaps them);
#   - `edge check` names the threshold certificate and passes;
#   - with holder h2 killed the threshold certificate is still served.
# Usage: test_edge_threshold.sh BUILD_DIR
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$SRC/tests/integration/lib_edge.sh"
lib_edge_init test-edge-threshold "${1:-}"

P_MET=$P_FREE
P_CMET=$((P_FREE + 1))

lib_edge_pki
lib_edge_mkcert t.test 2048 || die "t.test certificate"
lib_edge_mkcert r.test 2048 || die "r.test certificate"
# RSA-3072 and 4096 keys of the test data: no slow key generation here.
lib_edge_mkcert t3072.test 3072 "$SRC/tests/data/rsa3072.pem" || die "t3072.test certificate"
lib_edge_mkcert t4096.test 4096 "$SRC/tests/data/rsa4096.pem" || die "t4096.test certificate"
lib_edge_holder_keys
T_ID=$(lib_edge_split t.test threshold) || die "split t.test --mode threshold"
R_ID=$(lib_edge_split r.test) || die "split r.test"
for n in t3072.test t4096.test; do
    lib_edge_split $n threshold >/dev/null || die "split $n --mode threshold"
done
rm -f t.test.key r.test.key t3072.test.key t4096.test.key
check "t.test's record is in threshold mode" grep -qx "mode threshold" "shares/$T_ID.record"
check "r.test's record is in rebuild mode" grep -q "^field " "shares/$R_ID.record"
lib_edge_holders
lib_edge_origin

# edge_conf FIRST SECOND: the edge's file, FIRST the default certificate,
# then the RSA-3072 and 4096 threshold ones; the combiner's file comb.conf
# serves the keys in $COMB_KEYS.
COMB_KEYS="r.test t.test t3072.test t4096.test"
edge_conf() {
    lib_edge_conf "$1" "$2" t3072.test t4096.test
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

# ---- threshold signatures through the edge ------------------------------------------
# signed NAME TYPE/DIGEST ARGS...: a handshake with the client's own check of
# the chain and of the server's signature (of that type and digest), the
# origin's page back, one more signature counted by the edge and by the
# combiner.
sign_ops() {
    metrics | awk '/^spk_edge_key_operations_total\{kind="sign",result="ok"\}/ { print $2 }'
}
signed() {
    local sn=$1 want=$2 out s0 s1 c0 c1
    shift 2
    out="signed-$sn-$*"
    out=${out// /_}
    s0=$(sign_ops)
    c0=$(comb_ops)
    sclient "$sn" -verify_return_error "$@" </dev/null >"$out"
    s1=$(sign_ops)
    c1=$(comb_ops)
    grep -q "^Peer signature type: ${want%/*}\$" "$out" &&
        grep -q "^Peer signing digest: ${want#*/}\$" "$out" &&
        grep -q "Verify return code: 0 (ok)" "$out" &&
        grep -q "hello from the origin" "$out" && [ "${s1:-0}" -eq $((${s0:-0} + 1)) ] &&
        [ "${c1:-0}" -eq $((${c0:-0} + 1)) ]
}
for h in SHA256 SHA384 SHA512; do
    check "threshold t.test: TLS 1.3, RSA-PSS $h" signed t.test RSA-PSS/$h -tls1_3 \
        -sigalgs "rsa_pss_rsae_${h,,}"
    check "threshold t.test: TLS 1.2 ECDHE, PKCS#1 v1.5 $h" signed t.test RSA/$h -tls1_2 \
        -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs "RSA+$h"
    check "threshold t.test: TLS 1.2 ECDHE, RSA-PSS $h" signed t.test RSA-PSS/$h -tls1_2 \
        -cipher ECDHE-RSA-AES256-GCM-SHA384 -sigalgs "rsa_pss_rsae_${h,,}"
done
for n in t3072.test t4096.test; do
    check "threshold $n: TLS 1.3, RSA-PSS SHA256" signed $n RSA-PSS/SHA256 -tls1_3
    check "threshold $n: TLS 1.2 ECDHE, PKCS#1 v1.5 SHA384" signed $n RSA/SHA384 -tls1_2 \
        -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs RSA+SHA384
    check "threshold $n: TLS 1.2 ECDHE, RSA-PSS SHA512" signed $n RSA-PSS/SHA512 -tls1_2 \
        -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs rsa_pss_rsae_sha512
done
curl_get() { # NAME TLS-OPTION...
    local sn=$1
    shift
    curl -sS --max-time 20 --cacert ca.pem --resolve "$sn:$P_EDGE:127.0.0.1" "$@" \
        "https://$sn:$P_EDGE/index.html" 2>>curl.err
}
check "curl: threshold t.test over TLS 1.3" \
    [ "$(curl_get t.test --tlsv1.3)" = "hello from the origin" ]
check "curl: threshold t.test over TLS 1.2 ECDHE" \
    [ "$(curl_get t.test --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256)" = \
        "hello from the origin" ]
signed_lines() { cat "$AUDIT"/h[12].audit 2>/dev/null | grep "key=$T_ID " | grep -c "outcome=signed"; }
check "the holders made signature shares for t.test (audit: $(signed_lines) signed)" \
    [ "$(signed_lines)" -ge 11 ]
check "... and released no share of it" \
    eval '! cat "$AUDIT"/h[12].audit | grep "key=$T_ID " | grep -q "outcome=released"'

# ---- t.test the default certificate ------------------------------------------------
check "threshold t.test (default): TLS 1.2 RSA key exchange refused, no key operation" \
    rsa_kx_refused t.test
check "threshold t.test (default, no SNI): refused the same" rsa_kx_refused ""
check "rebuild r.test on the same edge: TLS 1.2 RSA key exchange served" rsa_kx_served r.test
check "the edge logs the refusal as no shared cipher, and why" \
    grep -q "handshake failed: .*no shared cipher (the certificate's key is in threshold mode" edge.log

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
check "edge check: the configuration passes, a test signature with each key" \
    eval 'grep -q "certificate t.test.pem: test signature verified" check.out &&
        grep -q "certificate r.test.pem: test signature verified" check.out &&
        grep -q "^edge check: edge.conf: ok" check.out'
check "edge check: tls12-ciphers with only RSA key exchange leave a threshold certificate nothing" \
    bash -c "{ cat edge.conf; echo 'tls12-ciphers AES128-GCM-SHA256'; } >only-rsa.conf &&
        ! timeout 60 '$EDGE' check only-rsa.conf >check-only-rsa.out 2>&1 &&
        grep -q \"threshold-mode certificates: tls12-ciphers 'AES128-GCM-SHA256': only RSA key exchange, which a threshold-mode key never serves\" check-only-rsa.out"

# ---- one holder down: the combiner's share and h1's still sign -------------------------
kill $H2_PID
wait $H2_PID 2>/dev/null
check "h2 killed: threshold t.test still served over TLS 1.3" signed t.test RSA-PSS/SHA256 -tls1_3
check "h2 killed: and over TLS 1.2 ECDHE with PKCS#1 v1.5" signed t.test RSA/SHA256 -tls1_2 \
    -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs RSA+SHA256
check "h2 killed: curl gets the page" [ "$(curl_get t.test)" = "hello from the origin" ]

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
