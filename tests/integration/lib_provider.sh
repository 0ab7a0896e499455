# shellcheck shell=bash
# lib_provider.sh: the set-up the tests of splitkey.so share, sourced by
# test_provider_*.sh (not a test itself). On top of lib_edge.sh's PKI, holder
# keys, 2-of-3 split and holders: a combiner serving the split keys on an
# ipc:// socket, key reference files written by `keysplit pem`, and an
# openssl.cnf that loads splitkey.so beside the default provider.
#
#   lib_provider_init NAME BUILD_DIR   lib_edge_init + PKI + holder keys; $MODULE
#   lib_provider_key NAME [BITS]       NAME.pem/NAME.key signed by the test CA,
#                                      split 2-of-3, NAME.ref.pem (key reference
#                                      to $COMB_EP, plus $PROV_PEM_ARGS)
#   lib_provider_bad_refs NAME         NAME.wrongid.ref.pem (a key id not its
#                                      public key's), NAME.corrupt.ref.pem
#   lib_provider_start                 holders, combiner, openssl.cnf ($OPENSSL_CONF)
#   lib_provider_combiner_start/stop   the combiner alone (COMB_PID), with the
#                                      client lines of $PROV_COMB_CLIENTS
#                                      (start listening: before it serves)
#   lib_provider_nginx_start WORKERS KEY LINES [plain]
#                                      Debian's nginx on $P_NGX (NGX_PID)
#   lib_provider_nginx_get ARGS...     one request with curl to that nginx;
#                                      prints the page (the nginx tests' get)
#   lib_provider_nginx_workers N TEXT  "OK WORKERS": of N TLS 1.3 requests,
#                                      how many got TEXT, from how many workers
#   lib_provider_tls_checks TEXT [LABEL]
#                                      a page with TEXT over TLS 1.3, TLS 1.2
#                                      ECDHE and TLS 1.2 RSA key exchange
#   lib_provider_served N TEXT         how many of N TLS 1.3 handshakes got TEXT
#   lib_provider_s_server PORT LOG     openssl s_server -www with www.pem and
#                                      www.ref.pem on PORT (S_PID), listening
#   lib_provider_combiner_outage PID TEXT [LABEL]
#                                      kill -9 the combiner and restart it:
#                                      the server PID fails fast, then serves

# shellcheck source=tests/integration/lib_edge.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"

lib_provider_init() { # NAME BUILD_DIR
    lib_edge_init "$1" "$2"
    MODULE=$BUILD/provider/splitkey.so
    [ -f "$MODULE" ] || die "missing $MODULE"
    [ -x "$COMBINER" ] || die "missing $COMBINER"
    COMB_EP=ipc://$T/combiner.sock
    PROV_KEYS=()
    lib_edge_pki
    lib_edge_holder_keys
}

lib_provider_key() { # NAME [BITS]
    local id
    lib_edge_mkcert "$1" "${2:-2048}" || die "certificate $1"
    id=$(lib_edge_split "$1") || die "split $1"
    # shellcheck disable=SC2086 # PROV_PEM_ARGS: words
    "$KS" pem --record "shares/$id.record" --combiner "$COMB_EP" ${PROV_PEM_ARGS:-} \
        --out "$1.ref.pem" >/dev/null || die "keysplit pem $1"
    PROV_KEYS+=("$1")
}

# lib_provider_bad_refs NAME: two references the module must refuse, both
# of NAME (made by lib_provider_key): one whose key id is not its public
# key's (its first digit changed), one with its PEM body corrupted.
lib_provider_bad_refs() {
    local id wrong body
    id=$(cat "$1.keyid")
    wrong=$([ "${id:0:1}" = 0 ] && echo 1 || echo 0)${id:1}
    body=$(sed '1d;$d' "$1.ref.pem" | base64 -d | sed "s/^key-id $id/key-id $wrong/" |
        base64 -w 64)
    printf -- '-----BEGIN SPLITKEY KEY REFERENCE-----\n%s\n-----END SPLITKEY KEY REFERENCE-----\n' \
        "$body" >"$1.wrongid.ref.pem"
    sed '3s/./#/' "$1.ref.pem" >"$1.corrupt.ref.pem"
}

# lib_provider_combiner_start: the combiner's file (lib_edge_comb_conf) with
# its door: listen on $COMB_EP, and the clients of $PROV_COMB_CLIENTS (one
# "client ..." line each; default: this uid, every signature, the TLS set
# and the PKCS#1 and OAEP decryptions the openssl CLI asks for). Returns when
# the combiner says it is serving (its socket is bound and open to its
# clients then, which its mere existence does not say). With "listening"
# ($COMB_EP tcp:// only): once its port takes connections, before it serves
# (while it warms up its holders).
lib_provider_combiner_start() { # [listening]
    local n0
    n0=$(grep -c '^combiner: serving' combiner.log 2>/dev/null || true)
    {
        lib_edge_comb_conf "${PROV_KEYS[@]}"
        echo "listen $COMB_EP"
        printf '%s\n' "${PROV_COMB_CLIENTS:-client me uid $(id -u) sign,tls,decrypt-pkcs1,decrypt-oaep-sha1,decrypt-oaep-sha256}"
    } >combiner.conf
    "$COMBINER" run --config combiner.conf --no-metrics 2>>combiner.log &
    COMB_PID=$!
    PIDS+=("$COMB_PID")
    for _ in $(seq 1 200); do
        if [ "${1:-}" = listening ]; then
            (exec 3<>"/dev/tcp/127.0.0.1/${COMB_EP##*:}") 2>/dev/null && return 0
        elif [ "$(grep -c '^combiner: serving' combiner.log)" -gt "${n0:-0}" ]; then
            return 0
        fi
        kill -0 "$COMB_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat combiner.log
    die "the combiner did not start"
}

lib_provider_combiner_stop() { # [-9]
    kill ${1:-} "$COMB_PID" 2>/dev/null
    wait "$COMB_PID" 2>/dev/null
    rm -f "$T/combiner.sock"
}

# lib_provider_nginx_start WORKERS KEY LINES [plain]: Debian's nginx, with
# its own config in ngx/ and WORKERS workers, on 127.0.0.1:$P_NGX for the
# name www (www.pem) with the key file KEY; LINES: the rest of its server
# block (a location at least). With "plain" it runs without OPENSSL_CONF:
# it never sees the module. Sets NGX_PID; returns when it accepts.
lib_provider_nginx_start() {
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    [ -x "$NGINX" ] || die "nginx is not installed (tools/lib/deps.sh)"
    mkdir -p ngx/logs ngx/tmp
    cat >ngx/nginx.conf <<EOC
worker_processes $1;
daemon off;
user root root;
pid $T/ngx/nginx.pid;
error_log $T/ngx/logs/error.log info;
events { worker_connections 256; }
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
        ssl_certificate_key $2;
        ssl_protocols TLSv1.2 TLSv1.3;
$3
    }
}
EOC
    if [ "${4:-}" = plain ]; then
        env -u OPENSSL_CONF -u LD_PRELOAD "$NGINX" -p "$T/ngx" -c "$T/ngx/nginx.conf" \
            -e "$T/ngx/logs/error.log" >ngx/stdout.log 2>&1 &
    else
        lib_provider_exec "$NGINX" -p "$T/ngx" -c "$T/ngx/nginx.conf" \
            -e "$T/ngx/logs/error.log" >ngx/stdout.log 2>&1 &
    fi
    NGX_PID=$!
    PIDS+=("$NGX_PID")
    for _ in $(seq 1 100); do
        (echo >/dev/tcp/127.0.0.1/"$P_NGX") 2>/dev/null && return 0
        kill -0 "$NGX_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat ngx/stdout.log ngx/logs/error.log 2>/dev/null
    die "nginx did not start"
}

# lib_provider_combiner_outage PID TEXT [LABEL]: kill -9 the combiner; a
# handshake with the server PID (through the test's own `get`) fails within
# 5 s, not hung, and PID lives on. Then the combiner comes back: from the
# moment it is serving, 5 of 5 handshakes get a page with TEXT. Every worker
# reconnects on its own schedule; the module waits for its connection, so
# none of the 5 may fail.
lib_provider_combiner_outage() {
    local pid=$1 text=$2 label=${3:+$3: } start rc ms n_ok
    lib_provider_combiner_stop -9
    start=$(date +%s%N)
    get --tlsv1.3 >/dev/null
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    check "${label}combiner killed: handshake fails (curl $rc) in ${ms} ms, not hung" \
        bash -c "[ $rc -ne 0 ] && [ $ms -lt 5000 ]"
    check "${label}combiner killed: the server still runs" kill -0 "$pid"
    lib_provider_combiner_start
    n_ok=$(lib_provider_served 5 "$text")
    check "${label}combiner back: 5 of 5 served ($n_ok)" test "$n_ok" -eq 5
}

# lib_provider_nginx_get ARGS...: one request with curl (without the module)
# to the nginx of lib_provider_nginx_start; prints the page. The nginx tests'
# `get`.
lib_provider_nginx_get() {
    env -u LD_PRELOAD -u OPENSSL_CONF curl -s --max-time 10 --cacert ca.pem \
        --resolve www:$P_NGX:127.0.0.1 "$@" "https://www:$P_NGX/"
}

# The server tests' own `get ARGS...` makes one request with curl and prints
# the page; these drive it.

# lib_provider_nginx_workers N TEXT: N TLS 1.3 requests; prints how many got
# a page with TEXT and from how many workers (the pages name their worker's
# pid: nginx's $pid after TEXT).
lib_provider_nginx_workers() {
    local i
    : >pids.txt
    for ((i = 0; i < $1; i++)); do
        get --tlsv1.3 >>pids.txt
    done
    echo "$(grep -c "$2" pids.txt) $(sort -u pids.txt | grep -c "$2")"
}

# lib_provider_tls_checks TEXT [LABEL]: a page with TEXT over TLS 1.3
# (RSA-PSS), TLS 1.2 ECDHE-RSA and TLS 1.2 with RSA key exchange.
lib_provider_tls_checks() {
    local label=${2:+$2: } out
    out=$(get --tlsv1.3)
    check "${label}TLS 1.3 (RSA-PSS)" grep -q "$1" <<<"$out"
    out=$(get --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256)
    check "${label}TLS 1.2 ECDHE-RSA" grep -q "$1" <<<"$out"
    out=$(get --tlsv1.2 --tls-max 1.2 --ciphers AES128-GCM-SHA256)
    check "${label}TLS 1.2 RSA key exchange" grep -q "$1" <<<"$out"
}

# lib_provider_served N TEXT: prints how many of N TLS 1.3 requests got a
# page with TEXT.
lib_provider_served() {
    local n_ok=0 i
    for ((i = 0; i < $1; i++)); do
        get --tlsv1.3 | grep -q "$2" && n_ok=$((n_ok + 1))
    done
    echo "$n_ok"
}

lib_provider_start() {
    lib_edge_holders
    lib_provider_combiner_start
    cat >openssl.cnf <<EOC
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
splitkey = splitkey_sect

[default_sect]
activate = 1

[splitkey_sect]
module = $MODULE
timeout-ms = ${PROV_TIMEOUT_MS:-3000}
activate = 1
EOC
    export OPENSSL_CONF=$T/openssl.cnf
    # A sanitizer build's module needs the shared sanitizer runtime, which the
    # Debian programs that load it do not link: preload it. Leaks at exit are
    # theirs to report, not ours; every other report fails the test.
    # Only those programs get it (lib_provider_run, and the openssl function):
    # others (curl, pgrep) deadlock in setlocale with it preloaded.
    LIB_PROVIDER_PRELOAD=
    if lib_edge_sanitized; then
        LIB_PROVIDER_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
        [ -f "$LIB_PROVIDER_PRELOAD" ] || die "no shared ASan runtime (libclang-rt-14-dev)"
        export ASAN_OPTIONS=detect_leaks=0:log_path=$T/asan-report
        export UBSAN_OPTIONS=print_stacktrace=1:log_path=$T/asan-report
    fi
    export LIB_PROVIDER_PRELOAD
}

# lib_provider_s_server PORT LOG: `openssl s_server -www` with the module,
# www.pem and the key reference www.ref.pem on 127.0.0.1:PORT, its output in
# LOG; sets S_PID and returns once it listens (or after 5 s).
lib_provider_s_server() {
    lib_provider_exec openssl s_server -accept "127.0.0.1:$1" -cert www.pem -key www.ref.pem \
        -www >"$2" 2>&1 &
    S_PID=$!
    PIDS+=("$S_PID")
    for _ in $(seq 1 50); do
        (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
}

# lib_provider_run PROGRAM ARGS...: a program that loads the module.
lib_provider_run() {
    if [ -n "${LIB_PROVIDER_PRELOAD:-}" ]; then
        LD_PRELOAD=$LIB_PROVIDER_PRELOAD "$@"
    else
        "$@"
    fi
}
# lib_provider_exec PROGRAM ARGS... &: the same for a server started in the
# background, so that $! is the server's own pid.
lib_provider_exec() {
    if [ -n "${LIB_PROVIDER_PRELOAD:-}" ]; then
        LD_PRELOAD=$LIB_PROVIDER_PRELOAD exec "$@"
    fi
    exec "$@"
}
openssl() { lib_provider_run command openssl "$@"; }
export -f lib_provider_run openssl

# lib_provider_no_sanitizer_reports: no ASan/UBSan error from a program that
# loaded the module (sanitizer builds only; always true elsewhere). ASan's
# warning about a stack switch (OpenSSL's ASYNC jobs run on their own
# stacks) is a warning, not a report.
lib_provider_no_sanitizer_reports() {
    ! grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/asan-report.* 2>/dev/null
}
