#!/usr/bin/python3
"""Seed corpora for the fuzz targets: a request of every op (msgpack, as
docs/protocol.md gives them) and a few configurations.
    usage: seeds.py DIR     (writes DIR/api/*, DIR/config/* and DIR/auth/*)"""
import os
import sys

import msgpack

out = sys.argv[1]
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
T, P = "acme", "account_details"
requests = [
    {"op": "commit", "tenant": T, "stream": "acc-1", "expected": "no_stream",
     "events": [{"type": "DebitAccountOpened",
                 "content": {"account_id": "acc-1", "customer_id": "c-1"},
                 "metadata": {"m": 1}, "public": True}]},
    {"op": "commit", "tenant": T, "stream": "acc-1", "expected": 0,
     "events": [{"type": "DebitPerformed", "content": {"amount": 5}},
                {"type": "$>", "content": "0@acc-1"}]},
    {"op": "delete_stream", "tenant": T, "stream": "acc-1", "expected": 1,
     "truncate_before": 1},
    {"op": "read", "from": 0, "max": 10, "resolve_links": True},
    {"op": "read", "tenant": T, "stream": "acc-1", "from_revision": 0},
    {"op": "read_filter", "tenant": T, "filter": "customer events",
     "partition": "c-1", "from": 0},
    {"op": "get_one", "tenant": T, "projection": P, "key": "acc-1"},
    {"op": "get_all", "tenant": T, "projection": P, "limit": 2,
     "after": "a"},
    {"op": "status"},
    {"op": "plugins"},
    {"op": "pause", "id": P, "tenant": T},
    {"op": "resume", "id": P},
    {"op": "reset", "id": P},
    {"op": "retry", "id": P},
    {"op": "query", "tenant": T, "projection": P, "key": "acc-1"},
    {"op": "query", "tenant": T, "js": "fromAll().when({$init: function(){return {n:0}}, $any: function(s){s.n++}})",
     "name": "q.js"},
    {"op": "register", "kind": "projection", "id": "3b0f3a52-1111-4b8e-9a7e-2f0c3d4e5f60",
     "name": "r", "version": 1, "selectors": [{"type": "T", "key": "partition"}],
     "initial_state": {}},
]
os.makedirs(os.path.join(out, "api"), exist_ok=True)
for i, r in enumerate(requests):
    r = dict({"v": 1}, **r)
    with open(os.path.join(out, "api", "seed%02d" % i), "wb") as f:
        f.write(msgpack.packb(r))
# fuzz_auth.c's credentials: alpha-token (read, t1), root-token (admin)
os.makedirs(os.path.join(out, "auth"), exist_ok=True)
for i, (op, tok, t) in enumerate([
        ("read", "alpha-token", "t1"), ("commit", "alpha-token", "t2"),
        ("reset", "root-token", "t9"), ("status", "alpha-tokem", "t1"),
        ("register", "root-toke", "t1")]):
    with open(os.path.join(out, "auth", "seed%02d" % i), "wb") as f:
        f.write(msgpack.packb({"v": 1, "op": op, "token": tok, "tenant": t}))
os.makedirs(os.path.join(out, "config"), exist_ok=True)
with open(os.path.join(root, "resources.yaml"), "rb") as src:
    open(os.path.join(out, "config", "resources.yaml"), "wb").write(src.read())
with open(os.path.join(out, "config", "full.yaml"), "w") as f:
    f.write("""data_dir: d
plugin_dir: p
log_level: debug
insecure: true
endpoints: {api: "tcp://127.0.0.1:5555", pub: "ipc:///tmp/x.ipc",
            metrics: "http://127.0.0.1:0/metrics", admin: "http://127.0.0.1:0/admin"}
event_store: {map_size: 64MiB, sync: false}
limits: {max_request_bytes: 1MiB, idle_timeout_ms: 0, max_connections: 4}
remote: {timeout_ms: 100, window: 2, batch: 16}
run_projections: system
start_standard_projections: true
system_projections:
  by_category: {separator: "-", take: last}
projections:
  - {name: "$by_category", mode: continuous, checkpoint_handled_threshold: 10}
tenants:
  - id: a
    read_models: {map_size: 1MiB}
""")
with open(os.path.join(out, "config", "auth.yaml"), "w") as f:
    f.write("""endpoints: {api: "tcp://127.0.0.1:5555"}
tenants: [{id: t1}, {id: t2}]
auth:
  tokens:
    - {name: a, token_sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad,
       tenants: [t1], roles: [read, write], max_registrations: 2, max_connections: 3}
    - {name: root, token_sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,
       roles: [admin]}
  subjects:
    - {name: s, subject: "CN=x", tenants: "*", roles: [register]}
""")
