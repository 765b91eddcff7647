#!/bin/sh
# `cmake --install` into a temporary prefix, then, against that prefix
# only: a plugin built out of tree with pkg-config (sluice-plugin) and one
# with find_package(Sluice) + sluice_add_plugin(), a C client built with
# pkg-config (sluice-client) and one with Sluice::client; the installed
# sluiced loads each plugin (and a .js file, through the installed
# js_host.so) and the clients' commits fold into read models.
#   usage: install_test.sh BUILD_DIR SOURCE_DIR [CFLAGS]
# CFLAGS: what out-of-tree code is compiled and linked with as well (a
# sanitizer build passes -fsanitize=...: its SDK is instrumented).
set -eu
build=$1
src=$2
cflags=${3:-}
tmp=$(mktemp -d /tmp/sl_install.XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
fail() {
	echo "FAIL: $*" >&2
	[ -f "$tmp/sluiced.log" ] && sed 's/^/  sluiced: /' "$tmp/sluiced.log" >&2
	exit 1
}

P=$tmp/prefix
cmake --install "$build" --prefix "$P" >/dev/null || fail "cmake --install"
for f in bin/sluiced bin/sluice bin/sluice-host include/sluice/plugin.h \
	include/sluice/client.h share/man/man1/sluice.1 \
	share/man/man8/sluiced.8 share/man/man8/sluice-host.8 \
	lib/systemd/system/sluiced.service \
	lib/python3/dist-packages/sluice_remote.py; do
	[ -e "$P/$f" ] || fail "not installed: $f"
done
libdir=$(dirname "$(find "$P" -name sluice-client.pc)")
libdir=${libdir%/pkgconfig}
# the shared client library exports the public API only
bad=$(nm -D --defined-only "$libdir/libsluice-client.so" |
	awk '$3 !~ /^sl_/ {print $3}')
[ -z "$bad" ] || fail "libsluice-client.so exports non-sl_ symbols: $bad"
grep -q "ExecStart=$P/bin/sluiced" "$P/lib/systemd/system/sluiced.service" ||
	fail "the unit does not start the installed sluiced"

export PKG_CONFIG_PATH=$libdir/pkgconfig
"$P/bin/sluice" --version | grep -q '^sluice [0-9]' || fail "sluice --version"

# the plugin with pkg-config, as docs/plugins.md shows
mkdir -p "$tmp/plugins" "$tmp/cm"
# shellcheck disable=SC2046
cc $cflags -shared -o "$tmp/plugins/account_details.so" \
	"$src/plugins/account_details.c" \
	$(pkg-config --cflags --libs sluice-plugin) -Wl,--no-undefined ||
	fail "plugin build with pkg-config"
# and with the CMake package
cmake -S "$src/tests/outoftree/plugin" -B "$tmp/cm/plugin" \
	-DCMAKE_PREFIX_PATH="$P" \
	-DCMAKE_C_FLAGS="$cflags" -DCMAKE_MODULE_LINKER_FLAGS="$cflags" \
	-DPLUGIN_SOURCE="$src/plugins/account_details.c" >/dev/null ||
	fail "find_package(Sluice) for a plugin"
cmake --build "$tmp/cm/plugin" >/dev/null || fail "plugin build with CMake"
# the client, both ways
# shellcheck disable=SC2046
cc $cflags -o "$tmp/client_pc" "$src/tests/outoftree/client.c" \
	$(pkg-config --cflags --libs sluice-client) ||
	fail "client build with pkg-config"
cmake -S "$src/tests/outoftree/client" -B "$tmp/cm/client" \
	-DCMAKE_PREFIX_PATH="$P" \
	-DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$cflags" \
	-DCLIENT_SOURCE="$src/tests/outoftree/client.c" >/dev/null ||
	fail "find_package(Sluice) for a client"
cmake --build "$tmp/cm/client" >/dev/null || fail "client build with CMake"
export LD_LIBRARY_PATH=$libdir

cat >"$tmp/plugins/count_all.js" <<'JS'
fromAll().when({
  $init: function () { return { count: 0 }; },
  $any: function (s, e) { s.count += 1; }
});
JS
cat >"$tmp/resources.yaml" <<YAML
data_dir: data
plugin_dir: plugins
insecure: true
endpoints:
  api: ipc://$tmp/api.ipc
  pub: ipc://$tmp/pub.ipc
  admin: http://127.0.0.1:0/admin
tenants:
  - id: t1
YAML
url=ipc://$tmp/api.ipc
start() {
	"$P/bin/sluiced" -c "$tmp/resources.yaml" 2>>"$tmp/sluiced.log" &
	pid=$!
	i=0
	until "$P/bin/sluice" --url "$url" status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 100 ] && fail "the installed sluiced did not start"
		kill -0 "$pid" 2>/dev/null || fail "the installed sluiced died"
		sleep 0.1
	done
}
stop() {
	kill -TERM "$pid"
	wait "$pid" || fail "sluiced exited $?"
	pid=""
}

start
# the admin page, from the installed files
grep -q "serving the admin page from $P/share/sluice/admin on" \
	"$tmp/sluiced.log" || fail "the installed admin page is not served"
admin=$(sed -n 's/.*serving the admin page from .* on \(http[^ ]*\).*/\1/p' \
	"$tmp/sluiced.log" | head -1)
python3 -c "import sys, urllib.request as u
sys.exit(0 if b'Sluice admin' in u.urlopen(sys.argv[1]).read() else 1)" \
	"$admin" || fail "GET $admin"
plugins=$("$P/bin/sluice" --url "$url" plugins)
echo "$plugins" | grep -q '"account_details"' ||
	fail "the pkg-config plugin is not loaded: $plugins"
echo "$plugins" | grep -q 'count_all' ||
	fail "the .js file is not loaded (installed js_host.so): $plugins"
"$tmp/client_pc" "$url" t1 acc-pc >/dev/null || fail "pkg-config client"
stop

# the same projection, now from the CMake-built file
cp "$tmp/cm/plugin/account_details.so" "$tmp/plugins/account_details.so"
start
"$tmp/cm/client/oot_client" "$url" t1 acc-cmake >/dev/null ||
	fail "CMake client with the CMake-built plugin"
i=0
until "$P/bin/sluice" --url "$url" get-one --tenant t1 \
	--projection count_all root | grep -q '"count": *6'; do
	i=$((i + 1))
	[ $i -gt 100 ] && fail "count_all.js did not count 6 events"
	sleep 0.1
done
stop
echo "install_test: ok"
