# Issue 8 end-to-end tests: sluiced as a process with the e2e_* test
# plugins (tests/plugins/i8_e2e.cmake), through the client library and CLI.
#
# emit_kill_test: e2e_emitter's Ledger events and links exactly once while
# sluiced is SIGKILLed 9 times (after a bulk, catching up, live) under a
# steady writer; streams compared with a recomputation from the log.
sl_test(emit_kill_test emit_kill_test.c
        LIBS sluice_client PkgConfig::JANSSON TIMEOUT 300)
add_dependencies(emit_kill_test sluiced e2e_emitter)
# ownership_test: a client commit into an owned stream (EOWNED, nothing
# written), a second projection declaring the same streams (refused at
# load, both named), a removed projection's streams still owned (the new
# declarer faults with EOWNED), '$' streams refused for clients.
sl_test(ownership_test ownership_test.c
        LIBS sluice_client PkgConfig::JANSSON TIMEOUT 180)
add_dependencies(ownership_test sluiced sluice e2e_emitter e2e_conflict)
# query_cli_test: `sluice query` (one-time) equals get-all, --key, an
# unknown id; --follow (transient) until SIGINT or its client dies;
# start / stop; read --resolve-links of $by_category's $ce-acc.
sl_test(query_cli_test query_cli_test.c
        LIBS sluice_client PkgConfig::JANSSON TIMEOUT 120)
add_dependencies(query_cli_test sluiced sluice account_details)
# backpressure_test: e2e_slow over 1,000,000 events: status "waiting" on
# pending_events_threshold with buffered_events bounded, RssAnon flat,
# all handled, 10 ticks.
sl_test(backpressure_test backpressure_test.c
        LIBS sluice_client PkgConfig::JANSSON TIMEOUT 300)
add_dependencies(backpressure_test sluiced e2e_slow)
# emit_failing_kill_test: an emitting projection's failing key (issue 14)
# waits alone, holds over SIGKILL (in its checkpoint record) and catches up
# after `retry`; the other keys' emitted streams go on to the head.
sl_test(emit_failing_kill_test emit_failing_kill_test.c
        LIBS sluice_client PkgConfig::JANSSON TIMEOUT 180)
add_dependencies(emit_failing_kill_test sluiced e2e_emitter)
