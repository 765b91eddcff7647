/*
 * Is this file a whole plugin? Before a .so is handed to dlopen, its ELF
 * header, program headers, section table and sections must all lie inside
 * the file, and its dynamic symbol table must define the plugin's init
 * function. A file a compiler or linker is still writing fails here with a
 * reason, instead of reaching dlopen.
 */
#ifndef SL_ELFCHECK_H
#define SL_ELFCHECK_H

#include <stddef.h>

/**
 * Check that path is a complete ELF shared object for this machine that
 * defines `symbol` (a function) in its dynamic symbol table.
 * Reads with pread only (no mmap), so a file shrinking meanwhile cannot
 * fault the caller.
 * @param why  receives the reason on failure (e.g. "incomplete ELF file:
 *             section table ends at byte 14208 but the file has 8192
 *             bytes"); may be NULL
 * @return SL_OK; SL_EPLUGIN (not an ELF shared object, incomplete, or the
 *         symbol is missing); SL_ENOTFOUND (cannot open the file).
 */
int elf_check_plugin(
    const char *path, const char *symbol, char *why, size_t whylen);

#endif
