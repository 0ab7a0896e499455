#!/usr/bin/env bash
# Threshold mode on real share-holders: keysplit splits RSA-2048 2-of-3 in
# threshold mode, three share-holder daemons on 127.0.0.1 load their key
# shares (with the record), and SIGSHARE_REQUESTs over CURVE (wire_probe.py)
# get signature shares that combine (tss_tool) into signatures
# `openssl dgst -verify` accepts, PKCS#1 v1.5 and PSS; for a key of safe
# primes each share carries Shoup's proof, checked against the record (and
# failing for a share presented as another holder's). Refused with clear
# codes, the holder serving on: a decryption op and a SHARE_REQUEST for a
# threshold key (unsupported), a digest or PSS salt of the wrong length
# (malformed), a key it has no share of (unknown-key), a client not allowed
# the key (not-allowed). Every signature share is one audit line. After
# 1,000 signature shares, a scan of h1's memory (tests/bench/bench_memscan_pid,
# as root) finds no p, q, d, dp, dq, qinv and no other holder's key share,
# while it does find h1's own exponent 2 Delta s_1 (the positive control).
# Usage: test_holder_sigshare.sh BUILD_DIR
set -u

B=$(cd "${1:?usage: test_holder_sigshare.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
KS=$B/split/keysplit
SH=$B/share-holder/share-holder
TOOL=$B/tests/tss_tool
PROBE=$SRC/tests/integration/wire_probe.py
# shellcheck source=tests/integration/lib_holder.sh
. "$SRC/tests/integration/lib_holder.sh"
holder_need_bins "$KS" "$SH" "$TOOL"
holder_scratch spk-holder-sigshare

unhex() { python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$1"; }
tohex() { od -An -tx1 -v | tr -d ' \n'; }
# item TAG HEX: one wire item (tag, u16 length, value) in hex
item() { printf '%02x%04x%s' "$1" $((${#2} / 2)) "$2"; }
quiet() { "$@" >/dev/null; }

for n in h1 h2 h3 edge other; do
    "$KS" keygen --name "$n" --out "$T" >/dev/null
done
KEY=$("$KS" split --key "$SRC/tests/data/rsa2048.pem" --threshold 2 --mode threshold \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --holder "$T/h3.pub" --out "$T/split")
REC=$T/split/$KEY.record
check "keysplit made a threshold split" test -f "$REC"
# A key of safe primes: its record carries verification keys, its shares proofs.
SKEY=$("$KS" split --key "$SRC/tests/data/rsa2048-safe.pem" --threshold 2 --mode threshold \
    --holder "$T/h1.pub" --holder "$T/h2.pub" --holder "$T/h3.pub" --out "$T/safe")
SREC=$T/safe/$SKEY.record
check "the safe-prime key's record has verification keys" \
    sh -c "grep -q '^verify-base ' '$SREC' && [ \$(grep -c '^verify-key ' '$SREC') -eq 3 ] &&
           ! grep -q '^verify-' '$REC'"
for h in h1 h2 h3; do
    mkdir -p "$T/$h.d"
    cp "$T/split/$KEY.$h.share" "$REC" "$T/$h.d/"
    cp "$T/safe/$SKEY.$h.share" "$SREC" "$T/$h.d/"
    cat >"$T/$h.allow" <<EOF2
client edge $(z85 edge) * 127.0.0.1/32
client other $(z85 other) $(head -c 32 /dev/urandom | tohex)
EOF2
    holder_start "$h" "$T/$h.d" "$T/$h.allow" '*'
done
check "three holders serve the threshold key" test -n "${h1_ep:-}" -a -n "${h2_ep:-}" -a -n "${h3_ep:-}"

# probe HOLDER CLIENT FRAME...: wire_probe over CURVE as CLIENT
probe() {
    local ep_var="${1}_ep"
    /usr/bin/python3 "$PROBE" --curve "$T/$1.pub" "$T/$2.key" "${!ep_var}" "${@:3}"
}
# sigshare_frame REQ OP DIGEST_HEX [SALT_HEX] (of $KEY, or of the key in $FKEY)
sigshare_frame() {
    local body
    body=$(item 1 "${FKEY:-$KEY}")$(item 2 "$2")$(item 11 "$3")
    [ -n "${4:-}" ] && body=$body$(item 17 "$4")
    echo "8:$1:$body"
}

for op in 03 04 05 06 11 12 13; do
    head -c 500 /dev/urandom >"$T/msg"
    case $op in
    03 | 11) md=sha256 ;;
    04 | 12) md=sha384 ;;
    05 | 13) md=sha512 ;;
    06) md=md5-sha1 ;;
    esac
    digest=$(openssl dgst -"$md" -binary "$T/msg" | tohex)
    salt=""
    case $op in 1?) salt=$(head -c $((${#digest} / 2)) /dev/urandom | tohex) ;; esac
    em=$("$TOOL" encode "$REC" "$op" "$digest" ${salt:+"$salt"})
    parts=()
    for i in 1 3; do
        out=$(probe "h$i" edge "$(sigshare_frame 7 "$op" "$digest" "$salt")")
        parts+=("$i:${out##*:}")
        case $out in 9:7:0:*) ;; *) bad "op $op: h$i answered $out" ;; esac
    done
    sig=$("$TOOL" combine "$REC" "$em" "${parts[@]}")
    unhex "$sig" >"$T/sig"
    opts=(-"$md")
    case $op in 1?) opts+=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:$((${#digest} / 2))) ;; esac
    openssl pkey -in "$SRC/tests/data/rsa2048.pem" -pubout -out "$T/pub.pem" 2>/dev/null
    check "op $op: holders 1 and 3 sign; openssl dgst -verify accepts" \
        quiet openssl dgst "${opts[@]}" -verify "$T/pub.pem" -signature "$T/sig" "$T/msg"
    check "op $op: no proof without verification keys" [ "$(echo "$out" | tr ':' '\n' | wc -l)" -eq 4 ]
done

# Safe-prime key: every signature share comes with Shoup's proof, which checks
# against the record; a share presented as another holder's does not.
openssl pkey -in "$SRC/tests/data/rsa2048-safe.pem" -pubout -out "$T/spub.pem" 2>/dev/null
for op in 03 12; do
    head -c 500 /dev/urandom >"$T/msg"
    md=sha256
    [ "$op" = 12 ] && md=sha384
    digest=$(openssl dgst -"$md" -binary "$T/msg" | tohex)
    salt=""
    [ "$op" = 12 ] && salt=$(head -c 48 /dev/urandom | tohex)
    em=$("$TOOL" encode "$SREC" "$op" "$digest" ${salt:+"$salt"})
    parts=()
    proofs_ok=0
    for i in 1 2 3; do
        out=$(FKEY=$SKEY probe "h$i" edge "$(FKEY=$SKEY sigshare_frame 40 "$op" "$digest" "$salt")")
        IFS=: read -r typ _ code xi c z <<<"$out"
        [ "$typ:$code" = 9:0 ] || bad "safe key op $op: h$i answered ${out:0:40}"
        quiet "$TOOL" verify "$SREC" "$em" "$i" "$xi" "$c" "$z" && proofs_ok=$((proofs_ok + 1))
        [ "$i" = 1 ] && { xi1=$xi c1=$c z1=$z; }
        [ "$i" != 2 ] && parts+=("$i:$xi")
    done
    check "safe key op $op: all 3 shares come with a proof that verifies" [ "$proofs_ok" -eq 3 ]
    check "safe key op $op: h1's share and proof as h2's: fault" \
        sh -c "! '$TOOL' verify '$SREC' '$em' 2 '$xi1' '$c1' '$z1' >/dev/null"
    unhex "$("$TOOL" combine "$SREC" "$em" "${parts[@]}")" >"$T/sig"
    opts=(-"$md")
    [ "$op" = 12 ] && opts+=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48)
    check "safe key op $op: holders 1 and 3 sign; openssl dgst -verify accepts" \
        quiet openssl dgst "${opts[@]}" -verify "$T/spub.pem" -signature "$T/sig" "$T/msg"
done
check "h1 audited the safe key's 2 signature shares as any other" \
    test "$(grep -c "key=$SKEY .*outcome=signed index=1 " "$T/h1.audit")" -eq 2

d32=$(head -c 32 /dev/urandom | tohex)
d31=$(head -c 31 /dev/urandom | tohex)
s31=$(head -c 31 /dev/urandom | tohex)
# What the holder must refuse, and it keeps serving after each (PING answered).
check "decryption op: unsupported (25)" \
    test "$(probe h2 edge "$(sigshare_frame 21 25 "$d32")" 1:22)" = "7:21:25 2:22:0"
check "digest of the wrong length: malformed (3)" \
    test "$(probe h2 edge "$(sigshare_frame 22 03 "$d31")" 1:23)" = "7:22:3 2:23:0"
check "PSS salt of the wrong length: malformed (3)" \
    test "$(probe h2 edge "$(sigshare_frame 23 11 "$d32" "$s31")" 1:24)" = "7:23:3 2:24:0"
check "PKCS#1 with a salt: malformed (3)" \
    test "$(probe h2 edge "$(sigshare_frame 24 03 "$d32" "$d32")" 1:25)" = "7:24:3 2:25:0"
check "SHARE_REQUEST for a threshold key: unsupported (25), no share released" \
    test "$(probe h2 edge "3:26:$(item 1 "$KEY")$(item 2 03)$(item 3 "$d32")$(item 4 "$d32")$(item 16 0001)" 1:27)" = "7:26:25 2:27:0"
check "a client not allowed the key: not-allowed (19)" \
    test "$(probe h2 other "$(sigshare_frame 28 03 "$d32")")" = "7:28:19"
UNKNOWN=$(head -c 32 /dev/urandom | tohex)
check "an unknown key: unknown-key (18)" \
    test "$(probe h2 edge "8:29:$(item 1 "$UNKNOWN")$(item 2 03)$(item 11 "$d32")")" = "7:29:18"
check "h2 still signs after the refusals" \
    test "$(probe h2 edge "$(sigshare_frame 30 03 "$d32")" | cut -d: -f1-3)" = "9:30:0"
check "h1 audited 7 signature shares" test "$(grep -c "key=$KEY .*outcome=signed index=1 " "$T/h1.audit")" -eq 7
# refusals are summed per client (PROTOCOL.md 7.5); SIGHUP writes the summaries
kill -HUP "$h2_pid"
for _ in $(seq 100); do grep -q 'summary client=other ' "$T/h2.audit" && break; sleep 0.05; done
refusals=$(grep -oE 'summary client=(edge|other) .*' "$T/h2.audit" | grep -oE '(not-allowed|unknown-key|error)=[0-9]+' |
    cut -d= -f2 | awk '{s += $1} END {print s + 0}')
check "h2 audited the refusals in its summaries ($refusals)" test "$refusals" -ge 6
check "no holder log mentions a share value" sh -c "! grep -qi 'sealed\\|[0-9a-f]\\{64,\\}' $T/h1.log $T/h2.log $T/h3.log"

# ---- memory scan of h1 after 1,000 signature shares ------------------------------
SCAN=$B/tests/bench_memscan_pid
if [ "$(id -u)" != 0 ] || [ ! -x "$SCAN" ]; then
    bad "the memory scan needs root and $SCAN"
else
    frames=()
    for i in $(seq 1000 1999); do
        if [ $((i % 2)) = 0 ]; then
            frames+=("$(sigshare_frame "$i" 03 "$d32")")
        else
            frames+=("$(sigshare_frame "$i" 11 "$d32" "$d32")")
        fi
    done
    # --wait: a loaded machine may keep the holder off the CPU for a while.
    n_ok=$(/usr/bin/python3 "$PROBE" --curve "$T/h1.pub" "$T/edge.key" --wait 10000 --count 1000 "$h1_ep" \
        "${frames[@]}" | tr ' ' '\n' | grep -c '^9:')
    check "h1 answered 1,000 signature shares" [ "$n_ok" -eq 1000 ]
    openssl pkey -in "$SRC/tests/data/rsa2048.pem" -noout -text | awk '
        /^[A-Za-z]/ { name = $1; sub(":$", "", name); next }
        { gsub(/[ :]/, ""); if (name ~ /^(prime1|prime2|privateExponent|exponent1|exponent2|coefficient)$/) hex[name] = hex[name] $0 }
        END { for (n in hex) print n, hex[n] }' | "$SCAN" mask key. >"$T/key.needles"
    for i in 2 3; do
        "$TOOL" open "$REC" "$T/split/$KEY.h$i.share" "$T/h$i.key" | sed "s/^/share./" |
            "$SCAN" mask other. >>"$T/other.needles"
    done
    # 2 Delta s_1 with Delta = 3! = 6: what h1's signer holds.
    "$TOOL" open "$REC" "$T/split/$KEY.h1.share" "$T/h1.key" |
        /usr/bin/python3 -c 'import sys; i, s = sys.stdin.read().split(); h = "%x" % (12 * int(s, 16)); print("own.2delta.s%s %s" % (i, "0" * (len(h) % 2) + h))' |
        "$SCAN" mask own. >"$T/own.needles"
    check "needles: p, q, d, dp, dq, qinv; s_2, s_3; h1's exponent"         [ "$(wc -l <"$T/key.needles")$(wc -l <"$T/other.needles")$(wc -l <"$T/own.needles")" = 621 ]
    cat "$T/key.needles" "$T/other.needles" >"$T/forbidden.needles"
    "$SCAN" scan "${h1_pid:-0}" "$T/forbidden.needles" >"$T/scan.out" 2>&1
    check "h1 holds no p, q, d, dp, dq, qinv and no other holder's share" \
        [ $? -eq 0 ]
    "$SCAN" scan "${h1_pid:-0}" "$T/own.needles" >"$T/own.out" 2>&1
    check "the scan does find h1's own exponent (positive control)" [ $? -eq 1 ]
    grep -v '^needle' "$T/scan.out" | head -5
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
