#!/usr/bin/env bash
# The edge's own session ticket keys (no ticket-key-file), with
# ticket-key-rotate-s 2: a TLS 1.3 session saved by `openssl s_client
# -sess_out` resumes at once and after one rotation (the previous key still
# opens tickets), and not after two (that key is gone: a full handshake,
# counted as an unknown key). The metrics count the rotations; a SIGHUP keeps
# the keys; `edge check` refuses a period of 0.
# Usage: test_edge_ticket_rotate.sh BUILD_DIR
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_init test-edge-ticket-rotate "${1:-}"
P_MET=$P_FREE

lib_edge_sites a.test
lib_edge_origin

{
    lib_edge_conf a.test
    echo "ticket-key-rotate-s 2"
    echo "metrics 127.0.0.1:$P_MET"
} >edge.conf
lib_edge_start edge.conf

metric() { # NAME{LABELS}: its value from the edge's endpoint (0 if absent)
    curl -sS --max-time 5 http://127.0.0.1:$P_MET/metrics |
        awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}
rotations() { metric spk_edge_ticket_key_rotations_total; }
wait_rotations() { # N: until at least N rotations have been made (10 s at most)
    for _ in $(seq 1 100); do
        [ "$(rotations)" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
HELLO="hello from the origin"
sclient() { # ARGS...: GET / through s_client over TLS 1.3, print everything
    printf 'GET /index.html HTTP/1.0\r\n\r\n' |
        timeout 20 openssl s_client -connect 127.0.0.1:$P_EDGE -servername a.test -CAfile ca.pem \
            -verify_return_error -ign_eof -tls1_3 "$@" 2>&1
}
resumes() { # SESSION-FILE: the saved session resumes (and the page is served)
    local out
    out=$(sclient -sess_in "$1")
    grep -qx "$HELLO" <<<"$out" && grep -q '^Reused, ' <<<"$out"
}
served_in_full() { # SESSION-FILE: a full handshake, the page still served
    local out
    out=$(sclient -sess_in "$1")
    grep -qx "$HELLO" <<<"$out" && grep -q '^New, ' <<<"$out"
}

check "rotations are counted in the metrics" wait_rotations 1
check "two ticket keys after a rotation (new and previous)" \
    [ "$(metric spk_edge_ticket_keys)" = 2 ]

# One round: right after a rotation (about 2 s before the next one) a session
# is saved and resumed; then it must resume after the next rotation and not
# after the one after that. A round where a rotation came before its step
# could run (a loaded machine) says nothing and is run again.
round() {
    local r0
    r0=$(rotations)
    wait_rotations $((r0 + 1)) || return 2
    r0=$(rotations)
    sclient -sess_out sess.pem >full.out
    grep -qx "$HELLO" full.out && ! grep -q '^Reused, ' full.out || return 2
    now_ok=no
    resumes sess.pem && now_ok=yes
    [ "$(rotations)" -eq "$r0" ] || return 1
    wait_rotations $((r0 + 1)) || return 2
    one_ok=no
    resumes sess.pem && one_ok=yes
    [ "$(rotations)" -eq $((r0 + 1)) ] || return 1
    unknown_before=$(metric 'spk_edge_session_tickets_total{event="unknown_key"}')
    wait_rotations $((r0 + 2)) || return 2
    two_full=no
    served_in_full sess.pem && two_full=yes
    unknown_after=$(metric 'spk_edge_session_tickets_total{event="unknown_key"}')
    return 0
}
rc=1
for _ in 1 2 3; do
    round
    rc=$?
    [ $rc -eq 1 ] || break
done
if [ $rc -eq 0 ]; then
    check "a saved TLS 1.3 session resumes at once" [ $now_ok = yes ]
    check "... and after one rotation (the previous key still opens it)" [ $one_ok = yes ]
    check "... and not after two rotations (a full handshake, the page still served)" \
        [ $two_full = yes ]
    check "... the ticket's key is unknown then ($unknown_before -> $unknown_after)" \
        [ "$unknown_after" -gt "$unknown_before" ]
else
    fail "rotation rounds did not run (rc $rc): $(tail -3 edge.log)"
fi

# A reload keeps the edge's own keys: a session saved before a SIGHUP resumes
# after it (a new set would not know its key).
sclient -sess_out hup.pem >/dev/null
kill -HUP $EDGE_PID
for _ in $(seq 1 50); do
    grep -q "edge: reloaded" edge.log && break
    sleep 0.1
done
check "SIGHUP reloads" grep -q "edge: reloaded" edge.log
check "a session saved before a SIGHUP resumes after it" resumes hup.pem

sed 's/^ticket-key-rotate-s 2$/ticket-key-rotate-s 0/' edge.conf >zero.conf
check "edge check refuses ticket-key-rotate-s 0" \
    bash -c "! '$EDGE' check zero.conf >zero.out 2>&1 && grep -q 'zero.conf:[0-9]*: .0. is not a number in 1..86400' zero.out"

kill $EDGE_PID 2>/dev/null
wait $EDGE_PID 2>/dev/null
check "no sanitizer reports" lib_edge_no_sanitizer_reports
if [ $failed -ne 0 ]; then
    echo "--- edge.log"
    tail -20 edge.log
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
