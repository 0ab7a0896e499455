#!/usr/bin/env bash
# keysplit end to end: keygen, split, info, verify, combine, and every refusal
# (each must exit non-zero with one "keysplit: ..." line and leave the output
# directory exactly as it was). Usage: test_keysplit.sh BUILD_DIR
set -euo pipefail

# shellcheck source=tests/integration/lib_edge.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_edge.sh"
lib_edge_scratch test-keysplit "${1:-}"

# run DESC CMD...: CMD must succeed; its output is in $T/stdout and $T/stderr.
run() {
    local desc=$1
    shift
    local rc=0
    "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
    if [ $rc -eq 0 ]; then
        pass "$desc"
    else
        fail "$desc (exit $rc): $(head -c 300 "$T/stderr")"
    fi
}

# lacks TEXT FILE / differs A B: small negations for check.
lacks() { ! grep -qF -- "$1" "$2"; }
differs() { ! cmp -s "$1" "$2"; }

# listing DIR: names, modes, sizes and contents of everything in DIR.
listing() {
    (cd "$1" && find . -printf '%p %m %s\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# refused DESC DIR CMD...: CMD must fail with exactly one "keysplit: " line on
# stderr and leave DIR unchanged. (DIR must not be $T, where the output goes.)
refused() {
    local desc=$1 dir=$2 rc=0
    shift 2
    listing "$dir" >"$T/before"
    "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
    listing "$dir" >"$T/after"
    if [ $rc -eq 0 ]; then
        fail "$desc: exited 0"
    elif [ "$(wc -l <"$T/stderr")" -ne 1 ] || ! grep -q '^keysplit: ' "$T/stderr"; then
        fail "$desc: stderr is not one 'keysplit: ' line: $(head -c 300 "$T/stderr")"
    elif ! cmp -s "$T/before" "$T/after"; then
        fail "$desc: $dir changed"
    else
        pass "$desc (exit $rc: $(cat "$T/stderr"))"
    fi
}

key_id_of() {
    openssl pkey -in "$1" -pubout -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1
}

[ -x "$KS" ] || { echo "no keysplit at $KS" >&2; exit 1; }
KEYS=$T/keys
OUT=$T/out
EMPTY=$T/empty
mkdir -p "$KEYS" "$OUT" "$EMPTY"

echo "== keygen"
for h in alice bob carol; do
    run "keygen $h" "$KS" keygen --name $h --out "$KEYS"
done
check "alice.key is mode 600" [ "$(stat -c %a "$KEYS/alice.key")" = 600 ]
check "alice.pub exists" [ -s "$KEYS/alice.pub" ]
refused "keygen refuses to overwrite alice" "$KEYS" "$KS" keygen --name alice --out "$KEYS"
cp "$KEYS/carol.pub" "$T/carol.pub.saved"
rm "$KEYS/carol.pub"
refused "keygen refuses when only NAME.key exists" "$KEYS" "$KS" keygen --name carol --out "$KEYS"
cp "$T/carol.pub.saved" "$KEYS/carol.pub"
refused "keygen refuses a bad name" "$KEYS" "$KS" keygen --name "../x" --out "$KEYS"
refused "keygen refuses a missing --out" "$KEYS" "$KS" keygen --name dave
refused "keygen refuses a directory whose parent is missing" "$KEYS" "$KS" keygen --name dave \
    --out "$T/nope/deeper"
check "keygen made no parent" [ ! -e "$T/nope" ]
refused "keygen refuses an --out that is a file" "$KEYS" "$KS" keygen --name dave --out "$DATA/rsa2048.pem"
run "keygen makes a missing --out" "$KS" keygen --name dave --out "$T/newkeys/"
check "keygen made --out with mode 700" [ "$(stat -c %a "$T/newkeys")" = 700 ]
check "keygen wrote dave.key in it (mode 600)" [ "$(stat -c %a "$T/newkeys/dave.key")" = 600 ]
refused "keygen refuses an unknown flag" "$KEYS" "$KS" keygen --name dave --out "$KEYS" --frob
run "keygen --help" "$KS" keygen --help
check "keygen --help prints usage" grep -q 'Usage: keysplit keygen' "$T/stdout"

echo "== split 2-of-3"
H=(--holder "$KEYS/alice.pub" --holder "$KEYS/bob.pub" --holder "$KEYS/carol.pub")
want_id=$(key_id_of "$DATA/rsa2048.pem")
run "split rsa2048 2-of-3" "$KS" split --key "$DATA/rsa2048.pem" --threshold 2 "${H[@]}" --out "$OUT"
id=$(cat "$T/stdout")
check "split prints the key id (SHA-256 of the SPKI)" [ "$id" = "$want_id" ]
for f in "$id.record" "$id.alice.share" "$id.bob.share" "$id.carol.share"; do
    check "split wrote $f" [ -s "$OUT/$f" ]
done
check "split wrote nothing else" [ "$(find "$OUT" -type f | wc -l)" -eq 4 ]
check "share files are mode 600" [ "$(stat -c %a "$OUT/$id.bob.share")" = 600 ]
R=$OUT/$id.record
run "split makes a missing --out" "$KS" split --key "$DATA/rsa2048.pem" --threshold 2 "${H[@]}" \
    --out "$T/newshares"
check "split made --out with mode 700" [ "$(stat -c %a "$T/newshares")" = 700 ]
check "split wrote the record and three shares in it" [ "$(find "$T/newshares" -type f | wc -l)" -eq 4 ]
refused "split with a bad key leaves no new directory behind" "$EMPTY" "$KS" split \
    --key "$DATA/garbage.pem" --threshold 2 "${H[@]}" --out "$EMPTY/sub"

echo "== info"
run "info record" "$KS" info "$R"
check "info record: key id, 2 of 3, signature ok" \
    grep -q "key id: *$id" "$T/stdout"
check "info record: threshold" grep -q '2 of 3' "$T/stdout"
check "info record: signature ok" grep -q 'signature:.*: ok' "$T/stdout"
check "info record: holders in order" \
    [ "$(awk '$1 == "share" { sub(",", "", $4); printf "%s ", $4 }' "$T/stdout")" = "alice bob carol " ]
for h in alice bob carol; do
    run "info $h share" "$KS" info "$OUT/$id.$h.share"
    check "info $h share names its holder" grep -q "holder: *$h" "$T/stdout"
    run "info $h.pub" "$KS" info "$KEYS/$h.pub"
    run "info $h.key" "$KS" info "$KEYS/$h.key"
    check "info $h.key checks its keys" grep -q 'match the public keys' "$T/stdout"
    for s in $(grep -- '-secret' "$KEYS/$h.key" | cut -d' ' -f2-); do
        check "info $h.key does not print a secret key" lacks "$s" "$T/stdout"
    done
done
refused "info on a non-splitkey file" "$OUT" "$KS" info "$DATA/rsa2048.pem"
refused "info on a missing file" "$OUT" "$KS" info "$T/nope"
refused "info with no file" "$OUT" "$KS" info

echo "== verify"
run "verify 2 shares" "$KS" verify --record "$R" --share "$OUT/$id.bob.share" --holder-key "$KEYS/bob.key" \
    --share "$OUT/$id.carol.share" --holder-key "$KEYS/carol.key"
check "verify 2 shares says ok and p*q == N" grep -q '^ok: .*p \* q == N' "$T/stdout"
run "verify all 3 shares" "$KS" verify --record "$R" --share "$OUT/$id.alice.share" --holder-key "$KEYS/alice.key" \
    --share "$OUT/$id.bob.share" --holder-key "$KEYS/bob.key" --share "$OUT/$id.carol.share" --holder-key "$KEYS/carol.key"
run "verify 1 share (below k: checks it, says k are needed)" "$KS" verify --record "$R" \
    --share "$OUT/$id.alice.share" --holder-key "$KEYS/alice.key"
check "verify 1 share says more are needed" grep -q 'needed' "$T/stdout"
run "verify the record alone" "$KS" verify --record "$R"
refused "verify a share with another holder's key" "$OUT" "$KS" verify --record "$R" \
    --share "$OUT/$id.bob.share" --holder-key "$KEYS/carol.key"
refused "verify the same share twice" "$OUT" "$KS" verify --record "$R" \
    --share "$OUT/$id.bob.share" --holder-key "$KEYS/bob.key" --share "$OUT/$id.bob.share" --holder-key "$KEYS/bob.key"
refused "verify with unpaired --share" "$OUT" "$KS" verify --record "$R" --share "$OUT/$id.bob.share"
# A changed commitment digit in the record breaks its signature.
awk '$1 == "share" && $2 == 2 { c = substr($4, 8, 1); r = (c == "0") ? "1" : "0"; $4 = substr($4, 1, 7) r substr($4, 9) } { print }' \
    "$R" >"$T/tampered.record"
check "the tampered record differs" differs "$R" "$T/tampered.record"
refused "verify a tampered record" "$OUT" "$KS" verify --record "$T/tampered.record"
# A changed character of a sealed share does not open.
awk '/^sealed /{ s = $2; c = substr(s, 20, 1); r = (c == "A") ? "B" : "A"; $2 = substr(s, 1, 19) r substr(s, 21) } { print }' \
    "$OUT/$id.bob.share" >"$T/tampered.share"
check "the tampered share differs" differs "$OUT/$id.bob.share" "$T/tampered.share"
refused "verify a tampered share" "$OUT" "$KS" verify --record "$R" \
    --share "$T/tampered.share" --holder-key "$KEYS/bob.key"

echo "== combine"
mkdir "$T/rec"
PEM=$T/rec/rebuilt.pem
run "combine alice + carol" "$KS" combine --record "$R" --share "$OUT/$id.carol.share" --holder-key "$KEYS/carol.key" \
    --share "$OUT/$id.alice.share" --holder-key "$KEYS/alice.key" --out "$PEM"
check "the rebuilt key is mode 600" [ "$(stat -c %a "$PEM")" = 600 ]
check "openssl pkey -check accepts the rebuilt key" \
    bash -c 'openssl pkey -check -noout -in "$1" | grep -qx "Key is valid"' _ "$PEM"
check "the rebuilt key is PKCS#8" grep -q 'BEGIN PRIVATE KEY' "$PEM"
check "the rebuilt public key is the original's" \
    cmp -s <(openssl pkey -in "$PEM" -pubout) <(openssl pkey -in "$DATA/rsa2048.pem" -pubout)
check "the rebuilt key has the original's CRT values" \
    cmp -s <(openssl pkey -in "$PEM" -text -noout | sed -n '/^prime1/,$p') \
    <(openssl pkey -in "$DATA/rsa2048.pem" -text -noout | sed -n '/^prime1/,$p')
# d is e^-1 mod lcm(p-1, q-1) as OpenSSL generates it, so nothing differs.
check "the rebuilt key is the original's PEM, byte for byte" cmp -s "$PEM" "$DATA/rsa2048.pem"
check "the rebuilt key is the original's DER, byte for byte" \
    cmp -s <(openssl pkey -in "$PEM" -outform DER) <(openssl pkey -in "$DATA/rsa2048.pem" -outform DER)
refused "combine refuses an existing output" "$T/rec" "$KS" combine --record "$R" --share "$OUT/$id.carol.share" \
    --holder-key "$KEYS/carol.key" --share "$OUT/$id.alice.share" --holder-key "$KEYS/alice.key" --out "$PEM"
refused "combine refuses k-1 shares" "$T/rec" "$KS" combine --record "$R" --share "$OUT/$id.carol.share" \
    --holder-key "$KEYS/carol.key" --out "$T/rec/one.pem"

echo "== split of the encrypted key"
mkdir "$T/enc"
# passphrase files are secret: the checked-out 0644 copy is refused, a 0600 one is read
cp "$DATA/passphrase.txt" "$DATA/wrong-passphrase.txt" "$T/"
refused "a passphrase file group or others may read" "$T/enc" "$KS" split \
    --key "$DATA/rsa2048-encrypted.pem" --passphrase-file "$DATA/passphrase.txt" --threshold 3 \
    "${H[@]}" --out "$T/enc"
check "... with a message that says how to fix it" grep -q 'permissions too open.*chmod 600' "$T/stderr"
# The same from a path of 400 characters: the message is not cut short.
LONG=$T/long/$(printf 'a-directory-of-a-long-path/%.0s' $(seq 1 15))
mkdir -p "$LONG"
cp "$DATA/passphrase.txt" "$LONG/"
chmod 0644 "$LONG/passphrase.txt"
refused "a passphrase file others may read, in a long path" "$T/enc" "$KS" split \
    --key "$DATA/rsa2048-encrypted.pem" --passphrase-file "$LONG/passphrase.txt" --threshold 3 \
    "${H[@]}" --out "$T/enc"
check "... with the whole message, to its fix" grep -q "$LONG/passphrase.txt: permissions too open.*(chmod 600)\$" "$T/stderr"
rm -rf "$T/long"
chmod 600 "$T/passphrase.txt" "$T/wrong-passphrase.txt"
run "split the encrypted key with its passphrase" "$KS" split --key "$DATA/rsa2048-encrypted.pem" \
    --passphrase-file "$T/passphrase.txt" --threshold 3 "${H[@]}" --out "$T/enc"
check "same key id as the plain key" [ "$(cat "$T/stdout")" = "$id" ]
refused "shares of two splits of one key do not mix" "$OUT" "$KS" verify --record "$R" \
    --share "$OUT/$id.alice.share" --holder-key "$KEYS/alice.key" --share "$T/enc/$id.bob.share" --holder-key "$KEYS/bob.key"

echo "== split refusals (the output directory stays as it was)"
S=("$KS" split --threshold 2 "${H[@]}" --out "$EMPTY")
refused "unknown flag" "$EMPTY" "${S[@]}" --key "$DATA/rsa2048.pem" --frob
refused "flag without its value" "$EMPTY" "${S[@]}" --key
refused "no --key" "$EMPTY" "${S[@]}"
refused "threshold not a number" "$EMPTY" "$KS" split --key "$DATA/rsa2048.pem" --threshold two "${H[@]}" --out "$EMPTY"
refused "k < 2" "$EMPTY" "$KS" split --key "$DATA/rsa2048.pem" --threshold 1 "${H[@]}" --out "$EMPTY"
refused "k > n" "$EMPTY" "$KS" split --key "$DATA/rsa2048.pem" --threshold 4 "${H[@]}" --out "$EMPTY"
refused "duplicate holder" "$EMPTY" "${S[@]}" --key "$DATA/rsa2048.pem" --holder "$KEYS/alice.pub"
cp "$KEYS/alice.pub" "$T/alice-copy.pub"
refused "duplicate holder under another file name" "$EMPTY" "${S[@]}" --key "$DATA/rsa2048.pem" --holder "$T/alice-copy.pub"
refused "a holder .key instead of .pub" "$EMPTY" "${S[@]}" --key "$DATA/rsa2048.pem" --holder "$KEYS/alice.key"
refused "EC key" "$EMPTY" "${S[@]}" --key "$DATA/ec-p256.pem"
refused "1024-bit key" "$EMPTY" "${S[@]}" --key "$DATA/rsa1024.pem"
refused "3-prime key" "$EMPTY" "${S[@]}" --key "$DATA/rsa3072-3prime.pem"
refused "garbage key" "$EMPTY" "${S[@]}" --key "$DATA/garbage.pem"
refused "missing key file" "$EMPTY" "${S[@]}" --key "$T/no-such.pem"
refused "wrong passphrase" "$EMPTY" "${S[@]}" --key "$DATA/rsa2048-encrypted.pem" \
    --passphrase-file "$T/wrong-passphrase.txt"
refused "encrypted key without a passphrase" "$EMPTY" "${S[@]}" --key "$DATA/rsa2048-encrypted.pem"
refused "output directory whose parent is missing" "$EMPTY" "$KS" split --key "$DATA/rsa2048.pem" --threshold 2 \
    "${H[@]}" --out "$T/nope/deeper"
refused "existing output (all files there)" "$OUT" "$KS" split --key "$DATA/rsa2048.pem" --threshold 2 "${H[@]}" --out "$OUT"
mkdir "$T/partial"
echo "someone else's" >"$T/partial/$id.carol.share"
refused "existing output (one share file there)" "$T/partial" "$KS" split --key "$DATA/rsa2048.pem" \
    --threshold 2 "${H[@]}" --out "$T/partial"
check "the existing file is untouched" grep -qx "someone else's" "$T/partial/$id.carol.share"
refused "unknown subcommand" "$EMPTY" "$KS" frobnicate
refused "no subcommand" "$EMPTY" "$KS"
check "the empty directory is still empty" [ -z "$(ls -A "$EMPTY")" ]

echo "== valgrind"
mkdir "$T/vg"
VG=(valgrind -q --leak-check=full --error-exitcode=9)
if grep -q '^SPK_ASAN:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    # valgrind cannot run an ASan binary; its LeakSanitizer does the same job here.
    echo "(ASan build: LeakSanitizer stands in for valgrind)"
    VG=(env ASAN_OPTIONS=detect_leaks=1:exitcode=9)
fi
run "valgrind keysplit split is clean" "${VG[@]}" "$KS" split --key "$DATA/rsa2048.pem" --threshold 2 "${H[@]}" --out "$T/vg"
run "valgrind keysplit combine is clean" "${VG[@]}" "$KS" combine --record "$T/vg/$id.record" \
    --share "$T/vg/$id.alice.share" --holder-key "$KEYS/alice.key" \
    --share "$T/vg/$id.bob.share" --holder-key "$KEYS/bob.key" --out "$T/vg/rebuilt.pem"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
