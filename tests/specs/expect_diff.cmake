# Run `sluice spec` (SLUICE, ARGS: a ;-list) and require exit status RC
# and every regular expression of EXPECT (a |-list) in its output: how
# ctest checks that a failing spec fails, and says why.
string(REPLACE "|" ";" args "${ARGS}")
execute_process(COMMAND ${SLUICE} spec ${args}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL RC)
  message(FATAL_ERROR "exit status ${rc}, expected ${RC}")
endif()
string(REPLACE "|" ";" expect "${EXPECT}")
foreach(e ${expect})
  if(NOT "${out}${err}" MATCHES "${e}")
    message(FATAL_ERROR "output lacks '${e}'")
  endif()
endforeach()
