#!/usr/bin/env bash
# test_combiner_exp.sh BUILD_DIR: exp-code, which of OpenSSL's exponentiation
# code `combiner run` runs with (combiner/cmd/exp.c), with real processes.
#   - `combiner probe-exp` times both codes and names auto's choice;
#     `--self` times one pair per line of input; a stray argument is refused;
#   - exp-code avx2: the daemon runs itself again (same pid) with
#     OPENSSL_ia32cap=:~0x80100 in its environment, says so once in its
#     log, and its signatures and decryptions are right (the combiner checks
#     each signature with the public key before it answers; the PKCS#1
#     signature is checked here too, with openssl); a reload that brings
#     an RSA-3072 key says the code it keeps is slower for it;
#   - exp-code openssl: no variable, no second run;
#   - auto: for a file with an RSA-3072 key besides the RSA-2048 one, OpenSSL's
#     own choice, said in the log; for RSA-2048 keys only, what the log says
#     it chose is what the environment shows, and the measurement (held to
#     one CPU) left the daemon free to run on every CPU it was given;
#   - OPENSSL_ia32cap already set by whoever started it: left as it is, said;
#   - a bad exp-code value: the daemon refuses to start, naming the line;
#   - auto with a key record that cannot be read: the log line on the code
#     names the record's fault (not "not every key is RSA-2048");
#   - `combiner check` says what `run` would run.
set -u
. "$(dirname "$0")/lib_edge.sh"
lib_edge_init test-combiner-exp "${1:-}"
TC=$BUILD/combiner/comb-testclient
[ -x "$COMBINER" ] && [ -x "$TC" ] || die "missing $COMBINER or $TC"

lib_edge_pki
lib_edge_mkcert exp 2048 || die "exp certificate and key"
lib_edge_mkcert exp3k 3072 || die "exp3k certificate and key"
lib_edge_holder_keys
ID=$(lib_edge_split exp) || die "split"
ID3=$(lib_edge_split exp3k) || die "split 3072"
lib_edge_holders
DGST=$(printf 'exp' | openssl dgst -sha256 -hex | awk '{print $NF}')
CT=00$(printf '11%.0s' $(seq 255)) # a modulus-long input below n
MASK=':~0x80100'

# comb_conf NAME KEYS [EXTRA...]: the combiner's file NAME.conf for the keys
# KEYS (names, space-separated), serving unix://$T/NAME.sock
comb_conf() {
    local name=$1 keys=$2
    shift 2
    {
        # shellcheck disable=SC2086 # KEYS is a list
        lib_edge_comb_conf $keys
        echo "listen unix://$T/$name.sock"
        for l in "$@"; do echo "$l"; done
    } >"$name.conf"
}
# start_comb NAME [ENV...]: combiner run with NAME.conf; waits until serving.
start_comb() {
    local name=$1
    shift
    env "$@" "$COMBINER" run --config "$name.conf" 2>"$name.log" &
    eval "PID_$name=$!"
    PIDS+=($!)
    lib_edge_wait_log "$name.log" "combiner: serving" 150 || {
        cat "$name.log"
        die "combiner $name did not start"
    }
}
stop_comb() { # NAME
    eval "kill \$PID_$1; wait \$PID_$1 2>/dev/null"
}
# cap_of PID: OPENSSL_ia32cap in the environment PID was executed with, or "-"
cap_of() {
    tr '\0' '\n' <"/proc/$1/environ" | sed -n 's/^OPENSSL_ia32cap=//p' | grep . || echo -
}
op() { "$TC" --timeout 3000 "$@" 2>&1; }
# check_pss DESC NAME ID HEXDIGITS: NAME's combiner signs with key ID (PSS),
# a signature of HEXDIGITS hex digits
check_pss() {
    local out
    out=$(op "unix://$T/$2.sock" "$3" sign-pss-sha256 "$DGST")
    check "$1 (${out:0:24})" grep -q "^ok [0-9a-f]\{$4\}$" <<<"$out"
}

# ---- probe-exp ----------------------------------------------------------------------------
out=$("$COMBINER" probe-exp 2>&1)
check "probe-exp times OpenSSL's own choice" grep -q '^  openssl  *[1-9][0-9]* us' <<<"$out"
check "probe-exp times its AVX2 code" grep -q '^  avx2  *[1-9][0-9]* us' <<<"$out"
check "probe-exp names auto's choice" grep -q '^exp-code auto runs: \(avx2\|openssl\) ' <<<"$out"
out=$(printf '\n\n\n' | "$COMBINER" probe-exp --self 2>&1)
# three lines, each a time
check "probe-exp --self prints nanoseconds for each line of input ($out)" \
    [ "$(grep -cx '[1-9][0-9]*' <<<"$out"):$(wc -l <<<"$out")" = 3:3 ]
out=$("$COMBINER" probe-exp --self </dev/null 2>&1)
check "probe-exp --self ends with its input ($out)" [ -z "$out" ]
out=$("$COMBINER" probe-exp extra 2>&1)
rc=$?
check "probe-exp refuses a stray argument (status $rc: $out)" \
    bash -c '[ "$1" -ne 0 ] && grep -q "unexpected argument" <<<"$2"' _ "$rc" "$out"

# ---- exp-code avx2 ------------------------------------------------------------------------
comb_conf xa exp "exp-code avx2"
start_comb xa
check "avx2: the daemon ran itself again with OPENSSL_ia32cap=$MASK ($(cap_of "$PID_xa"))" \
    [ "$(cap_of "$PID_xa")" = "$MASK" ]
check "avx2: the log says so, once" \
    [ "$(grep -c "^combiner: RSA exponentiation: OpenSSL's AVX2 code (exp-code avx2)$" xa.log)" = 1 ]
check "avx2: it started once (one 'serving' line)" [ "$(grep -c 'combiner: serving' xa.log)" = 1 ]
check_pss "avx2: a PSS signature" xa "$ID" 512
out=$(op "unix://$T/xa.sock" "$ID" sign-pkcs1-sha256 "$DGST")
sig=$(sed -n 's/^ok //p' <<<"$out")
printf 'exp' >msg.txt
printf '%s' "$sig" | xxd -r -p >sig.bin
openssl x509 -in exp.pem -noout -pubkey >exp.pub.pem
check "avx2: a PKCS#1 signature that openssl verifies" \
    bash -c 'openssl dgst -sha256 -verify exp.pub.pem -signature sig.bin msg.txt >/dev/null'
out=$(op "unix://$T/xa.sock" "$ID" decrypt-tls-premaster "$CT")
check "avx2: a premaster decryption (${out:0:24})" grep -q "^ok [0-9a-f]\{96\}$" <<<"$out"
# A reload that brings an RSA-3072 key: served, and the log says the code
# this process keeps is slower for it.
comb_conf xa "exp exp3k" "exp-code avx2"
kill -HUP "$PID_xa"
lib_edge_wait_log xa.log "combiner: reloaded" 100 || fail "avx2: the reload did not finish"
check "avx2: a reload bringing an RSA-3072 key says the AVX2 code is slower for it" \
    grep -q "^combiner: reload: 1 key(s) not RSA-2048, for which OpenSSL's AVX2 code that this process runs (exp-code) is slower; a restart chooses again$" xa.log
check_pss "avx2: ... and the RSA-3072 key signs" xa "$ID3" 768
stop_comb xa
out=$("$COMBINER" check --config xa.conf 2>&1)
check "avx2: combiner check says what run would run" \
    grep -q "^combiner check: RSA exponentiation: OpenSSL's AVX2 code (exp-code avx2)$" <<<"$out"

# ---- exp-code openssl ---------------------------------------------------------------------
comb_conf xo exp "exp-code openssl"
start_comb xo
check "openssl: no OPENSSL_ia32cap ($(cap_of "$PID_xo"))" [ "$(cap_of "$PID_xo")" = - ]
check "openssl: nothing said about it" bash -c '! grep -q "RSA exponentiation" xo.log'
check_pss "openssl: a PSS signature" xo "$ID" 512
stop_comb xo

# ---- auto -----------------------------------------------------------------------------------
comb_conf xm "exp exp3k"
start_comb xm
check "auto, an RSA-3072 key too: OpenSSL's own choice ($(cap_of "$PID_xm"))" \
    [ "$(cap_of "$PID_xm")" = - ]
check "... said in the log" \
    grep -q "^combiner: RSA exponentiation: OpenSSL's own choice (exp-code auto: not every key is RSA-2048)$" xm.log
check_pss "... and the RSA-3072 key signs" xm "$ID3" 768
stop_comb xm
out=$("$COMBINER" check --config xm.conf 2>&1)
check "auto, an RSA-3072 key too: combiner check says so" \
    grep -q "^combiner check: RSA exponentiation: OpenSSL's own choice (exp-code auto: not every key is RSA-2048)$" <<<"$out"

comb_conf xu exp
start_comb xu
line=$(grep "^combiner: RSA exponentiation: " xu.log)
if grep -q "OpenSSL's AVX2 code (exp-code auto: [0-9]* us a pair of 1024-bit halves, against [0-9]* us" <<<"$line"; then
    check "auto chose the AVX2 code, and runs with it ($line)" [ "$(cap_of "$PID_xu")" = "$MASK" ]
else
    check "auto kept OpenSSL's own choice, and runs with it ($line)" \
        bash -c '[ "$1" = - ] && grep -q "own choice (exp-code auto: [0-9]* us a pair of 1024-bit halves, its AVX2 code [0-9]* us)" <<<"$2"' \
        _ "$(cap_of "$PID_xu")" "$line"
fi
cpus() { awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$1/status"; }
check "auto: the daemon may run on the CPUs it was started with ($(cpus "$PID_xu") against $(cpus $$))" \
    [ "$(cpus "$PID_xu")" = "$(cpus $$)" ]
check_pss "auto: a PSS signature" xu "$ID" 512
stop_comb xu

# ---- OPENSSL_ia32cap set by whoever started it ----------------------------------------------
comb_conf xp exp "exp-code avx2"
start_comb xp OPENSSL_ia32cap='~0x0'
check "preset: left as it was ($(cap_of "$PID_xp"))" [ "$(cap_of "$PID_xp")" = '~0x0' ]
check "... and said" \
    grep -q "^combiner: RSA exponentiation: OPENSSL_ia32cap is set (~0x0): exp-code avx2 not applied$" xp.log
stop_comb xp

# ---- a bad value --------------------------------------------------------------------------
comb_conf xb exp "exp-code fastest"
n=$(grep -n '^exp-code fastest$' xb.conf | cut -d: -f1)
out=$(timeout 10 "$COMBINER" run --config xb.conf 2>&1)
rc=$?
check "a bad exp-code: the daemon does not start (status $rc: $out)" \
    bash -c '[ "$1" -ne 0 ] && [ "$1" -ne 124 ] && grep -q "line $3: '"'"'exp-code'"'"' is auto, openssl or avx2" <<<"$2"' \
    _ "$rc" "$out" "$n"

# ---- a key record that cannot be read ------------------------------------------------------
head -c 40 "shares/$ID.record" >shares/cut.record
comb_conf xr exp
sed -i "s|^record shares/$ID.record$|record shares/cut.record|" xr.conf
out=$(timeout 10 "$COMBINER" run --config xr.conf 2>&1)
rc=$?
check "a cut record: the daemon does not start (status $rc)" bash -c '[ "$1" -ne 0 ] && [ "$1" -ne 124 ]' _ "$rc"
check "... and auto names what is wrong with it ($(grep 'RSA exponentiation' <<<"$out"))" \
    grep -q "^combiner: RSA exponentiation: OpenSSL's own choice (exp-code auto: .*cut.record" <<<"$out"

check "no sanitizer report in any log" lib_edge_no_sanitizer_reports
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
