# Issue 8, the emitting projection engine (helper area "engine"): included
# by tests/CMakeLists.txt.

# emitter_test: runtime/processing/emitter.c on a real log with real ABI 1.2 plugins
# (tests/plugins/emit_*.c): the streams written event by event, the result
# stream, restart without duplicates, reset on a changed definition,
# one-time query, transient run, status and back-pressure, failures and
# retries, the load checks of declared streams and the definition hashes.
sl_test(emitter_test emitter_test.c TIMEOUT 120)
target_include_directories(emitter_test PRIVATE ../runtime)
add_dependencies(emitter_test account_details emit_counter emit_counter_v2
                 emit_slow ${SL_EMIT_BAD})
