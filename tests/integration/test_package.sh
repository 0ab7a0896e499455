#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` builds it from BUILD_DIR, `dpkg -i`
# installs it (the CI machine runs the tests as root), and the installed
# commands work from their installed paths: the package holds the four
# commands, the systemd units (ExecStart in /usr/bin), the sysusers.d file and
# a man page per command; /usr/bin/keysplit --help answers; and /usr/bin/edge
# check passes on a demo configuration whose keys, split and two holders are
# made and run by the installed keysplit and share-holder. Then `dpkg -r`
# removes it and no command is left. Runs of this test on one machine take
# turns (flock), since they install the same package.
# Usage: test_package.sh BUILD_DIR
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$SRC/tests/integration/lib_edge.sh"
lib_edge_init test-package "${1:-}"
[ "$(id -u)" = 0 ] || die "must run as root to install a package"
for tool in cpack dpkg dpkg-deb dpkg-query flock; do
    command -v $tool >/dev/null || die "$tool is missing (tools/lib/deps.sh installs it)"
done
[ -f "$BUILD/CPackConfig.cmake" ] || die "no $BUILD/CPackConfig.cmake"

exec 9>/tmp/spk-test-package.lock
flock -w 600 9 || die "another test_package run holds /tmp/spk-test-package.lock"
installed() { dpkg-query -W -f='${Status}' splitkey 2>/dev/null | grep -q 'install ok installed'; }
remove_package() {
    installed && dpkg -r splitkey >dpkg-r.log 2>&1
    ! installed
}
# A run that was killed midway may have left its package: take it away first.
installed && { remove_package || die "cannot remove a splitkey package left installed"; }
trap 'remove_package; lib_edge_cleanup || exit 1' EXIT

# ---- build the package -------------------------------------------------------------------
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$T/pkg" >cpack.log 2>&1
DEB=$(ls "$T"/pkg/splitkey_*.deb 2>/dev/null | head -1)
check "cpack -G DEB builds splitkey_*.deb" [ -n "$DEB" ]
[ -n "$DEB" ] || { tail -20 cpack.log; die "no package"; }
dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's#^\./#/#' >contents
for f in /usr/bin/keysplit /usr/bin/share-holder /usr/bin/combiner /usr/bin/edge \
    /usr/lib/systemd/system/spk-edge.service /usr/lib/systemd/system/spk-combiner.service \
    /usr/lib/systemd/system/spk-share-holder@.service /usr/lib/sysusers.d/splitkey.conf \
    /usr/share/man/man1/keysplit.1.gz /usr/share/man/man1/share-holder.1.gz \
    /usr/share/man/man1/combiner.1.gz /usr/share/man/man1/edge.1.gz; do
    check "the package holds $f" grep -qx "$f" contents
done
check "the package depends on the libraries it links" \
    bash -c "dpkg-deb -f '$DEB' Depends | grep -q libsodium && dpkg-deb -f '$DEB' Depends | grep -q libzmq"

# ---- install it -----------------------------------------------------------------------------
dpkg -i "$DEB" >dpkg-i.log 2>&1
check "dpkg -i installs it ($(tail -1 dpkg-i.log))" installed
for c in keysplit share-holder combiner edge; do
    check "/usr/bin/$c --help exits 0 with a usage" \
        bash -c "/usr/bin/$c --help 2>&1 | grep -qi '^usage: *$c'"
    check "man page $c(1) names the command" \
        bash -c "gzip -dc /usr/share/man/man1/$c.1.gz | grep -qi '^\\.TH \"\\?$c\"\\? \"\\?1'"
done
check "the installed units run the installed binaries" \
    bash -c "grep -q '^ExecStart=/usr/bin/edge run ' /usr/lib/systemd/system/spk-edge.service &&
        grep -q '^ExecStart=/usr/bin/share-holder run ' /usr/lib/systemd/system/spk-share-holder@.service"
if command -v systemd-sysusers >/dev/null; then
    check "postinst made the services' users" \
        bash -c "getent passwd spk-edge spk-combiner spk-holder >/dev/null"
fi

# ---- a demo configuration, made and served by the installed commands --------------------------
KS=/usr/bin/keysplit
SH=/usr/bin/share-holder
EDGE=/usr/bin/edge
lib_edge_pki
lib_edge_mkcert m.test 2048 || die "m.test certificate"
lib_edge_holder_keys
ID=$(lib_edge_split m.test) || die "split m.test with $KS"
lib_edge_holders
for _ in $(seq 1 100); do
    grep -q ' on tcp://' h1.log && grep -q ' on tcp://' h2.log && break
    sleep 0.1
done
check "the installed share-holder serves (h1 and h2 bound)" \
    bash -c "grep -q ' on tcp://' h1.log && grep -q ' on tcp://' h2.log"
lib_edge_conf m.test >edge.conf
echo "combiner-binary /usr/bin/combiner" >>edge.conf
"$EDGE" check edge.conf >check.out 2>&1
rc=$?
check "/usr/bin/edge check on the demo configuration exits 0 (key $ID)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -20 check.out

# ---- remove it ---------------------------------------------------------------------------------
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
"$EDGE" check edge.conf >check-down.out 2>&1
check "/usr/bin/edge check fails with the holders stopped (it really asked them)" [ $? -ne 0 ]
check "dpkg -r removes it" remove_package
check "no command is left in /usr/bin" \
    bash -c "[ ! -e /usr/bin/keysplit ] && [ ! -e /usr/bin/edge ] && [ ! -e /usr/bin/combiner ] && [ ! -e /usr/bin/share-holder ]"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
