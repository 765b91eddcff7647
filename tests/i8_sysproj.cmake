# Issue 8, system projections and their configuration (helper area
# "sysproj"): included by tests/CMakeLists.txt.

# projection_config_test: run_projections, start_standard_projections,
# system_projections, projection_settings and projections: defaults (ESDB's),
# values, lookup and refusals (config.c + log.c only, like the other config
# tests).
sl_test(projection_config_test projection_config_test.c ../runtime/config.c
        ../runtime/log.c LIBS sl_proto PkgConfig::YAML)
target_include_directories(projection_config_test PRIVATE ../runtime)

# sysproj_test: the category cut and the definitions (unit), then a real
# sluiced over a mixed log: every system projection's output streams
# compared with streams written out by hand, as written and with links
# resolved; stop / start of $by_event_type; a second daemon with
# start_standard_projections false, take: last, separator "." and
# property $myCorrelationId; the same data again with take: first (the
# streams rebuilt); beside the emitting plugin e2e_emitter (links in an
# ordinary stream: $by_category links their targets).
sl_test(sysproj_test sysproj_test.c
        LIBS sl_runtime sluice_client PkgConfig::JANSSON TIMEOUT 180)
target_include_directories(sysproj_test PRIVATE ../runtime)
add_dependencies(sysproj_test sluiced e2e_emitter)

# sysfeed_test: the system projections' shared reader over a real log of
# two tenants: each chunk read once for the five, a walk shows one
# tenant's events only and all of them, each link as the decoded event
# calls for; the window (behind it, another definition, far ahead); the
# five walking from five threads at once.
sl_test(sysfeed_test sysfeed_test.c TIMEOUT 60)
target_include_directories(sysfeed_test PRIVATE ../runtime)
