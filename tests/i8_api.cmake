# Issue 8, the API of EventStoreDB's projection model (docs/protocol.md):
# esdb_api_test runs sluiced with the build's plugins (and the e2e emitting
# test plugins) and speaks raw msgpack on plain NNG req sockets:
# resolve_links on the system projections' streams, one-time and transient
# queries, start / stop, the status fields, run_projections none and system
# (and an operator's start / stop across restarts), an emitting plugin
# projection's states, EOWNED, reset and hot reload, and every malformed
# request refused with its code.
sl_test(esdb_api_test esdb_api_test.c LIBS sl_runtime PkgConfig::JANSSON
        TIMEOUT 180)
add_dependencies(esdb_api_test sluiced account_details account_filters
                 e2e_emitter e2e_conflict)
