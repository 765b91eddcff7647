#!/bin/sh
# Installs the Debian packages Sluice needs to build and test, only those
# that are missing. Runs apt-get as root (directly, or through sudo).
set -eu

PKGS="build-essential cmake pkg-config libnng-dev liblmdb-dev libyaml-dev
uuid-dev libjansson-dev nng-utils libsqlite3-dev python3 python3-msgpack
duktape-dev libmujs-dev libsystemd-dev dpkg-dev chromium clang libmbedtls-dev
openssl postgresql libpq-dev"
# python3 and python3-msgpack: the Python remote client (client/python/) and
# its test, which runs Debian's /usr/bin/python3 over libnng.so.1 (libnng-dev).
# duktape-dev: the JavaScript projection host (plugins/js/); libmujs-dev:
# the other engine bench_js measures against it. libsystemd-dev: sd_notify
# for the systemd unit (Type=notify); dpkg-dev: `cpack -G DEB` reads the
# package dependencies with dpkg-shlibdeps. chromium: the admin page's
# test runs it headless (tests/admin_browser_test.py). clang: the
# libFuzzer targets (fuzz/run.sh, tests/auth_fuzz.c). libmbedtls-dev:
# SHA-256 of API tokens (runtime/net/auth.c), and TLS (tls+tcp://,
# docs/security.md): the files are checked and the daemon's TLS engine
# built with mbedtls, which NNG runs on. openssl: the TLS tests make their
# certificates with the openssl command. postgresql, libpq-dev: the
# PostgreSQL log backend's groundwork (docs/postgresql.md):
# scripts/pg_cluster.sh and bench/bench_pg.

# msgpack-c's C library is libmsgpack-dev on Debian 12, libmsgpack-c-dev later.
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if ! dpkg-query -W -f='${Status}' libmsgpack-dev 2>/dev/null | grep -q "ok installed" &&
   ! dpkg-query -W -f='${Status}' libmsgpack-c-dev 2>/dev/null | grep -q "ok installed"; then
	missing="$missing msgpack"
fi

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "setup: need root (or sudo) to install:$missing" >&2
	exit 1
fi

echo "setup: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
case "$missing" in
*msgpack*)
	missing=$(echo "$missing" | sed 's/ msgpack//')
	if apt-cache show libmsgpack-c-dev >/dev/null 2>&1; then
		missing="$missing libmsgpack-c-dev"
	else
		missing="$missing libmsgpack-dev"
	fi
	;;
esac
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
