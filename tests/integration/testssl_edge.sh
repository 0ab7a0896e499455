#!/usr/bin/env bash
# testssl.sh against the edge with its default TLS settings (split key, an
# OCSP response file) and against Debian's nginx with Mozilla's
# "intermediate" settings on the same certificate, both on 127.0.0.1, offline.
# Fails if the edge has a finding of a higher severity than nginx's for the
# same check, if the edge offers no ALPN, or if it staples no OCSP response.
# Run by tools/check (step testssl) when testssl.sh is installed; not a ctest
# test (it takes one to two minutes).
# Usage: testssl_edge.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init testssl-edge "${1:-}"
command -v testssl >/dev/null || die "testssl (Debian package testssl.sh) is needed"
command -v nginx >/dev/null || die "nginx (Debian package nginx-light) is needed"

lib_edge_pki
lib_edge_mkcert a.test 2048 || die "a.test certificate"
lib_edge_holder_keys
lib_edge_split a.test >/dev/null || die "split a.test"
lib_edge_holders
lib_edge_origin
cat a.test.pem ca.pem >a.chain.pem
serial=$(openssl x509 -in a.test.pem -noout -serial | cut -d= -f2)
printf 'V\t301231000000Z\t\t%s\tunknown\t/CN=a.test\n' "$serial" >index.txt
openssl ocsp -issuer ca.pem -cert a.test.pem -reqout ocsp.req -no_nonce 2>/dev/null &&
    openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin ocsp.req \
        -respout a.ocsp -ndays 1 >/dev/null 2>&1 || die "openssl ocsp"

a_id=$(cat a.test.keyid)
lib_edge_conf a.test |
    sed "s|^certificate a.test.pem shares/$a_id.record\$|certificate a.chain.pem shares/$a_id.record\nocsp-response a.ocsp|" \
        >edge.conf
grep -q '^ocsp-response a.ocsp$' edge.conf || die "edge.conf"
lib_edge_start edge.conf

# ---- nginx: Mozilla's intermediate configuration (nginx 1.22, OpenSSL 3) ------
P_NGINX=$P_FREE
mkdir -p nginx
openssl genpkey -genparam -algorithm DH -pkeyopt dh_param:ffdhe2048 -out ffdhe2048.pem \
    2>/dev/null || die "ffdhe2048"
cat >nginx/nginx.conf <<EOF
worker_processes 1;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    server {
        listen 127.0.0.1:$P_NGINX ssl http2;
        server_name a.test;
        ssl_certificate $T/a.chain.pem;
        ssl_certificate_key $T/a.test.key;
        ssl_session_timeout 1d;
        ssl_session_cache shared:MozSSL:10m;
        ssl_session_tickets off;
        ssl_dhparam $T/ffdhe2048.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers off;
        ssl_stapling on;
        ssl_stapling_file $T/a.ocsp;
        location / { proxy_pass http://127.0.0.1:$P_ORIGIN; }
    }
}
EOF
nginx -p "$T/nginx" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" &
PIDS+=($!)
for _ in $(seq 1 50); do
    curl -s -o /dev/null --cacert ca.pem --resolve a.test:$P_NGINX:127.0.0.1 \
        https://a.test:$P_NGINX/index.html && break
    sleep 0.1
done

# ---- testssl: protocols (with ALPN), cipher categories, forward secrecy,
# server defaults (OCSP stapling, tickets). ---------------------------------------
run_testssl() { # PORT JSON
    timeout 600 testssl --quiet --color 0 --warnings off --ip 127.0.0.1 --openssl-timeout 10 \
        --connect-timeout 10 -p -s -f -S --jsonfile "$2" "https://a.test:$1" >"$2.txt" 2>&1
    [ -s "$2" ]
}
# Both at once: each spends most of its time waiting on its own openssl runs.
run_testssl $P_NGINX nginx.json &
NGINX_SCAN=$!
check "testssl ran against the edge" run_testssl $P_EDGE edge.json
check "testssl ran against nginx" wait $NGINX_SCAN

cat >compare.py <<'EOF'
import json, sys
RANK = {"DEBUG": 0, "INFO": 0, "OK": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
def load(path):
    out = {}
    for f in json.load(open(path)):
        sev = f.get("severity", "INFO")
        if sev == "WARN":
            continue  # testssl's own trouble, not a finding
        out[f["id"]] = (RANK.get(sev, 0), sev, f.get("finding", ""))
    return out
edge, nginx = load(sys.argv[1]), load(sys.argv[2])
worse = 0
for k, (r, sev, finding) in sorted(edge.items()):
    n = nginx.get(k, (0, "absent", ""))
    if r > n[0]:
        print(f"worse than nginx: {k}: edge {sev} '{finding}', nginx {n[1]} '{n[2]}'")
        worse += 1
print(f"{len(edge)} findings, {worse} worse than nginx")
sys.exit(1 if worse else 0)
EOF
check "no edge finding worse than nginx's (Mozilla intermediate)" python3 compare.py edge.json nginx.json
finding() { # JSON ID
    python3 -c 'import json,sys
for f in json.load(open(sys.argv[1])):
    if f["id"] == sys.argv[2]: print(f["finding"])' "$1" "$2"
}
alpn=$(finding edge.json ALPN)
check "the edge offers ALPN ($alpn)" grep -q "http/1.1" <<<"$alpn"
ocsp=$(finding edge.json OCSP_stapling)
check "the edge staples OCSP ($ocsp)" grep -qi "^offered" <<<"$ocsp"

if [ $failed -ne 0 ]; then
    tail -30 edge.json.txt
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
