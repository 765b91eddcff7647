/*
 * Is this file a whole plugin? The loader runs this on its private copy
 * before dlopen, and the plugin watcher's refusals come from here: a file
 * that a linker is still writing has its section table (written last by
 * GNU ld) or some section beyond the end of the file, and is refused with
 * that reason instead of being loaded.
 */
#include "elfcheck.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/errors.h>

#if __ELF_NATIVE_CLASS == 64
#define EC_CLASS ELFCLASS64
#define EC_BITS  "64-bit"
#else
#define EC_CLASS ELFCLASS32
#define EC_BITS  "32-bit"
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EC_DATA  ELFDATA2LSB
#define EC_ORDER "little-endian"
#else
#define EC_DATA  ELFDATA2MSB
#define EC_ORDER "big-endian"
#endif

/* Bounds for what is read into memory: no plugin comes near them, and a
 * corrupt header cannot make us allocate gigabytes. */
#define EC_MAX_SECTIONS 65535u
#define EC_MAX_TABLE    (64u << 20)

static pthread_once_t host_once    = PTHREAD_ONCE_INIT;
static int            host_machine = -1; /* -1: unknown, not checked */

/* The running executable's machine, so a plugin built for another one is
 * refused with a clear reason rather than dlopen's. */
static void
read_host_machine(void)
{
	ElfW(Ehdr) eh;
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (pread(fd, &eh, sizeof(eh), 0) == (ssize_t) sizeof(eh)
	    && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0)
		host_machine = eh.e_machine;
	close(fd);
}

static int ec_fail(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
ec_fail(char *why, size_t len, const char *fmt, ...)
{
	if (why != NULL && len > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return SL_EPLUGIN;
}

/* [off, off + n) lies inside a file of `size` bytes (overflow-safe). */
static bool
inside(uint64_t off, uint64_t n, uint64_t size)
{
	return off <= size && n <= size - off;
}

/* Read exactly n bytes at off; false on a short read or an error. */
static bool
read_at(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(
		    fd, (char *) buf + done, n - done, (off_t) (off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		done += (size_t) r;
	}
	return true;
}

/* Header checks: magic, class, byte order, type, machine, table sizes. */
static int
check_header(const ElfW(Ehdr) * eh, uint64_t size, char *why, size_t len)
{
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return ec_fail(why, len, "not an ELF file (bad magic bytes)");
	if (eh->e_ident[EI_CLASS] != EC_CLASS
	    || eh->e_ident[EI_DATA] != EC_DATA)
		return ec_fail(why, len,
		    "not a " EC_BITS " " EC_ORDER
		    " ELF file like this host's (class %u, data %u)",
		    eh->e_ident[EI_CLASS], eh->e_ident[EI_DATA]);
	if (eh->e_type != ET_DYN)
		return ec_fail(why, len,
		    "not an ELF shared object (ELF type %u; build it as a "
		    "MODULE/shared library)",
		    (unsigned) eh->e_type);
	pthread_once(&host_once, read_host_machine);
	if (host_machine >= 0 && eh->e_machine != host_machine)
		return ec_fail(why, len,
		    "built for another machine (ELF machine %u, this host "
		    "%d)",
		    (unsigned) eh->e_machine, host_machine);
	if (eh->e_phnum > 0 && eh->e_phentsize != sizeof(ElfW(Phdr)))
		return ec_fail(why, len, "bad program header size %u",
		    (unsigned) eh->e_phentsize);
	if (!inside(
	        eh->e_phoff, (uint64_t) eh->e_phnum * eh->e_phentsize, size))
		return ec_fail(why, len,
		    "incomplete ELF file: the program headers end at byte "
		    "%" PRIu64 " but the file has %" PRIu64
		    " bytes (still being written?)",
		    (uint64_t) eh->e_phoff
		        + (uint64_t) eh->e_phnum * eh->e_phentsize,
		    size);
	if (eh->e_shoff == 0)
		return ec_fail(why, len, "the ELF file has no section table");
	if (eh->e_shentsize != sizeof(ElfW(Shdr)))
		return ec_fail(why, len, "bad section header size %u",
		    (unsigned) eh->e_shentsize);
	return SL_OK;
}

/* Every program segment and section with file contents is inside. */
static int
check_extents(int fd, const ElfW(Ehdr) * eh, const ElfW(Shdr) * sh,
    size_t shnum, uint64_t size, char *why, size_t len)
{
	for (size_t i = 0; i < eh->e_phnum; i++) {
		ElfW(Phdr) ph;
		if (!read_at(fd, &ph, sizeof(ph),
		        eh->e_phoff + (uint64_t) i * sizeof(ph)))
			return ec_fail(
			    why, len, "cannot read program header %zu", i);
		if (!inside(ph.p_offset, ph.p_filesz, size))
			return ec_fail(why, len,
			    "incomplete ELF file: segment %zu ends at byte "
			    "%" PRIu64 " but the file has %" PRIu64
			    " bytes (still being written?)",
			    i, (uint64_t) ph.p_offset + ph.p_filesz, size);
	}
	for (size_t i = 1; i < shnum; i++) {
		if (sh[i].sh_type == SHT_NOBITS || sh[i].sh_type == SHT_NULL)
			continue;
		if (!inside(sh[i].sh_offset, sh[i].sh_size, size))
			return ec_fail(why, len,
			    "incomplete ELF file: section %zu ends at byte "
			    "%" PRIu64 " but the file has %" PRIu64
			    " bytes (still being written?)",
			    i, (uint64_t) sh[i].sh_offset + sh[i].sh_size,
			    size);
	}
	return SL_OK;
}

/* Look for a defined function `symbol` in .dynsym. */
static int
find_symbol(int fd, const ElfW(Shdr) * sh, size_t shnum, const char *symbol,
    char *why, size_t len)
{
	const ElfW(Shdr) *dynsym = NULL;
	for (size_t i = 1; i < shnum && dynsym == NULL; i++)
		if (sh[i].sh_type == SHT_DYNSYM)
			dynsym = &sh[i];
	if (dynsym == NULL || dynsym->sh_link == 0 || dynsym->sh_link >= shnum
	    || sh[dynsym->sh_link].sh_type != SHT_STRTAB
	    || dynsym->sh_entsize != sizeof(ElfW(Sym))
	    || dynsym->sh_size > EC_MAX_TABLE
	    || sh[dynsym->sh_link].sh_size > EC_MAX_TABLE)
		return ec_fail(why, len,
		    "not a Sluice plugin: it does not export %s() (no usable "
		    "dynamic symbol table)",
		    symbol);
	const ElfW(Shdr) *strsh = &sh[dynsym->sh_link];
	size_t nsym             = dynsym->sh_size / sizeof(ElfW(Sym));
	size_t slen             = strsh->sh_size;
	ElfW(Sym) *syms         = malloc(dynsym->sh_size + 1);
	char *strs              = malloc(slen + 1);
	int   rc                = SL_ENOMEM;
	if (syms == NULL || strs == NULL)
		goto out;
	rc = ec_fail(why, len, "cannot read the dynamic symbol table");
	if (!read_at(fd, syms, dynsym->sh_size, dynsym->sh_offset)
	    || !read_at(fd, strs, slen, strsh->sh_offset))
		goto out;
	strs[slen] = '\0';
	rc         = ec_fail(
	            why, len, "not a Sluice plugin: it does not export %s()", symbol);
	for (size_t i = 1; i < nsym; i++) {
		unsigned type = ELF64_ST_TYPE(syms[i].st_info);
		if (syms[i].st_name >= slen || syms[i].st_shndx == SHN_UNDEF
		    || (type != STT_FUNC && type != STT_GNU_IFUNC))
			continue;
		if (strcmp(strs + syms[i].st_name, symbol) == 0) {
			rc = SL_OK;
			break;
		}
	}
out:
	free(syms);
	free(strs);
	return rc;
}

int
elf_check_plugin(
    const char *path, const char *symbol, char *why, size_t whylen)
{
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ec_fail(why, whylen, "cannot open: %s", strerror(errno));
		return SL_ENOTFOUND;
	}
	struct stat sb;
	ElfW(Shdr) *sh = NULL;
	int rc;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = ec_fail(why, whylen, "not a regular file");
		goto out;
	}
	uint64_t size = (uint64_t) sb.st_size;
	ElfW(Ehdr) eh;
	unsigned char magic[SELFMAG];
	if (size >= SELFMAG && read_at(fd, magic, SELFMAG, 0)
	    && memcmp(magic, ELFMAG, SELFMAG) != 0) {
		rc = ec_fail(why, whylen, "not an ELF file (bad magic bytes)");
		goto out;
	}
	if (size < sizeof(eh) || !read_at(fd, &eh, sizeof(eh), 0)) {
		rc = ec_fail(why, whylen,
		    "incomplete or not an ELF file: only %" PRIu64
		    " bytes (still being written?)",
		    size);
		goto out;
	}
	if ((rc = check_header(&eh, size, why, whylen)) != SL_OK)
		goto out;

	/* Section count: e_shnum, or (extended numbering) sh[0].sh_size. */
	uint64_t shnum = eh.e_shnum;
	if (shnum == 0) {
		ElfW(Shdr) first;
		if (!inside(eh.e_shoff, sizeof(first), size)
		    || !read_at(fd, &first, sizeof(first), eh.e_shoff)) {
			rc = ec_fail(why, whylen,
			    "incomplete ELF file: the section table starts "
			    "at byte %" PRIu64 " but the file has %" PRIu64
			    " bytes (still being written?)",
			    (uint64_t) eh.e_shoff, size);
			goto out;
		}
		shnum = first.sh_size;
	}
	if (shnum == 0 || shnum > EC_MAX_SECTIONS) {
		rc = ec_fail(why, whylen, "bad section count %" PRIu64, shnum);
		goto out;
	}
	if (!inside(eh.e_shoff, shnum * sizeof(ElfW(Shdr)), size)) {
		rc = ec_fail(why, whylen,
		    "incomplete ELF file: the section table ends at byte "
		    "%" PRIu64 " but the file has %" PRIu64
		    " bytes (still being written?)",
		    (uint64_t) eh.e_shoff + shnum * sizeof(ElfW(Shdr)), size);
		goto out;
	}
	sh = malloc((size_t) shnum * sizeof(*sh));
	if (sh == NULL) {
		rc = SL_ENOMEM;
		goto out;
	}
	if (!read_at(fd, sh, (size_t) shnum * sizeof(*sh), eh.e_shoff)) {
		rc = ec_fail(why, whylen, "cannot read the section table");
		goto out;
	}
	rc = check_extents(fd, &eh, sh, (size_t) shnum, size, why, whylen);
	if (rc == SL_OK)
		rc = find_symbol(fd, sh, (size_t) shnum, symbol, why, whylen);
out:
	if (rc == SL_OK && why != NULL && whylen > 0)
		why[0] = '\0'; /* find_symbol words its refusal in advance */
	free(sh);
	close(fd);
	return rc;
}
