#!/usr/bin/env bash
# Server names and session resumption (RFC 6066 section 3): two certificates,
# www.example and api.example, each with its own origin. A session made for
# one name must not resume on the other (TLS 1.2 session ids, TLS 1.2
# tickets, TLS 1.3 tickets): the client gets a full handshake with the other
# name's certificate and is relayed to that name's origin. A session still
# resumes for the name it was made for, and a trailing-dot name
# (api.example.) picks api's certificate.
# Usage: test_edge_sni.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init test-edge-sni "${1:-}"

lib_edge_pki
lib_edge_mkcert www.example 2048 || die "www.example certificate"
lib_edge_mkcert api.example 2048 || die "api.example certificate"
lib_edge_holder_keys
lib_edge_split www.example >/dev/null || die "split www.example"
lib_edge_split api.example >/dev/null || die "split api.example"
rm -f www.example.key api.example.key
lib_edge_holders
lib_edge_origin # www's origin: "hello from the origin"

P_API=$P_FREE
mkdir -p api
echo "hello from the api origin" >api/index.html
python3 origin.py $P_API api 2>api-origin.log &
PIDS+=($!)
for _ in $(seq 1 50); do
    curl -s -o /dev/null http://127.0.0.1:$P_API/index.html && break
    sleep 0.1
done

api_id=$(cat api.example.keyid)
lib_edge_conf www.example api.example |
    sed "s|^certificate api.example.pem shares/$api_id.record\$|& 127.0.0.1:$P_API|" >edge.conf
grep -q "^certificate api.example.pem .* 127.0.0.1:$P_API\$" edge.conf || die "api's upstream"
lib_edge_start edge.conf

WWW="hello from the origin"
API="hello from the api origin"

# connect NAME OUT ARGS...: one request as NAME; s_client's output in OUT.
connect() {
    local name=$1 out=$2
    shift 2
    printf 'GET /index.html HTTP/1.0\r\nHost: %s\r\n\r\n' "$name" |
        timeout 20 openssl s_client -connect 127.0.0.1:$P_EDGE -servername "$name" \
            -CAfile ca.pem -ign_eof "$@" >"$out" 2>&1
}
reused() { grep -q '^Reused, ' "$1"; }
fresh() { grep -q '^New, ' "$1" && ! grep -q '^Reused, ' "$1"; }
body_is() { grep -qx "$2" "$1"; }
subject_is() { grep -q "^subject=CN *= *$2\$" "$1"; }

# run_case LABEL ARGS...: a www session offered to api, then to www again.
run_case() {
    local label=$1
    shift
    local sess=$label.sess
    connect www.example "$label.www.out" -sess_out "$sess" "$@"
    check "$label: the first www handshake is full and reaches www's origin" \
        eval 'fresh "$label.www.out" && body_is "$label.www.out" "$WWW"'
    [ -s "$sess" ] || {
        fail "$label: s_client saved no session"
        return
    }
    connect api.example "$label.api.out" -sess_in "$sess" "$@"
    check "$label: a www session offered for api is not resumed" fresh "$label.api.out"
    check "$label: ... api's certificate is sent" subject_is "$label.api.out" api.example
    check "$label: ... and the request reaches api's origin" body_is "$label.api.out" "$API"
    connect www.example "$label.again.out" -sess_in "$sess" "$@"
    check "$label: the www session resumes for www" reused "$label.again.out"
    check "$label: ... and reaches www's origin" body_is "$label.again.out" "$WWW"
}

run_case tls12-session-id -tls1_2 -no_ticket
run_case tls12-ticket -tls1_2
run_case tls13-ticket -tls1_3


connect api.example. dot.out -tls1_3 -showcerts
check "trailing-dot SNI api.example. gets api's certificate" subject_is dot.out api.example
check "... and reaches api's origin" body_is dot.out "$API"
connect API.Example dot2.out -tls1_2
check "SNI in upper case picks api's certificate" subject_is dot2.out api.example
connect www.example www-nodot.out -tls1_3
check "www.example still gets www's certificate" subject_is www-nodot.out www.example

# A malformed server_name (two dots at the end) is refused in the handshake.
connect 'api.example..' bad.out -tls1_3
check "SNI api.example.. is refused with an alert" grep -q 'alert' bad.out
check "the edge process is alive" kill -0 $EDGE_PID

kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null
if [ $failed -ne 0 ]; then
    echo "--- edge.log"
    tail -20 edge.log
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
