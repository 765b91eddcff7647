# Issue 8 engine test plugins (ABI 1.2 emitting projections) for
# tests/emitter_test.c: emit_counter (and emit_counter_v2, its changed
# definition), emit_slow (back-pressure, failures) and the negative
# emit_bad_* builds (overlap, '$' name, '*' not last, empty name).
sluice_add_plugin(emit_counter ${TP} emit_counter.c)
sluice_add_plugin(emit_counter_v2 ${TP}/v2 emit_counter.c)
target_compile_definitions(emit_counter_v2 PRIVATE EMIT_COUNTER_VERSION=2)
sluice_add_plugin(emit_slow ${TP} emit_slow.c)
set(SL_EMIT_BAD emit_bad_overlap emit_bad_dollar emit_bad_star emit_bad_empty)
set(emit_bad_case 0)
foreach(eb ${SL_EMIT_BAD})
  math(EXPR emit_bad_case "${emit_bad_case} + 1")
  sluice_add_plugin(${eb} ${TP} emit_bad.c)
  target_compile_definitions(${eb} PRIVATE EMIT_BAD=${emit_bad_case})
endforeach()
set(SL_EMIT_BAD ${SL_EMIT_BAD} PARENT_SCOPE)
