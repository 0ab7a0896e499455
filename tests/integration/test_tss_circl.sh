#!/usr/bin/env bash
# Threshold mode against Cloudflare CIRCL's tss/rsa (Debian golang-go and
# golang-github-cloudflare-circl-dev, built offline): for a threshold split
# made by keysplit, CIRCL computes signature shares from the same key shares
# s_i; they must equal ours byte for byte, our combiner must turn CIRCL's
# shares mixed with ours into signatures `openssl dgst -verify` accepts, and
# CIRCL's CombineSignShares must do the same with ours. CIRCL 1.3.1 divides
# its Lagrange coefficients as integers and is wrong for non-consecutive
# sets, so its combine gets consecutive sets only; ours gets {1, 3, 5}.
# The keys here are not of safe primes, so their records carry no
# verification keys and no share has a proof: CIRCL makes none. For a record
# with verification keys a combiner refuses any share without its proof, so
# CIRCL's shares (and SignShare's output alone) do not serve such a key.
# Exits 77 (skipped) when Go or CIRCL is not installed.
# Usage: test_tss_circl.sh BUILD_DIR
set -euo pipefail

CIRCL_SRC=/usr/share/gocode/src/github.com/cloudflare/circl/tss/rsa
if ! command -v go >/dev/null || [ ! -d "$CIRCL_SRC" ]; then
    echo "SKIP: needs golang-go and golang-github-cloudflare-circl-dev"
    exit 77
fi
# shellcheck source=tests/integration/lib_edge.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_scratch test-tss-circl "${1:-}"
TOOL=$BUILD/tests/tss_tool

unhex() { python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$1"; }
tohex() { od -An -tx1 -v | tr -d ' \n'; }

# Offline: Debian's Go tree, no module proxy.
GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS='' GOCACHE=$BUILD/go-cache \
    go build -o "$T/circl_tss" "$SRC/tests/interop/circl_tss.go"
CIRCL=$T/circl_tss

cd "$T"
openssl pkey -in "$DATA/rsa2048.pem" -pubout -out pub.pem
lib_edge_keygen h1 h2 h3 h4 h5

# verify_sig OP SIG_HEX: openssl dgst -verify over msg.
verify_sig() {
    local op=$1 opts=()
    unhex "$2" >sig.bin
    case $op in
    03) opts=(-sha256) ;;
    05) opts=(-sha512) ;;
    11) opts=(-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32) ;;
    13) opts=(-sha512 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:64) ;;
    esac
    openssl dgst "${opts[@]}" -verify pub.pem -signature sig.bin msg >/dev/null
}

for spec in "3 5" "2 3"; do
    read -r k n <<<"$spec"
    holders=()
    for i in $(seq 1 "$n"); do holders+=(--holder "keys/h$i.pub"); done
    dir=split-$k-$n
    id=$("$KS" split --key "$DATA/rsa2048.pem" --threshold "$k" --mode threshold "${holders[@]}" --out "$dir")
    rec=$dir/$id.record
    read -r N E players thr < <("$TOOL" pub "$rec")
    declare -A S=()
    for i in $(seq 1 "$n"); do
        read -r idx s < <("$TOOL" open "$rec" "$dir/$id.h$i.share" "keys/h$i.key")
        S[$idx]=$s
    done
    for op in 03 05 11 13; do
        head -c 1000 /dev/urandom >msg
        case $op in
        03 | 11) digest=$(openssl dgst -sha256 -binary msg | tohex) ;;
        *) digest=$(openssl dgst -sha512 -binary msg | tohex) ;;
        esac
        salt=()
        [ "$op" = 11 ] && salt=("$(head -c 32 /dev/urandom | tohex)")
        [ "$op" = 13 ] && salt=("$(head -c 64 /dev/urandom | tohex)")
        em=$("$TOOL" encode "$rec" "$op" "$digest" "${salt[@]}")
        declare -A OURS=() THEIRS=()
        same=1
        for i in $(seq 1 "$n"); do
            OURS[$i]=$("$TOOL" sign "$rec" "$dir/$id.h$i.share" "keys/h$i.key" "$em")
            THEIRS[$i]=$("$CIRCL" sign "$players" "$thr" "$i" "${S[$i]}" "$N" "$E" "$em")
            [ "${OURS[$i]}" = "${THEIRS[$i]}" ] || same=0
        done
        check "$k-of-$n op $op: CIRCL's signature shares equal ours for all $n parties" [ $same -eq 1 ]
        # Ours combines CIRCL's shares with ours, on a non-consecutive set.
        if [ "$k" -eq 3 ]; then
            set_desc="CIRCL's 1, 3 + our 5"
            parts=("1:${THEIRS[1]}" "3:${THEIRS[3]}" "5:${OURS[5]}")
        else
            set_desc="CIRCL's 3 + our 1"
            parts=("1:${OURS[1]}" "3:${THEIRS[3]}")
        fi
        if sig=$("$TOOL" combine "$rec" "$em" "${parts[@]}") && verify_sig "$op" "$sig"; then
            pass "$k-of-$n op $op: our combiner, $set_desc: openssl dgst -verify accepts"
        else
            fail "$k-of-$n op $op: our combiner, $set_desc"
        fi
        # CIRCL combines ours, on a consecutive set.
        parts=()
        for i in $(seq 1 "$k"); do parts+=("$i:${OURS[$i]}"); done
        if sig=$("$CIRCL" combine "$players" "$thr" "$N" "$E" "$em" "${parts[@]}") &&
            verify_sig "$op" "$sig"; then
            pass "$k-of-$n op $op: CIRCL's combine of our 1..$k: openssl dgst -verify accepts"
        else
            fail "$k-of-$n op $op: CIRCL's combine of our 1..$k"
        fi
        # A CIRCL share of another message, in first place, is named and left out.
        if [ "$k" -eq 3 ]; then
            other=$("$CIRCL" sign "$players" "$thr" 2 "${S[2]}" "$N" "$E" "$("$TOOL" encode "$rec" "$op" "$(head -c ${#digest} /dev/zero | tr '\0' 1)" "${salt[@]}")")
            if sig=$("$TOOL" combine "$rec" "$em" "2:$other" "1:${THEIRS[1]}" "3:${OURS[3]}" "4:${THEIRS[4]}" 2>err) &&
                verify_sig "$op" "$sig" && grep -q 'faulty party 2' err; then
                pass "$k-of-$n op $op: a wrong share is named (party 2) and 3 good ones still sign"
            else
                fail "$k-of-$n op $op: wrong share: $(cat err)"
            fi
        fi
        unset OURS THEIRS
    done
    unset S
done

echo "passed=$passed failed=$failed"
[ "$failed" -eq 0 ]
