# shellcheck shell=bash
# lib_provider.sh: the set-up the tests of splitkey.so share, sourced by
# test_provider_*.sh (not a test itself). On top of lib_edge.sh's PKI, holder
# keys, 2-of-3 split and holders: a combiner serving the split keys on an
# ipc:// socket, key reference files written by `keysplit pem`, and an
# openssl.cnf that loads splitkey.so beside the default provider.
#
#   lib_provider_init NAME BUILD_DIR   lib_edge_init + PKI + holder keys; $MODULE
#   lib_provider_key NAME [BITS]       NAME.pem/NAME.key signed by the test CA,
#                                      split 2-of-3, NAME.ref.pem (key reference)
#   lib_provider_start                 holders, combiner, openssl.cnf ($OPENSSL_CONF)
#   lib_provider_combiner_start/stop   the combiner alone (COMB_PID), with the
#                                      client lines of $PROV_COMB_CLIENTS

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
    "$KS" pem --record "shares/$id.record" --combiner "$COMB_EP" --out "$1.ref.pem" >/dev/null ||
        die "keysplit pem $1"
    PROV_KEYS+=("$1")
}

# lib_provider_combiner_start: the combiner's file (lib_edge_comb_conf) with
# its door: listen on $COMB_EP, and the clients of $PROV_COMB_CLIENTS (one
# "client ..." line each; default: this uid, every signature, the TLS set
# and the PKCS#1 and OAEP decryptions the openssl CLI asks for).
lib_provider_combiner_start() {
    {
        lib_edge_comb_conf "${PROV_KEYS[@]}"
        echo "listen $COMB_EP"
        printf '%s\n' "${PROV_COMB_CLIENTS:-client me uid $(id -u) sign,tls,decrypt-pkcs1,decrypt-oaep-sha1,decrypt-oaep-sha256}"
    } >combiner.conf
    "$COMBINER" run --config combiner.conf --no-metrics 2>>combiner.log &
    COMB_PID=$!
    PIDS+=("$COMB_PID")
    for _ in $(seq 1 100); do
        [ -S "$T/combiner.sock" ] && break
        sleep 0.05
    done
    [ -S "$T/combiner.sock" ] || {
        cat combiner.log
        die "the combiner did not start"
    }
}

lib_provider_combiner_stop() {
    kill "$COMB_PID" 2>/dev/null
    wait "$COMB_PID" 2>/dev/null
    rm -f "$T/combiner.sock"
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
