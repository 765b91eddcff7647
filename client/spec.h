/*
 * `sluice spec FILE`: run a projection over the events a spec file lists,
 * in this process (a temporary log, no daemon), and compare its states,
 * results and emitted streams with the spec's (docs/javascript.md, Specs).
 */
#ifndef SL_CLI_SPEC_H
#define SL_CLI_SPEC_H

/** Exit status of spec_run when the run differs from the spec. */
#define SPEC_EXIT_DIFF 4

/**
 * Run the spec at path. plugin: the projection's file (.js or .so) to run
 * instead of the spec's "projection" (NULL: the spec's). projection: the
 * projection's name in a .so (NULL: the spec's "projectionName", else the
 * plugin's only projection); js_host: the js_host.so to load a .js with (NULL:
 * $SLUICE_JS_HOST, else the build's). Prints the differences on stdout, errors
 * on stderr.
 * @return 0 when everything matches, SPEC_EXIT_DIFF on a difference, 1 on
 * a bad spec, a projection that does not load or a run that does not
 * reach the end of the input.
 */
int spec_run(const char *path, const char *plugin, const char *projection,
    const char *js_host);

#endif
