/*
 * The CLI's help texts and which options each command takes
 * (client/cli_help.c).
 */
#ifndef SL_CLI_HELP_H
#define SL_CLI_HELP_H

#include <stdbool.h>
#include <stdio.h>

typedef struct cli_help {
	const char *name;
	const char *synopsis; /* usage lines, "\n"-ended */
	const char *options;  /* its own options' names, space-separated
	                         (the global ones go with every command) */
	const char *text;     /* what it does and prints */
} cli_help;

/** The help of command name; NULL when there is no such command. */
const cli_help *cli_help_find(const char *name);
/** Whether the command takes --option (its name without dashes). */
bool cli_help_allows(const cli_help *h, const char *option);
/** `sluice --help`: every command's synopsis and the global options. */
void cli_help_all(FILE *f);
/** `sluice help COMMAND`: its synopsis, text and the global options. */
void cli_help_one(FILE *f, const cli_help *h);

#endif
