#!/bin/sh
# `cpack -G DEB`: the package installs under /usr, its unit starts
# /usr/bin/sluiced, and its dependencies are Debian's package names.
#   usage: deb_test.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d /tmp/sl_deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
command -v dpkg-deb >/dev/null || {
	echo "deb_test: no dpkg-deb on this machine: skipped"
	exit 0
}
(cd "$build" && cpack -G DEB -B "$tmp" >"$tmp/cpack.log" 2>&1) ||
	{ cat "$tmp/cpack.log" >&2; fail "cpack -G DEB"; }
deb=$(ls "$tmp"/sluice_*.deb) || fail "no .deb made"
deps=$(dpkg-deb -f "$deb" Depends)
for p in libnng1 liblmdb0 libyaml-0-2 libjansson4 libuuid1 libc6; do
	echo "$deps" | grep -q "\\b$p\\b" || fail "Depends lacks $p: $deps"
done
dpkg-deb -x "$deb" "$tmp/root"
for f in usr/bin/sluiced usr/bin/sluice usr/include/sluice/plugin.h \
	usr/lib/systemd/system/sluiced.service \
	usr/share/sluice/examples/resources.yaml; do
	[ -e "$tmp/root/$f" ] || fail "not in the package: /$f"
done
grep -q '^ExecStart=/usr/bin/sluiced ' \
	"$tmp/root/usr/lib/systemd/system/sluiced.service" ||
	fail "the unit does not start /usr/bin/sluiced"
grep -q '^plugin_dir: /usr/lib.*/sluice/plugins' \
	"$tmp/root/usr/share/sluice/examples/resources.yaml" ||
	fail "the example configuration does not name the installed plugins"
# the packaged daemon accepts its own example configuration
"$tmp/root/usr/bin/sluiced" --check-config \
	-c "$tmp/root/usr/share/sluice/examples/resources.yaml" >/dev/null ||
	fail "sluiced --check-config of the packaged resources.yaml"
echo "deb_test: ok ($deps)"
