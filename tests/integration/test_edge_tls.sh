#!/usr/bin/env bash
# The edge's TLS settings against real clients: ALPN (global default
# http/1.1, per listen line, per certificate; an h2-only nghttp refused in the
# handshake with no key operation; curl --http2 through ALPN to an h2c
# origin), OCSP stapling from a file made by `openssl ocsp` (good, then
# revoked after SIGHUP, a bad file refused), and the defaults of Mozilla's
# "intermediate" profile (no RSA key exchange, no CBC; TLS 1.3 groups),
# tls-max and ticket-lifetime-s through reloads.
# Usage: test_edge_tls.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init test-edge-tls "${1:-}"
command -v nghttp >/dev/null || die "nghttp (nghttp2-client) is needed"
command -v haproxy >/dev/null || die "haproxy is needed for the h2c origin"

lib_edge_sites a.test h2.test
lib_edge_origin
# The OCSP response is matched against the issuer: a.test's chain has it.
cat a.test.pem ca.pem >a.chain.pem

# ---- an h2c origin (HTTP/2 without TLS, prior knowledge) -----------------------
P_H2C=$P_FREE
P_METRICS=$((P_FREE + 1))
P_EDGE2=$((P_FREE + 2))
cat >haproxy.cfg <<EOF
global
    log stderr format raw local0 err
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend h2c
    bind 127.0.0.1:$P_H2C proto h2
    http-request return status 200 content-type text/plain string "hello over h2c"
EOF
haproxy -f haproxy.cfg -db 2>haproxy.log &
PIDS+=($!)

# ---- OCSP responses from the test CA -------------------------------------------
serial=$(openssl x509 -in a.test.pem -noout -serial | cut -d= -f2)
ocsp_response() { # V|R OUT
    local when
    when=$(date -u +%y%m%d%H%M%SZ)
    if [ "$1" = R ]; then
        printf 'R\t301231000000Z\t%s\t%s\tunknown\t/CN=a.test\n' "$when" "$serial" >index.txt
    else
        printf 'V\t301231000000Z\t\t%s\tunknown\t/CN=a.test\n' "$serial" >index.txt
    fi
    openssl ocsp -issuer ca.pem -cert a.test.pem -reqout ocsp.req -no_nonce 2>/dev/null &&
        openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin ocsp.req \
            -respout "$2" -ndays 1 >/dev/null 2>&1
}
ocsp_response V good.ocsp || die "openssl ocsp (good)"
ocsp_response R revoked.ocsp || die "openssl ocsp (revoked)"
cp good.ocsp a.ocsp

a_id=$(cat a.test.keyid)
h2_id=$(cat h2.test.keyid)
write_conf() { # EXTRA-GLOBAL-LINES...
    lib_edge_conf a.test h2.test | sed \
        -e "s|^listen 127.0.0.1:$P_EDGE\$|&\nlisten 127.0.0.1:$P_EDGE2\nalpn h2,http/1.1|" \
        -e "s|^certificate a.test.pem shares/$a_id.record\$|certificate a.chain.pem shares/$a_id.record\nocsp-response a.ocsp|" \
        -e "s|^certificate h2.test.pem shares/$h2_id.record\$|& 127.0.0.1:$P_H2C\nalpn h2|"
    echo "metrics 127.0.0.1:$P_METRICS"
    printf '%s\n' "$@"
}
write_conf >edge.conf
grep -q '^ocsp-response a.ocsp$' edge.conf && grep -q '^alpn h2$' edge.conf || die "edge.conf"
lib_edge_start edge.conf

metrics() { curl -s --max-time 5 http://127.0.0.1:$P_METRICS/metrics; }
keyops() { metrics | awk '/^spk_edge_key_operations_total\{/ { s += $2 } END { print s + 0 }'; }
sclient() { # PORT SERVERNAME ARGS...
    local port=$1 sn=$2
    shift 2
    printf 'GET /index.html HTTP/1.0\r\n\r\n' |
        timeout 20 openssl s_client -connect 127.0.0.1:$port -servername "$sn" -CAfile ca.pem \
            -ign_eof "$@" 2>&1
}
alpn_is() { # PORT SERVERNAME OFFER WANT
    local out
    out=$(sclient "$1" "$2" -alpn "$3" </dev/null)
    grep -q "^ALPN protocol: $4\$" <<<"$out"
}
hup() {
    kill -HUP $EDGE_PID
    sleep 0.5
}

# ---- ALPN ------------------------------------------------------------------------
check "default alpn: http/1.1 selected from h2,http/1.1" alpn_is $P_EDGE a.test h2,http/1.1 http/1.1
check "listen line's alpn h2,http/1.1: h2 selected" alpn_is $P_EDGE2 a.test h2,http/1.1 h2
check "certificate's alpn h2 beats the listen's default" alpn_is $P_EDGE h2.test h2,http/1.1 h2
# (To a file first: grep -q would close the pipe early and pipefail fail it.)
curl_alpn() {
    curl -sS -v --max-time 10 --cacert ca.pem --resolve a.test:$P_EDGE:127.0.0.1 \
        https://a.test:$P_EDGE/index.html >curl-alpn.out 2>&1
    grep -qi "ALPN.*accepted http/1.1" curl-alpn.out && grep -qx "hello from the origin" curl-alpn.out
}
check "curl: ALPN http/1.1 accepted, request served" curl_alpn
before=$(keyops)
nghttp -v "https://127.0.0.1:$P_EDGE/index.html" >nghttp.out 2>&1
after=$(keyops)
# nghttp exits 0 either way; it says what it got.
check "nghttp (h2 only) against alpn http/1.1: no protocol, nothing processed" \
    eval 'grep -q "processed=0" nghttp.out && ! grep -qi "negotiated protocol" nghttp.out'

check "... in the handshake: the edge logs no_application_protocol" \
    grep -q "handshake failed: .*no application protocol" edge.log
check "... before any key operation ($before -> $after)" [ "$before" -eq "$after" ]
h2c_body=$(curl -sS --http2 --max-time 10 --cacert ca.pem --resolve h2.test:$P_EDGE:127.0.0.1 \
    -w ' %{http_version}' https://h2.test:$P_EDGE/ 2>>curl.err)
check "curl --http2 through ALPN h2 to the h2c origin ($h2c_body)" \
    [ "$h2c_body" = "hello over h2c 2" ]

# ---- OCSP stapling ---------------------------------------------------------------
ocsp_status() { # SERVERNAME: "good", "revoked", or "none"
    local out
    out=$(sclient $P_EDGE "$1" -status -tls1_3 </dev/null)
    if grep -q "OCSP response: no response sent" <<<"$out"; then
        echo none
    else
        sed -n 's/^ *Cert Status: \([a-z]*\).*/\1/p' <<<"$out" | head -1
    fi
}
check "OCSP: a.test staples a good response" [ "$(ocsp_status a.test)" = good ]
check "OCSP: h2.test (none configured) staples nothing" [ "$(ocsp_status h2.test)" = none ]
cp revoked.ocsp a.ocsp
hup
check "OCSP: after SIGHUP the new (revoked) response is stapled" [ "$(ocsp_status a.test)" = revoked ]
echo garbage >a.ocsp
hup
check "OCSP: a bad response file is refused on reload" \
    grep -q "reload failed: ocsp-response .*not a DER OCSP response" edge.log
check "OCSP: ... and the previous response stays" [ "$(ocsp_status a.test)" = revoked ]
cp good.ocsp a.ocsp
hup

# ---- Mozilla intermediate defaults ---------------------------------------------
hs_ok() {
    local out
    out=$(sclient $P_EDGE a.test "$@" </dev/null)
    grep -q "^New, TLSv1\.[23], Cipher is [A-Z]" <<<"$out"
}
check "TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256 is served" hs_ok -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256
check "TLS 1.2 ECDHE-RSA-CHACHA20-POLY1305 is served" hs_ok -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305
check "TLS 1.2 DHE-RSA-AES256-GCM-SHA384 is served" hs_ok -tls1_2 -cipher DHE-RSA-AES256-GCM-SHA384
check "default: no TLS 1.2 RSA key exchange (AES128-GCM-SHA256)" \
    eval '! hs_ok -tls1_2 -cipher AES128-GCM-SHA256'
check "default: no CBC (ECDHE-RSA-AES128-SHA)" eval '! hs_ok -tls1_2 -cipher ECDHE-RSA-AES128-SHA'
check "default: TLS 1.1 refused" eval '! hs_ok -tls1_1 -cipher DEFAULT@SECLEVEL=0'
check "default: TLS 1.3 with X25519" hs_ok -tls1_3 -groups X25519
check "default: TLS 1.3 with only ffdhe2048 offered is refused" eval '! hs_ok -tls1_3 -groups ffdhe2048'
lifetime() { sclient $P_EDGE a.test -tls1_3 </dev/null | sed -n 's/.*lifetime hint: \([0-9]*\).*/\1/p' | head -1; }
check "default ticket lifetime is 86400 s" [ "$(lifetime)" = 86400 ]

# ---- directives, through reloads ----------------------------------------------------
write_conf "tls-max 1.2" "tls12-ciphers ECDHE-RSA-AES256-GCM-SHA384" "ticket-lifetime-s 600" \
    "tls-groups prime256v1" >edge.conf
hup
check "reload with the TLS directives succeeds" grep -q "edge: reloaded" edge.log
check "tls-max 1.2: a TLS 1.3-only client is refused" eval '! hs_ok -tls1_3'
check "tls12-ciphers: the listed cipher is served" hs_ok -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384
check "tls12-ciphers: another is refused" eval '! hs_ok -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256'
check "tls-groups prime256v1: X25519-only client refused" eval '! hs_ok -tls1_2 -groups X25519'
lifetime12() { sclient $P_EDGE a.test -tls1_2 </dev/null | sed -n 's/.*lifetime hint: \([0-9]*\).*/\1/p' | head -1; }
check "ticket-lifetime-s 600 is the ticket's lifetime hint" [ "$(lifetime12)" = 600 ]
write_conf "tls12-ciphers ECDHE+AESGCM:RSA+AESGCM" >edge.conf
hup
check "tls12-ciphers naming RSA suites: still no RSA key exchange without the switch" \
    eval '! hs_ok -tls1_2 -cipher AES128-GCM-SHA256'
write_conf "tls12-rsa-key-exchange yes" >edge.conf
hup
check "tls12-rsa-key-exchange yes: RSA key exchange (AES128-GCM-SHA256) is served" \
    hs_ok -tls1_2 -cipher AES128-GCM-SHA256
check "tls12-rsa-key-exchange yes: ECDHE stays first" \
    eval 'sclient $P_EDGE a.test -tls1_2 </dev/null | grep -q "^New, TLSv1.2, Cipher is ECDHE-"'
write_conf "tls12-ciphers NOTACIPHER" >edge.conf
hup
check "a cipher list OpenSSL does not know is refused on reload" \
    grep -q "reload failed: tls12-ciphers 'NOTACIPHER'" edge.log
check "the edge process is alive" kill -0 $EDGE_PID

# ---- edge check finds the same problems before a start ---------------------------
edge_check_says() { # CONF TEXT
    ! "$EDGE" check "$1" >check.out 2>&1 && grep -q "$2" check.out
}
check "edge check: an unknown cipher list is reported" edge_check_says edge.conf \
    "tls12-ciphers 'NOTACIPHER'"
write_conf >edge.conf
echo garbage >a.ocsp
check "edge check: a bad OCSP response file is reported" edge_check_says edge.conf \
    "a.chain.pem: ocsp-response .*not a DER OCSP response"
cp good.ocsp a.ocsp
check "edge check: the good configuration passes" eval '"$EDGE" check edge.conf >check.out 2>&1'

kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null
if [ $failed -ne 0 ]; then
    echo "--- edge.log"
    tail -20 edge.log
    echo "--- nghttp.out"
    tail -5 nghttp.out
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
