# shellcheck shell=bash
# lib_holder.sh: what test_holder*.sh and test_combiner_{remote,threshold}.sh
# share: the check for built binaries, a scratch directory removed at exit
# with the daemons started in it, the ok/bad/check counters, starting and
# stopping share-holder daemons on 127.0.0.1, and a signature through a
# combiner config checked by openssl. Sourced, not run; the caller sets SH
# (the share-holder binary) before starting holders.

# shellcheck source=tests/integration/lib_ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib_ports.sh"
# shellcheck source=tests/integration/lib_procs.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib_procs.sh"

# holder_test_setup PREFIX BUILD_DIR: what test_holder*.sh start with: B (the
# build directory), KS, SH and TC (keysplit, share-holder, sh-testclient),
# which must be built, and the scratch directory T
holder_test_setup() {
    B=$(cd "$2" && pwd) || exit 1
    KS=$B/split/keysplit
    SH=$B/share-holder/share-holder
    TC=$B/share-holder/sh-testclient
    holder_need_bins "$KS" "$SH" "$TC"
    holder_scratch "$1"
}

# holder_need_bins BIN...: exit as a failed test when one is not built
holder_need_bins() {
    local bin
    for bin in "$@"; do
        if [ ! -x "$bin" ]; then
            echo "missing $bin: build it first"
            echo "0 passed, 1 failed"
            exit 1
        fi
    done
}

# holder_scratch PREFIX: T is a new directory /tmp/PREFIX.XXXXXX; at exit the
# processes in PIDS are killed and T is removed
holder_scratch() {
    T=$(mktemp -d "/tmp/$1.XXXXXX")
    PIDS=()
    trap 'holder_cleanup || exit 1' EXIT
}
holder_cleanup() { # returns 1 if a process did not stop
    local rc=0
    lib_procs_stop "${PIDS[@]}" || rc=1
    rm -rf "$T"
    if [ -n "${HOLDER_AUDIT_DIR:-}" ] && [ "$HOLDER_AUDIT_DIR" != "$T" ]; then
        rm -rf "$HOLDER_AUDIT_DIR"
    fi
    return $rc
}

pass=0
fail=0
ok() {
    pass=$((pass + 1))
    echo "ok - $1"
}
bad() {
    fail=$((fail + 1))
    echo "FAIL - $1"
}
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# z85 NAME: the CURVE public key in $T/NAME.pub
z85() { awk '/^curve-public /{print $2}' "$T/$1.pub"; }

# holder_start NAME DIR ALLOW PORT [OPTIONS...]: runs holder NAME (key
# $T/NAME.key, audit log $HOLDER_AUDIT_DIR/NAME.audit ($T unless the caller
# says otherwise), stderr appended to $T/NAME.log) on
# tcp://127.0.0.1:PORT ('*': any) and sets NAME_pid and NAME_ep, the endpoint
# this run reports (empty, and its log shown, when it did not start)
holder_start() {
    local name=$1 dir=$2 allow=$3 port=$4
    shift 4
    local log="$T/$name.log"
    local from
    from=$(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1))
    "$SH" run --key "$T/$name.key" --shares "$dir" --allow "$allow" \
        --bind "tcp://127.0.0.1:$port" --audit-log "${HOLDER_AUDIT_DIR:-$T}/$name.audit" --allow-unlocked "$@" \
        2>>"$log" &
    local pid=$!
    PIDS+=("$pid")
    local ep=""
    for _ in $(seq 250); do
        ep=$(tail -c +"$from" "$log" 2>/dev/null | grep -o 'on tcp://127.0.0.1:[0-9]*' | head -1 |
            cut -c4-)
        [ -n "$ep" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    eval "${name}_pid=$pid"
    eval "${name}_ep=$ep"
    if [ -z "$ep" ]; then
        echo "--- $name.log"
        cat "$log"
    fi
}

# holder_start_unlimited NAME DIR [PORT]: holder_start serving DIR to the
# clients of $T/allow, without a practical rate limit
holder_start_unlimited() {
    holder_start "$1" "$2" "$T/allow" "${3:-*}" --rate 1000000 --burst 1000000
}
# port_of ENDPOINT: the port of tcp://HOST:PORT
port_of() { echo "${1##*:}"; }

# stop_holder NAME: SIGTERM and wait until it is gone
stop_holder() {
    local pid_var="${1}_pid"
    kill -TERM "${!pid_var}" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "${!pid_var}" 2>/dev/null || return 0
        sleep 0.02
    done
    return 1
}

# sign_check CONF PUB ALG: `${SIGN_CMD[@]} sign --config CONF` (SIGN_CMD: the
# caller's array, e.g. the combiner binary) of the digest of $T/msg with ALG,
# verified by openssl with the public key PUB
sign_check() {
    local conf=$1 pub=$2 alg=$3 md
    case $alg in
    pkcs1-md5sha1) md=md5sha1 ;;
    *) md=${alg#*-} ;;
    esac
    if [ "$md" = md5sha1 ]; then
        { openssl dgst -md5 -binary "$T/msg"; openssl dgst -sha1 -binary "$T/msg"; } >"$T/dgst"
    else
        openssl dgst "-$md" -binary "$T/msg" >"$T/dgst"
    fi
    rm -f "$T/sig"
    "${SIGN_CMD[@]}" sign --config "$conf" --alg "$alg" \
        --digest "$(od -An -tx1 -v "$T/dgst" | tr -d ' \n')" --out "$T/sig" 2>"$T/err" ||
        { cat "$T/err"; return 1; }
    case $alg in
    pkcs1-md5sha1)
        # no DigestInfo: the recovered block is the 36 bytes themselves
        openssl pkeyutl -verifyrecover -pubin -inkey "$pub" -pkeyopt rsa_padding_mode:pkcs1 \
            -in "$T/sig" -out "$T/rec" 2>/dev/null && cmp -s "$T/rec" "$T/dgst"
        ;;
    pkcs1-*)
        openssl pkeyutl -verify -pubin -inkey "$pub" -pkeyopt rsa_padding_mode:pkcs1 \
            -pkeyopt "digest:$md" -in "$T/dgst" -sigfile "$T/sig" >/dev/null 2>&1
        ;;
    pss-*)
        openssl pkeyutl -verify -pubin -inkey "$pub" -pkeyopt rsa_padding_mode:pss \
            -pkeyopt "digest:$md" -pkeyopt rsa_pss_saltlen:digest -in "$T/dgst" \
            -sigfile "$T/sig" >/dev/null 2>&1
        ;;
    esac
}
