# Sourced by the PostgreSQL benchmark scripts (pg_compare.sh, pg_scale.sh)
# with $here (the source tree) set: a temp dir $tmp (removed at exit) with
# a throwaway cluster in $tmp/pg (stopped at exit), its conninfo in $ci,
# and an empty results file $out.
tmp=$(mktemp -d /tmp/sluice-pgbench-XXXXXX)
chmod 0711 "$tmp"
trap '"$here/scripts/pg_cluster.sh" stop "$tmp/pg" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT INT TERM
ci=$("$here/scripts/pg_cluster.sh" start "$tmp/pg")
out=$tmp/results
: >"$out"
