/*
 * Proves that the loader's ELF check accepts a whole plugin and refuses,
 * with a reason, every prefix of it (a file a linker is still writing),
 * files that are not ELF shared objects, and shared objects without the
 * init function; and that the registry refuses a truncated plugin before
 * dlopen while a loaded version of the same file keeps running.
 */
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>

#include "elfcheck.h"
#include "log.h"
#include "plugins.h"
#include "daemon_testutil.h"

#define SYM "sluice_plugin_init"

static void
expect_refused(const char *path, const char *part)
{
	char why[512] = "";
	CHECK_EQ(elf_check_plugin(path, SYM, why, sizeof(why)), SL_EPLUGIN);
	if (strstr(why, part) == NULL) {
		fprintf(
		    stderr, "%s: reason '%s' lacks '%s'\n", path, why, part);
		exit(1);
	}
}

int
main(void)
{
	char   path[4200], why[512];
	size_t len;
	log_set_level(-1);

	/* the real plugins pass */
	CHECK_EQ(elf_check_plugin(SL_PLUGIN_DIR "/account_details.so", SYM,
	             why, sizeof(why)),
	    SL_OK);
	CHECK_STREQ(why, "");
	CHECK_EQ(elf_check_plugin(SL_TEST_PLUGIN_DIR "/account_details_v3.so",
	             SYM, NULL, 0),
	    SL_OK);
	/* one that dlopen refuses later (unresolved symbol) is still whole */
	CHECK_EQ(elf_check_plugin(
	             SL_TEST_PLUGIN_DIR "/unresolved.so", SYM, NULL, 0),
	    SL_OK);

	/* no init function: the message the loader always gave */
	expect_refused(SL_TEST_PLUGIN_DIR "/no_symbol.so",
	    "not a Sluice plugin: it does not export sluice_plugin_init()");
	/* a shared object (this PIE test program) without it, too */
	expect_refused("/proc/self/exe", "does not export");

	/* every prefix of a plugin, as a linker writes it, is refused */
	char *so = dt_slurp(SL_PLUGIN_DIR "/account_details.so", &len);
	snprintf(path, sizeof(path), "%s/partial.so", tu_tmpdir());
	size_t step = len / 97 + 1, refused = 0;
	for (size_t n = 0; n < len; n += step) {
		dt_write_bytes(path, so, n);
		char w[512] = "";
		CHECK_EQ(
		    elf_check_plugin(path, SYM, w, sizeof(w)), SL_EPLUGIN);
		CHECK(strstr(w, "incomplete") != NULL
		    || strstr(w, "still being written") != NULL);
		refused++;
	}
	CHECK(refused > 90);
	/* one byte short */
	dt_write_bytes(path, so, len - 1);
	expect_refused(path, "incomplete ELF file");
	/* the whole file passes */
	dt_write_bytes(path, so, len);
	CHECK_EQ(elf_check_plugin(path, SYM, NULL, 0), SL_OK);

	/* a whole file with a damaged section (size beyond the end) */
	{
		char *bad = malloc(len);
		CHECK(bad != NULL);
		memcpy(bad, so, len);
		ElfW(Ehdr) *eh = (ElfW(Ehdr) *) bad;
		ElfW(Shdr) *sh = (ElfW(Shdr) *) (bad + eh->e_shoff);
		size_t k       = 1;
		while (k < eh->e_shnum && sh[k].sh_type == SHT_NOBITS)
			k++;
		CHECK(k < eh->e_shnum);
		sh[k].sh_size = len * 2;
		dt_write_bytes(path, bad, len);
		expect_refused(path, "section");
		/* not a shared object: ET_EXEC */
		memcpy(bad, so, len);
		eh->e_type = ET_EXEC;
		dt_write_bytes(path, bad, len);
		expect_refused(path, "not an ELF shared object");
		/* another machine */
		memcpy(bad, so, len);
		eh->e_machine = (ElfW(Half))(eh->e_machine + 1);
		dt_write_bytes(path, bad, len);
		expect_refused(path, "built for another machine");
		/* another class */
		memcpy(bad, so, len);
		eh->e_ident[EI_CLASS] = ELFCLASSNONE;
		dt_write_bytes(path, bad, len);
		expect_refused(path, "ELF file like this host's");
		free(bad);
	}

	/* not ELF at all */
	dt_write_bytes(path, "#!/bin/sh\necho not a plugin\n", 28);
	expect_refused(path, "not an ELF file");
	dt_write_bytes(path, "\177E", 2);
	expect_refused(path, "incomplete or not an ELF file: only 2 bytes");

	/* not a file, no file */
	expect_refused(tu_tmpdir(), "not a regular file");
	snprintf(path, sizeof(path), "%s/none.so", tu_tmpdir());
	CHECK_EQ(elf_check_plugin(path, SYM, why, sizeof(why)), SL_ENOTFOUND);
	CHECK(strstr(why, "cannot open") != NULL);

	/* The registry checks before dlopen: a half-written reload of a
	 * loaded file is refused, and the running version stays. */
	{
		char      dir[4096], cache[4200], err[1024];
		registry *r;
		snprintf(dir, sizeof(dir), "%s/plugins", tu_tmpdir());
		snprintf(cache, sizeof(cache), "%s/cache", tu_tmpdir());
		CHECK(mkdir(dir, 0755) == 0);
		snprintf(path, sizeof(path), "%s/account_details.so", dir);
		dt_write_bytes(path, so, len);
		CHECK_EQ(registry_create(cache, &r), SL_OK);
		CHECK_EQ(registry_load_file(r, path, err, sizeof(err)), SL_OK);
		const proj_def *d = registry_find(r, "account_details", 15);
		CHECK(d != NULL);

		dt_write_bytes(path, so, len / 2);
		proj_change *c;
		size_t       n;
		CHECK_EQ(
		    registry_reload_file(r, path, &c, &n, err, sizeof(err)),
		    SL_EPLUGIN);
		CHECK(c == NULL && n == 0);
		CHECK(strstr(err, path) == err);
		CHECK(strstr(err, "incomplete ELF file") != NULL);
		CHECK(registry_find(r, "account_details", 15) == d);
		CHECK(d->p != NULL);
		plugin_info info;
		registry_plugin_info(r, 0, &info);
		CHECK(info.loaded);
		CHECK_STREQ(info.version, "1.0.0");
		CHECK_STREQ(info.error, err);
		CHECK(info.error_at_ns > 0);
		CHECK_EQ(info.versions_open, 1);
		CHECK_EQ(registry_plugin_count(r), 1);
		CHECK_EQ(registry_projection_count(r), 1);
		registry_destroy(r);
	}
	free(so);
	printf("elfcheck_test: ok (%zu prefixes refused)\n", refused);
	return 0;
}
