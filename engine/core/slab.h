/* slab.h: small records kept on pages of their own, one size to a page:
 * what lives as long as a container does (map nodes, entries, names, a
 * container's kept JSON), and Lua's objects and cJSON's trees, which come
 * and go around them.
 *
 * In glibc's heap a start-up interleaves each container's few long-lived
 * records with many times their size in parse trees and Lua garbage;
 * once the garbage goes, pages keep a record or two each and stay
 * resident, and each block carries 8 to 16 bytes of header.  Measured at
 * 10 000 containers, 2.5 MiB of 28.  Here pages stay full, and a page
 * whose last record goes is unmapped (once a burst is over: slab_trim).
 *
 * The caller says the size again when it lets go: a record carries no
 * header. */
#ifndef REGISTRAR_CORE_SLAB_H
#define REGISTRAR_CORE_SLAB_H

#include <stddef.h>

/* size zeroed bytes, or NULL when out of memory.  Records larger than the
 * largest size class come from malloc. */
void *slab_alloc(size_t size);
/* Lets go of a record slab_alloc gave for the same size (NULL: nothing). */
void slab_free(void *p, size_t size);

/* The record p (NULL: none) of old_size bytes resized to size (not 0), as
 * realloc does it: NULL when out of memory, p then left as it was.  Lua's
 * allocator: its objects, short-lived or not, are kept off the heap too. */
void *slab_realloc(void *p, size_t old_size, size_t size);

/* A copy of s, and letting go of one (by its length, so it must not have
 * been shortened in between). */
char *slab_strdup(const char *s);
void slab_strfree(char *s);

/* Unmaps the empty pages kept for reuse (when a burst is over). */
void slab_trim(void);

/* KiB of pages mapped now, for the tests and the debug log. */
size_t slab_mapped_kib(void);

#endif
