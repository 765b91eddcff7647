#!/bin/sh
# A throwaway PostgreSQL cluster for benchmarks and tests (issue 20):
#   scripts/pg_cluster.sh start DIR   initdb DIR/pg, start it with its
#                                     socket in DIR and a free tcp port on
#                                     127.0.0.1; prints a libpq conninfo
#                                     (a DIR whose cluster exists: start
#                                     it again on its port)
#   scripts/pg_cluster.sh stop DIR    stop it (fast shutdown)
#   scripts/pg_cluster.sh kill DIR    stop it at once (immediate shutdown:
#                                     as a crash, no checkpoint)
#   scripts/pg_cluster.sh replica DIR PRIMARY_DIR
#                                     a streaming replica of the cluster
#                                     in PRIMARY_DIR (pg_basebackup -R,
#                                     application_name "replica"), started
#                                     on its own port; prints its conninfo
#   scripts/pg_cluster.sh promote DIR make the replica in DIR the primary
# Run as root, the cluster runs as the postgres user (initdb refuses
# root), so DIR is made traversable for it. Debian's postgresql package
# (scripts/setup.sh) provides the programs.
set -eu
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || {
	echo "usage: pg_cluster.sh start|stop|kill|promote DIR | replica DIR PRIMARY_DIR" >&2
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
primary=
if [ "$cmd" = replica ]; then
	primary=$(cd "${3:?replica DIR PRIMARY_DIR}" && pwd)
fi
case "$cmd" in start | replica) mkdir -p "$dir" ;; esac
# An absolute DIR, and / as the working directory: the postgres user may
# not enter the caller's (pg_ctl would warn on stderr, which callers that
# take the conninfo from the output must not see).
dir=$(cd "$dir" && pwd)
cd /
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
case "$cmd" in
start | replica)
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres "$dir"
		chmod 0711 "$(dirname "$dir")" 2>/dev/null || true
	fi
	if [ -f "$dir/pg/PG_VERSION" ] && [ -f "$dir/port" ]; then
		port=$(cat "$dir/port")
	elif [ "$cmd" = replica ]; then
		port=$(free_port)
		as_pg "$bin/pg_basebackup" -D "$dir/pg" -R -X stream -c fast \
			-d "host=127.0.0.1 port=$(cat "$primary/port") user=postgres application_name=replica" \
			>"$dir/basebackup.log" 2>&1 ||
			{ cat "$dir/basebackup.log" >&2; exit 1; }
		echo "$port" >"$dir/port"
	else
		port=$(free_port)
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
kill)
	as_pg "$bin/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null
	;;
promote)
	as_pg "$bin/pg_ctl" -D "$dir/pg" -w promote >/dev/null
	;;
*)
	echo "usage: pg_cluster.sh start|stop|kill|promote DIR | replica DIR PRIMARY_DIR" >&2
	exit 2
	;;
esac
