#!/usr/bin/env bash
# Debian's Apache 2.4, unmodified, with mod_ssl's SSLCertificateKeyFile naming
# a key reference and splitkey.so in OPENSSL_CONF: its own ServerRoot and
# config under the test's directory, in the foreground as root, workers as
# nobody. The combiner's door lets nobody's uid in (socket group nogroup).
# curl gets the page on TLS 1.3, TLS 1.2 ECDHE and TLS 1.2 RSA key exchange;
# with the combiner gone the handshake fails within the timeout, and serving
# resumes when it returns.
# Usage: test_provider_apache.sh BUILD_DIR
set -u
# shellcheck source=tests/integration/lib_provider.sh
source "$(dirname "$0")/lib_provider.sh"

APACHE=$(command -v apache2 || echo /usr/sbin/apache2)
MODS=/usr/lib/apache2/modules
[ -x "$APACHE" ] && [ -f $MODS/mod_ssl.so ] ||
    { echo "FAIL: setup: apache2 is not installed (tools/lib/deps.sh)"; exit 1; }
getent passwd nobody >/dev/null && getent group nogroup >/dev/null ||
    { echo "FAIL: setup: no user nobody / group nogroup"; exit 1; }

PROV_TIMEOUT_MS=2000
PROV_COMB_CLIENTS=$'client apache uid nobody tls\nsocket-group nogroup'
lib_provider_init provider-apache "${1:-}"
lib_provider_key www
lib_provider_start
# Apache's workers (nobody) reach the combiner's socket in the test directory.
chmod 711 "$T"
P_AP=$P_FREE

A=$T/apache
mkdir -p "$A/htdocs" "$A/logs"
echo "hello from apache" >"$A/htdocs/index.html"
chmod 755 "$A" "$A/htdocs"
chmod 644 "$A/htdocs/index.html" www.pem www.ref.pem
cat >"$A/httpd.conf" <<EOC
ServerRoot "$A"
ServerName www
Listen 127.0.0.1:$P_AP
PidFile $A/httpd.pid
DefaultRuntimeDir $A
Mutex file:$A default
ErrorLog $A/logs/error.log
LogLevel info
LoadModule mpm_event_module $MODS/mod_mpm_event.so
LoadModule authz_core_module $MODS/mod_authz_core.so
LoadModule ssl_module $MODS/mod_ssl.so
User nobody
Group nogroup
StartServers 2
DocumentRoot $A/htdocs
<Directory $A/htdocs>
    Require all granted
</Directory>
SSLSessionCache none
<VirtualHost 127.0.0.1:$P_AP>
    SSLEngine on
    SSLCertificateFile $T/www.pem
    SSLCertificateKeyFile $T/www.ref.pem
    SSLProtocol -all +TLSv1.2 +TLSv1.3
    SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256
    SSLSessionTickets off
</VirtualHost>
EOC
lib_provider_exec "$APACHE" -d "$A" -f "$A/httpd.conf" -DFOREGROUND >"$A/logs/stdout.log" 2>&1 &
AP_PID=$!
PIDS+=("$AP_PID")

get() {
    env -u LD_PRELOAD -u OPENSSL_CONF curl -s --max-time 10 --cacert ca.pem \
        --resolve www:$P_AP:127.0.0.1 "$@" "https://www:$P_AP/index.html"
}
for _ in $(seq 1 50); do
    get >/dev/null && break
    sleep 0.2
done

lib_provider_tls_checks "hello from apache"
n_ok=$(lib_provider_served 10 "hello from apache")
check "10 of 10 handshakes ($n_ok)" test "$n_ok" -eq 10

lib_provider_combiner_outage "$AP_PID" "hello from apache"
check "no child crashed" bash -c "! grep -qE 'exit signal|Segmentation' $A/logs/error.log"

check "no sanitizer report from a program with the module" lib_provider_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
