# lib_edge.sh: the set-up the edge's integration tests share, sourced by
# test_edge*.sh (not a test itself: it has no test_ prefix). Real processes on
# 127.0.0.1 only: a test CA and certificates, keys split 2-of-3 between the
# edge's combiner and two share-holders (h1, h2), the holders, a small origin
# and the edge. test_keysplit*.sh and test_tss_circl.sh source it for the
# scratch directory, the counters and lib_edge_keygen only.
#
#   lib_edge_scratch NAME BUILD_DIR  BUILD, SRC (unless set), DATA, KS, the counters, a
#                                  work dir $T (removed at exit unless $KEEP
#                                  is set) and the cleanup trap
#   lib_edge_init NAME BUILD_DIR   lib_edge_scratch, the other binaries,
#                                  a block of ports (lib_ports.sh), cd to $T
#   pass/fail/check/die            count and report one result
#   lib_edge_keygen NAME...        keys/NAME.{key,pub} for each NAME
#   lib_edge_pki                   ca.pem, ca.key
#   lib_edge_mkcert NAME BITS [KEY]  NAME.pem for DNS:NAME with NAME.key
#                                  (a new key, or a copy of KEY)
#   lib_edge_holder_keys [NAME...] keys/{comb,h1,h2}.{key,pub}, and one key
#                                  pair for each further NAME
#   lib_edge_split NAME [MODE]     split NAME.key 2-of-3 (MODE rebuild, the
#                                  default, or threshold); prints the key id
#   lib_edge_holders               copy h1's and h2's shares, start both (with
#                                  the extra options in $LIB_EDGE_HOLDER_ARGS,
#                                  e.g. "--rate 5000 --burst 5000")
#   lib_edge_origin [BIG_MIB]      www/index.html (+ big.bin), origin.py
#   lib_edge_conf NAME...          print an edge config serving those keys'
#                                  certificates (NAME split with lib_edge_split),
#                                  and write the combiner's file comb.conf
#                                  (plus the lines in $LIB_EDGE_COMB_EXTRA)
#   lib_edge_comb_conf NAME...     print only the combiner's file
#   lib_edge_start CONF            start the edge; sets EDGE_PID
#   lib_edge_rss_kib PID           VmRSS of PID in KiB
#   lib_edge_no_sanitizer_reports  true if no *.log has an ASan/UBSan/LSan report
#   pubkey FILE                    a .pub file's curve-public key

# shellcheck source=tests/integration/lib_ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib_ports.sh"
# shellcheck source=tests/integration/lib_procs.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib_procs.sh"

# lib_edge_cleanup: the EXIT trap; returns 1 if a process did not stop.
lib_edge_cleanup() {
    local rc=0
    lib_procs_stop "${PIDS[@]}" || rc=1
    [ -n "${KEEP:-}" ] || rm -rf "$T"
    if [ -z "${KEEP:-}" ] && [ -n "${AUDIT:-}" ] && [ "$AUDIT" != "$T" ]; then
        rm -rf "$AUDIT"
    fi
    return $rc
}

# lib_edge_sanitized: true when BUILD is a sanitizer build (clang links ASan
# statically, so the binaries' NEEDED entries do not tell). Such builds run
# 2-3x slower and keep freed memory in quarantine: scripts widen their time
# and memory bounds there, never their functional checks.
lib_edge_sanitized() {
    grep -qE '^SPK_(ASAN|UBSAN):BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null
}

lib_edge_scratch() { # NAME BUILD_DIR
    BUILD=$(cd "${2:?usage: $1.sh BUILD_DIR}" && pwd)
    # A script that found its source tree itself keeps it.
    SRC=${SRC:-${SPK_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}}
    DATA=$SRC/tests/data
    KS=$BUILD/split/keysplit
    T=$(mktemp -d "/tmp/spk-$1.XXXXXX")
    PIDS=()
    passed=0
    failed=0
    trap 'lib_edge_cleanup || exit 1' EXIT
}

lib_edge_init() { # NAME BUILD_DIR
    lib_edge_scratch "$@"
    SH=$BUILD/share-holder/share-holder
    EDGE=$BUILD/edge/edge
    COMBINER=$BUILD/combiner/combiner
    for bin in "$KS" "$SH" "$EDGE"; do
        [ -x "$bin" ] || die "missing $bin"
    done
    command -v python3 >/dev/null || die "python3 is needed for the origin"
    # Each test uses BASE .. BASE + 15 at most, a block no other test holds.
    lib_port_block || die "no free block of ports"
    BASE=$PORT_BLOCK
    P_EDGE=$BASE
    P_ORIGIN=$((BASE + 1))
    P_H1=$((BASE + 2))
    P_H2=$((BASE + 3))
    P_FREE=$((BASE + 4)) # the first port a test may use for itself
    cd "$T" || die "cd $T"
    # The holders fdatasync their audit log before each batch of shares
    # leaves: 4-15 ms on this kind of shared disk, at times 200 ms, which
    # these tests of the edge and the combiner are not about. Their audit
    # logs (AUDIT/h1.audit, AUDIT/h2.audit) go to tmpfs when there is one.
    AUDIT=$T
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        AUDIT=$(mktemp -d "/dev/shm/spk-$1.XXXXXX")
    fi
    declare -gA LIB_EDGE_NAME=()
}

pass() {
    echo "ok:   $1"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL: $1"
    failed=$((failed + 1))
}
check() {
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}
die() {
    echo "FAIL: setup: $*"
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
}
pubkey() { grep '^curve-public ' "$1" | cut -d' ' -f2; }

lib_edge_pki() {
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
        -subj /CN=splitkey-test-CA -days 2 2>/dev/null || die "CA"
}

lib_edge_mkcert() { # NAME BITS [KEY]
    if [ -n "${3:-}" ]; then
        cp "$3" "$1.key" || return 1
    else
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:"$2" -out "$1.key" 2>/dev/null ||
            return 1
    fi
    openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" &&
        printf 'subjectAltName=DNS:%s\n' "$1" >"$1.ext" &&
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" \
            -days 2 -extfile "$1.ext" 2>/dev/null
}

lib_edge_keygen() { # NAME...
    local n
    for n in "$@"; do
        "$KS" keygen --name "$n" --out keys >/dev/null || die "keygen $n"
    done
}

lib_edge_holder_keys() { # [NAME...]
    mkdir -p keys shares h1 h2
    lib_edge_keygen comb h1 h2 "$@"
}

lib_edge_split() { # NAME [MODE]: prints the key id
    local id
    id=$("$KS" split --key "$1.key" --threshold 2 --mode "${2:-rebuild}" --holder keys/comb.pub \
        --holder keys/h1.pub --holder keys/h2.pub --out shares | tail -1) || return 1
    [ -n "$id" ] || return 1
    echo "$id" >"$1.keyid"
    echo "$id"
}

# lib_edge_sites NAME...: the PKI, a 2048-bit certificate for each NAME, each
# key split 2-of-3 and then deleted (the edge must never see it), and the
# holders started.
lib_edge_sites() {
    local n
    lib_edge_pki
    for n in "$@"; do
        lib_edge_mkcert "$n" 2048 || die "$n certificate"
    done
    lib_edge_holder_keys
    for n in "$@"; do
        lib_edge_split "$n" >/dev/null || die "split $n"
    done
    for n in "$@"; do
        rm -f "$n.key"
    done
    lib_edge_holders
}

lib_edge_holders() {
    local h
    echo "client comb $(pubkey keys/comb.pub) *" >allow.txt
    for h in h1 h2; do
        cp shares/*."$h".share shares/*.record "$h"/ || die "shares for $h"
    done
    "$SH" run --key keys/h1.key --shares h1 --allow allow.txt --bind tcp://127.0.0.1:$P_H1 \
        --allow-unlocked --audit-log "$AUDIT/h1.audit" ${LIB_EDGE_HOLDER_ARGS:-} 2>h1.log &
    H1_PID=$!
    PIDS+=($H1_PID)
    "$SH" run --key keys/h2.key --shares h2 --allow allow.txt --bind tcp://127.0.0.1:$P_H2 \
        --allow-unlocked --audit-log "$AUDIT/h2.audit" ${LIB_EDGE_HOLDER_ARGS:-} 2>h2.log &
    H2_PID=$!
    PIDS+=($H2_PID)
}

# The origin: GET serves files, POST answers the body's SHA-256.
lib_edge_origin() { # [BIG_MIB]
    mkdir -p www
    echo "hello from the origin" >www/index.html
    if [ -n "${1:-}" ]; then
        head -c $(($1 * 1024 * 1024)) /dev/urandom >www/big.bin
    fi
    cat >origin.py <<'EOF'
import hashlib, http.server, os, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        while n > 0:
            b = self.rfile.read(min(n, 1 << 20))
            if not b:
                break
            h.update(b)
            n -= len(b)
        out = (h.hexdigest() + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
os.chdir(sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
    python3 origin.py $P_ORIGIN www 2>origin.log &
    PIDS+=($!)
    for _ in $(seq 1 50); do
        curl -s -o /dev/null http://127.0.0.1:$P_ORIGIN/index.html && break
        sleep 0.1
    done
}

lib_edge_comb_conf() { # NAME... (each split with lib_edge_split): the combiner's file
    local n id
    echo "splitkey-combiner 1"
    echo "# the combiner's own share of each key, and h1 and h2 for the others"
    echo "key keys/comb.key"
    for n in "$@"; do
        id=$(cat "$n.keyid")
        echo "record shares/$id.record"
        echo "share shares/$id.comb.share"
    done
    echo "holder h1 tcp://127.0.0.1:$P_H1 $(pubkey keys/h1.pub)"
    echo "holder h2 tcp://127.0.0.1:$P_H2 $(pubkey keys/h2.pub)"
    echo "timeout-ms 4000"
    echo "share-timeout-ms 1000"
    echo "allow-unlocked yes"
}

# lib_edge_conf writes the combiner's file to comb.conf (lib_edge_comb_conf,
# then the lines of $LIB_EDGE_COMB_EXTRA) and prints the edge's, which names it.
lib_edge_conf() { # NAME... (each split with lib_edge_split)
    local n id
    {
        lib_edge_comb_conf "$@"
        [ -z "${LIB_EDGE_COMB_EXTRA:-}" ] || printf '%s\n' "$LIB_EDGE_COMB_EXTRA"
    } >comb.conf
    echo "# test configuration"
    echo "listen 127.0.0.1:$P_EDGE"
    for n in "$@"; do
        id=$(cat "$n.keyid")
        echo "certificate $n.pem shares/$id.record"
    done
    echo "upstream 127.0.0.1:$P_ORIGIN"
    echo "combiner-endpoint unix://$T/combiner.sock"
    echo "combiner-config comb.conf"
    echo "handshake-timeout-ms 5000"
    echo "op-timeout-ms 4000"
}

# lib_edge_wait_log FILE TEXT [TRIES]: true once FILE holds TEXT, looked for
# every 0.1 s, TRIES times at most (100).
lib_edge_wait_log() {
    for _ in $(seq 1 "${3:-100}"); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

lib_edge_start() { # CONF
    "$EDGE" run "$1" 2>edge.log &
    EDGE_PID=$!
    PIDS+=($EDGE_PID)
    lib_edge_wait_log edge.log "edge: serving" || {
        cat edge.log
        die "the edge did not start"
    }
    sleep 0.3
}

# lib_edge_exits_within PID MS: the process exits within MS milliseconds
# (lib_procs_gone).
lib_edge_exits_within() {
    for _ in $(seq 0 $(($2 / 50))); do
        lib_procs_gone "$1" && return 0
        sleep 0.05
    done
    return 1
}

lib_edge_rss_kib() { # PID
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null
}

lib_edge_no_sanitizer_reports() {
    ! grep -l 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' ./*.log 2>/dev/null
}
