/* sluice-host's record of the calls it is inside: see hostrec.h. */
#include "hostrec.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <sluice/errors.h>

#define HOSTREC_MAGIC 0x534c4852u /* "SLHR" */

/* The watchdog looks every 50 ms: a clock of a few ms is plenty, and
 * costs less per call than CLOCK_MONOTONIC. */
static int64_t
coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct slot {
	_Atomic uint32_t busy; /* 1 while inside a plugin call */
	_Atomic uint32_t cut;  /* the watchdog cut this call */
	int64_t          entered_ns;
	int64_t          ran_ms;
	uint64_t         position;
	char             tenant[257];
	char             def_id[37];
	char             key[512];
} slot;

typedef struct file_layout {
	uint32_t magic;
	uint32_t n_slots;
	slot     slots[HOSTREC_SLOTS];
} file_layout;

struct hostrec {
	file_layout *f;
};

static void
copy_cut(char *dst, size_t cap, const char *src)
{
	size_t n = src != NULL ? strnlen(src, cap - 1) : 0;
	if (n > 0)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

int
hostrec_open(const char *path, hostrec_poison *left, size_t max,
    size_t *n_left, hostrec **out)
{
	*n_left = 0;
	*out    = NULL;
	int fd  = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return SL_ESTORAGE;
	if (ftruncate(fd, (off_t) sizeof(file_layout)) != 0) {
		close(fd);
		return SL_ESTORAGE;
	}
	void *m = mmap(NULL, sizeof(file_layout), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	close(fd);
	hostrec *r = malloc(sizeof(*r));
	if (m == MAP_FAILED || r == NULL) {
		if (m != MAP_FAILED)
			munmap(m, sizeof(file_layout));
		free(r);
		return SL_ESTORAGE;
	}
	r->f = m;
	if (r->f->magic == HOSTREC_MAGIC) {
		for (size_t i = 0; i < HOSTREC_SLOTS && *n_left < max; i++) {
			slot *s = &r->f->slots[i];
			if (atomic_load(&s->busy) != 1)
				continue;
			hostrec_poison *p = &left[(*n_left)++];
			copy_cut(p->tenant, sizeof(p->tenant), s->tenant);
			copy_cut(p->def_id, sizeof(p->def_id), s->def_id);
			copy_cut(p->key, sizeof(p->key), s->key);
			p->position = s->position;
			p->cut      = atomic_load(&s->cut) != 0;
			p->ran_ms   = s->ran_ms;
		}
	}
	memset(r->f, 0, sizeof(file_layout));
	r->f->magic   = HOSTREC_MAGIC;
	r->f->n_slots = HOSTREC_SLOTS;
	*out          = r;
	return SL_OK;
}

void
hostrec_close(hostrec *r)
{
	if (r == NULL)
		return;
	munmap(r->f, sizeof(file_layout));
	free(r);
}

void
hostrec_enter(hostrec *r, size_t i, const char *tenant, const char *def_id,
    const char *key, uint64_t position)
{
	if (r == NULL || i >= HOSTREC_SLOTS)
		return;
	slot *s = &r->f->slots[i];
	copy_cut(s->tenant, sizeof(s->tenant), tenant);
	copy_cut(s->def_id, sizeof(s->def_id), def_id);
	copy_cut(s->key, sizeof(s->key), key);
	s->position   = position;
	s->entered_ns = coarse_ns();
	atomic_store(&s->busy, 1);
}

void
hostrec_leave(hostrec *r, size_t i)
{
	if (r != NULL && i < HOSTREC_SLOTS)
		atomic_store(&r->f->slots[i].busy, 0);
}

bool
hostrec_overdue(hostrec *r, int64_t ms, int64_t *ran_ms)
{
	if (r == NULL)
		return false;
	int64_t now = coarse_ns();
	for (size_t i = 0; i < HOSTREC_SLOTS; i++) {
		slot *s = &r->f->slots[i];
		if (atomic_load(&s->busy) != 1)
			continue;
		int64_t ran = (now - s->entered_ns) / 1000000;
		if (ran > ms && atomic_load(&s->busy) == 1) {
			s->ran_ms = ran;
			atomic_store(&s->cut, 1);
			*ran_ms = ran;
			return true;
		}
	}
	return false;
}
