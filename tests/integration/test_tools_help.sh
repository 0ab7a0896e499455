#!/usr/bin/env bash
# Every script in tools/ answers -h and --help with its header comment and
# exit status 0, and asking starts nothing: run from an empty directory with
# SPK_BUILD_DIR pointing nowhere, a script that went on to install, build or
# start a daemon would fail or leave files behind. The header is the whole
# help (tools/lib/help.sh): it names the script, and it ends before the
# script's first command. An unknown option of a script that takes options
# is refused with a non-zero status.
# Usage: test_tools_help.sh [BUILD_DIR] (unused: nothing is built or run)
set -u

SRC=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/integration/lib_holder.sh
. "$SRC/tests/integration/lib_holder.sh"
holder_scratch spk-tools-help
cd "$T" || exit 1

tools=()
for f in "$SRC"/tools/*; do
    [ -f "$f" ] && [ -x "$f" ] && tools+=("$f")
done
if [ ${#tools[@]} -ge 10 ]; then
    ok "found ${#tools[@]} scripts in tools/"
else
    bad "found only ${#tools[@]} scripts in tools/"
fi

for f in "${tools[@]}"; do
    name=$(basename "$f")
    for flag in -h --help; do
        out=$(SPK_BUILD_DIR=/nonexistent/spk-build timeout 20 "$f" "$flag" 2>&1)
        rc=$?
        if [ $rc -ne 0 ]; then
            bad "$name $flag: exit status $rc: $(head -c 300 <<<"$out")"
            continue
        fi
        first=$(head -1 <<<"$out")
        case $first in
        "$name"[:\ ]* | "tools/$name"[:\ ]*) ;;
        *)
            bad "$name $flag: the first line does not name the script: $first"
            continue
            ;;
        esac
        if [ "$(wc -l <<<"$out")" -lt 2 ]; then
            bad "$name $flag: a help of one line"
        elif grep -qE '^(set -|source |\. )' <<<"$out"; then
            bad "$name $flag: the help runs past the header into the script"
        elif [ -n "$(ls -A "$T")" ]; then
            bad "$name $flag: left files behind: $(ls -A "$T" | head -3 | tr '\n' ' ')"
            rm -rf "${T:?}"/* "${T:?}"/.[!.]*
        else
            ok "$name $flag"
        fi
    done
done

# The scripts that parse options refuse one they do not know, before doing
# anything.
for name in bench-edge bench-provider check demo; do
    out=$(SPK_BUILD_DIR=/nonexistent/spk-build timeout 20 "$SRC/tools/$name" --no-such-option 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && grep -q -- "--no-such-option\|usage" <<<"$out"; then
        ok "$name refuses an unknown option (status $rc)"
    else
        bad "$name --no-such-option: status $rc: $(head -c 300 <<<"$out")"
    fi
done

# "--" ends the options: what follows is for another program (tools/cluster
# passes it to share-holder), so --help there is not the script's.
out=$(timeout 20 "$SRC/tools/cluster" status "$T/none" -- --help 2>&1)
if grep -q "start and stop a set of share-holder daemons" <<<"$out"; then
    bad "cluster: a --help after -- printed the cluster's help"
else
    ok "cluster: a --help after -- is not the cluster's"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
