#!/bin/sh
# The main job: set up, build, start sluiced with ./resources.yaml and the
# example Account Details plugin, commit a demo set of events through the
# CLI, print the read models the plugin built, a one-time query, the
# $ce-acc stream of the system projection $by_category with its links
# resolved, and stop the daemon cleanly.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
# only what the demo runs (scripts/test.sh builds everything)
cmake --build build -j "$(nproc)" --target demo

SLUICE="./build/sluice --config resources.yaml"
T=demo
P=account_details

mkdir -p data
# --supervise: a plugin that crashes the daemon costs its key, not the demo
# (the daemon starts again and marks that key failing).
./build/sluiced --supervise -c resources.yaml 2>data/sluiced.log &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT INT TERM

# Wait until the daemon answers (at most 10 s).
i=0
until $SLUICE status >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
		echo "demo: sluiced did not start; its log:" >&2
		cat data/sluiced.log >&2
		exit 1
	fi
	sleep 0.1
done
echo "== sluiced is up (pid $pid, log in data/sluiced.log)"

commit() { # stream expect type json [--public]
	s=$1 e=$2 ty=$3 j=$4
	shift 4
	$SLUICE commit --tenant $T --stream "$s" --expect "$e" --type "$ty" "$@" "$j" >/dev/null
}

# Optimistic concurrency keeps the demo from doubling itself: opening an
# account expects a new stream, so a second run finds the accounts there.
if commit acc-0001 none DebitAccountOpened \
	'{"account_id":"acc-0001","customer_id":"cust-01","name":"Everyday"}' --public \
	--metadata '{"$correlationId":"onboarding-01"}' 2>/dev/null; then
	echo "== committing the demo events"
	commit acc-0002 none DebitAccountOpened '{"account_id":"acc-0002","customer_id":"cust-02","name":"Savings"}' --public
	commit acc-0003 none DebitAccountOpened '{"account_id":"acc-0003","customer_id":"cust-03","name":"Holiday"}'
	commit cust-01 none CustomerRegistered '{"customer_id":"cust-01","name":"Ann Smith","account":{"id":"acc-0001"}}' \
		--metadata '{"$correlationId":"onboarding-01"}'
	commit cust-02 none CustomerRegistered '{"customer_id":"cust-02","name":"Ravi Patel","account":{"id":"acc-0002"}}'
	commit cust-03 none CustomerRegistered '{"customer_id":"cust-03","name":"Lena Berg","account":{"id":"acc-0003"}}'
	commit acc-0001 0 DebitPerformed '{"customer_id":"cust-01","amount":1200}'
	commit acc-0001 1 WithdrawalPerformed '{"account_id":"acc-0001","customer_id":"cust-01","amount":250}'
	commit acc-0002 0 DebitPerformed '{"customer_id":"cust-02","amount":5000}'
	commit acc-0002 1 DebitPerformed '{"customer_id":"cust-02","amount":750}'
	commit acc-0003 0 DebitPerformed '{"customer_id":"cust-03","amount":300}'
	commit acc-0003 1 WithdrawalPerformed '{"account_id":"acc-0003","customer_id":"cust-03","amount":120}'
else
	echo "== demo events already in the log (acc-0001 exists: expected no stream)"
fi

# Wait until every processor has caught up with the log.
i=0
while :; do
	st=$($SLUICE status)
	if echo "$st" | grep -q '"head"' && [ "$(echo "$st" |
		sed -n 's/.*"head": *\([0-9]*\).*/\1/p')" = "$(echo "$st" |
		sed -n 's/.*"position": *\([0-9]*\).*/\1/p' | head -1)" ]; then
		break
	fi
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.1
done

echo "== the event log"
$SLUICE read
echo "== Account Details read models (tenant $T, projection $P)"
$SLUICE get-all --tenant $T --projection $P
echo "== one read model, and one that does not exist (the initial state)"
$SLUICE get-one --tenant $T --projection $P acc-0001
$SLUICE get-one --tenant $T --projection $P acc-9999
echo "== filter \"customer events\" (partitioned by customer): partition cust-01"
$SLUICE read --tenant $T --filter "customer events" --partition cust-01
echo "== filter \"public account openings\" (public events only)"
$SLUICE read --tenant $T --filter "public account openings"
echo "== one-time query of $P (runs it over the log now; as get-all)"
$SLUICE query $P --tenant $T
$SLUICE query $P --tenant $T --key acc-0002
# The system projections run when resources.yaml says
# start_standard_projections: true; $by_category links every acc-* event
# into $ce-acc. Wait (at most 5 s) for its 9 links, then read them
# resolved: each line is the account event, with "link" naming the link.
i=0
until [ "$($SLUICE read --tenant $T --stream '$ce-acc' 2>/dev/null | wc -l)" -ge 9 ]; do
	i=$((i + 1))
	[ $i -gt 50 ] && break
	sleep 0.1
done
echo "== stream \$ce-acc (\$by_category's links, resolved)"
$SLUICE read --tenant $T --stream '$ce-acc' --resolve-links ||
	echo "(no \$ce-acc: start it with: $SLUICE start '\$by_category' --tenant $T)"
echo "== stream \$bc-onboarding-01 (\$by_correlation_id: metadata \$correlationId)"
$SLUICE read --tenant $T --stream '$bc-onboarding-01' --resolve-links
echo "== status"
$SLUICE status

kill -TERM $pid
wait $pid
trap - EXIT INT TERM
echo "== sluiced stopped cleanly"
