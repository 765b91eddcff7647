#!/bin/sh
# A throwaway PostgreSQL cluster for benchmarks and tests (issue 20):
#   scripts/pg_cluster.sh start DIR   initdb DIR/pg, start it with its
#                                     socket in DIR and a free tcp port on
#                                     127.0.0.1; prints a libpq conninfo
#                                     (a DIR whose cluster exists: start
#                                     it again on its port)
#   scripts/pg_cluster.sh stop DIR    stop it (fast shutdown)
# Run as root, the cluster runs as the postgres user (initdb refuses
# root), so DIR is made traversable for it. Debian's postgresql package
# (scripts/setup.sh) provides the programs.
set -eu
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || {
	echo "usage: pg_cluster.sh start|stop DIR" >&2
	exit 2
}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || {
	echo "pg_cluster: no PostgreSQL server programs (apt-get install postgresql)" >&2
	exit 1
}
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
[ "$cmd" = start ] && mkdir -p "$dir"
# An absolute DIR, and / as the working directory: the postgres user may
# not enter the caller's (pg_ctl would warn on stderr, which callers that
# take the conninfo from the output must not see).
dir=$(cd "$dir" && pwd)
cd /
case "$cmd" in
start)
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres "$dir"
		chmod 0711 "$(dirname "$dir")" 2>/dev/null || true
	fi
	if [ -f "$dir/pg/PG_VERSION" ] && [ -f "$dir/port" ]; then
		port=$(cat "$dir/port")
	else
		port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		as_pg "$bin/initdb" -D "$dir/pg" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
		echo "$port" >"$dir/port"
	fi
	as_pg "$bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w \
		-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" \
		start >/dev/null || { cat "$dir/pg.log" >&2; exit 1; }
	echo "host=127.0.0.1 port=$port user=postgres dbname=postgres"
	;;
stop)
	as_pg "$bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null
	;;
*)
	echo "usage: pg_cluster.sh start|stop DIR" >&2
	exit 2
	;;
esac
