#!/usr/bin/env bash
# TLS 1.2 RSA key exchange with a tampered ClientKeyExchange: the edge (whose
# keys are split 2-of-3) must end each such handshake exactly as OpenSSL does
# with the whole key in `openssl s_server`: the same alert, so that no client
# can tell a bad padding from a good one (Bleichenbacher). The client is
# tests/bench/bench_tls_tamper; the keys are tests/data/rsa2048.pem and
# tests/data/rsa4096.pem.
# Usage: test_edge_tamper.sh BUILD_DIR
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$SRC/tests/integration/lib_edge.sh"
lib_edge_init test-edge-tamper "${1:-}"
TAMPER=$BUILD/tests/bench_tls_tamper
[ -x "$TAMPER" ] || die "missing $TAMPER"
KEY=$SRC/tests/data/rsa2048.pem
KEY4=$SRC/tests/data/rsa4096.pem
[ -r "$KEY" ] && [ -r "$KEY4" ] || die "missing $KEY or $KEY4"
P_SSL=$P_FREE
P_SSL4=$((P_FREE + 1))

lib_edge_pki
lib_edge_mkcert t.test 2048 "$KEY" || die "t.test certificate"
lib_edge_mkcert u.test 4096 "$KEY4" || die "u.test certificate"
lib_edge_holder_keys
lib_edge_split t.test >/dev/null || die "split t.test"
lib_edge_split u.test >/dev/null || die "split u.test"
rm -f t.test.key u.test.key # the edge works from the shares only
lib_edge_holders
lib_edge_origin
lib_edge_conf t.test u.test >edge.conf
# TLS 1.2 RSA key exchange is off by default (no forward secrecy); the checks
# below use it, so this configuration turns it on (after the ECDHE suites).
echo "tls12-rsa-key-exchange yes" >>edge.conf
lib_edge_start edge.conf

# OpenSSL with the whole key, the same certificate: one s_server per key.
s_server() { # NAME KEY PORT
    openssl s_server -accept 127.0.0.1:$3 -cert $1.pem -key "$2" -www -quiet \
        >s_server.$1.log 2>&1 &
    local pid=$!
    PIDS+=($pid)
    for _ in $(seq 1 50); do
        "$TAMPER" tamper none 127.0.0.1 $3 $1 ca.pem 2>/dev/null | grep -q result=ok && break
        sleep 0.1
    done
    kill -0 $pid 2>/dev/null || die "openssl s_server: $(head -3 s_server.$1.log)"
}
s_server t.test "$KEY" $P_SSL
s_server u.test "$KEY4" $P_SSL4

tamper() { # MODE PORT [NAME]
    "$TAMPER" tamper "$1" 127.0.0.1 "$2" "${3:-t.test}" ca.pem 2>>tamper.err
}

# The client itself: untouched, both handshakes complete.
check "untouched RSA key exchange completes with OpenSSL" [ "$(tamper none $P_SSL)" = result=ok ]
check "untouched RSA key exchange completes with the edge" [ "$(tamper none $P_EDGE)" = result=ok ]

# Every way to break the premaster: same answer from both, for RSA-2048 and
# RSA-4096. The modes that OpenSSL answers with bad_record_mac are the
# implicit-rejection ones: the decryption "succeeds" with a random premaster
# and only the Finished fails.
BRM="result=alert:20:bad record mac"
for site in t.test:$P_SSL u.test:$P_SSL4; do
    name=${site%:*}
    port=${site#*:}
    for mode in flip zero other version short long type1 nozero trunc high modulus extend badlen; do
        want=$(tamper $mode $port $name)
        got=$(tamper $mode $P_EDGE $name)
        check "$name $mode: the edge answers as OpenSSL with the whole key ($want)" \
            [ "$got" = "$want" ]
        case $mode in
        flip | zero | other | version | short | long | type1 | nozero)
            check "$name $mode: OpenSSL rejects it implicitly (bad record mac)" [ "$want" = "$BRM" ]
            ;;
        esac
    done
done

# The same answer every time: a few more rounds of the padding cases.
same=1
for round in 1 2 3; do
    for mode in flip version short type1 nozero; do
        [ "$(tamper $mode $P_EDGE)" = "$BRM" ] || same=0
    done
done
check "padding errors always end with bad record mac (15 more handshakes)" [ $same -eq 1 ]

# Nor do the logs tell padding errors apart: every implicit rejection above
# (8 modes and trunc per key, 15 rounds) ends as the failed Finished of a
# handshake with a random premaster ("cipher operation failed"), the combiner
# answered each of them with a premaster, and only the ciphertexts >= n
# (high, modulus, per key), which OpenSSL refuses openly too, failed in the
# combiner.
sleep 0.3
n_mac=$(grep -c 'handshake failed: .*cipher operation failed' edge.log)
n_comb=$(grep -c '^combiner: operation failed' edge.log)
check "every padding error looks alike in the edge's log ($n_mac of 33)" [ "$n_mac" -eq 33 ]
check "the combiner failed only the ciphertexts >= n ($n_comb of 4)" [ "$n_comb" -eq 4 ]
check "no log line speaks of padding" bash -c "! grep -qi padding edge.log"

CURL=(curl -sS --max-time 20 --cacert ca.pem --resolve t.test:$P_EDGE:127.0.0.1)
check "the edge still serves TLS 1.2 RSA key exchange" \
    [ "$("${CURL[@]}" --tlsv1.2 --tls-max 1.2 --ciphers AES128-GCM-SHA256 \
        https://t.test:$P_EDGE/index.html 2>>curl.err)" = "hello from the origin" ]
check "edge process is alive" kill -0 $EDGE_PID

kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null
check "no sanitizer report in any log" lib_edge_no_sanitizer_reports

if [ $failed -ne 0 ]; then
    echo "--- edge.log"
    cat edge.log
    echo "--- tamper.err"
    tail -5 tamper.err
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
