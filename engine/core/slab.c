/* slab.c: see slab.h.  The event loop's thread only.
 *
 * Each page is its own mapping and starts with a header; records of one
 * size class follow it.  Slots never used are handed out from the top, so
 * a fresh page is touched only as far as it is used; slots let go of are
 * chained in a free list through their first bytes.  Each class lists the
 * pages that have a slot free.  A page whose last record goes is kept for
 * the next class that needs one, up to CACHED_PAGES of them, and unmapped
 * when the daemon settles (slab_trim): a start-up's parse trees come and
 * go a page at a time, and mapping each afresh cost a third more CPU.
 *
 * Under valgrind records come from malloc, so that memcheck sees each one;
 * under AddressSanitizer free slots are poisoned. */
#include "core/slab.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define GRAIN 16
/* Sizes in GRAIN steps up to 256, then coarser: a container's kept JSON
 * (some 600 bytes) wastes under a tenth of its slot. */
static const unsigned short class_size[] = {
    16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
    320, 384, 448, 512, 640, 768, 1024,
};
#define CLASSES (sizeof class_size / sizeof class_size[0])
#define LARGEST 1024

struct page {
    struct page *prev, *next;   /* in its class's list of pages with room */
    void *free;                 /* slots let go of */
    unsigned used, top;         /* records held; slots handed out from the top */
    unsigned char cls;
};

struct slot { void *next; };

#define CACHED_PAGES 64

static struct page *with_room[CLASSES];
static struct page *cached;     /* empty pages, chained through next */
static size_t cached_count;
static size_t page_size, pages_mapped;

static size_t header_size(void) { return (sizeof(struct page) + GRAIN - 1) & ~(size_t)(GRAIN - 1); }

static unsigned slots_per_page(unsigned cls) { return (unsigned)((page_size - header_size()) / class_size[cls]); }

static bool use_malloc(void)
{
    return RUNNING_ON_VALGRIND;
}

static int class_of(size_t size)
{
    unsigned lo = 0, hi = CLASSES - 1;
    if (size > LARGEST)
        return -1;
    while (lo < hi) {           /* the first class large enough */
        unsigned mid = (lo + hi) / 2;
        if (class_size[mid] >= size)
            hi = mid;
        else
            lo = mid + 1;
    }
    return (int)lo;
}

static void list_push(struct page **head, struct page *pg)
{
    pg->prev = NULL;
    pg->next = *head;
    if (*head)
        (*head)->prev = pg;
    *head = pg;
}

static void list_unlink(struct page **head, struct page *pg)
{
    if (pg->prev)
        pg->prev->next = pg->next;
    else
        *head = pg->next;
    if (pg->next)
        pg->next->prev = pg->prev;
    pg->prev = pg->next = NULL;
}

static struct page *page_new(unsigned cls)
{
    struct page *pg;
    if (page_size == 0)
        page_size = (size_t)sysconf(_SC_PAGESIZE);
    if (cached != NULL) {
        pg = cached;
        cached = pg->next;
        cached_count--;
    } else {
        pg = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (pg == MAP_FAILED)
            return NULL;
        pages_mapped++;
        POISON((char *)pg + header_size(), page_size - header_size());
    }
    memset(pg, 0, sizeof *pg);
    pg->cls = (unsigned char)cls;
    return pg;
}

/* The shadow of a mapping outlives it: unpoisoned first, or whatever is
 * mapped there next (a malloc'd buffer) would read as poisoned. */
static void page_unmap(struct page *pg)
{
    UNPOISON(pg, page_size);
    pages_mapped--;
    munmap(pg, page_size);
}

static void page_release(struct page *pg)
{
    if (cached_count < CACHED_PAGES) {
        POISON((char *)pg + header_size(), page_size - header_size());
        pg->next = cached;
        cached = pg;
        cached_count++;
        return;
    }
    page_unmap(pg);
}

void slab_trim(void)
{
    while (cached != NULL) {
        struct page *pg = cached;
        cached = pg->next;
        page_unmap(pg);
    }
    cached_count = 0;
}

static void *slot_take(struct page *pg)
{
    size_t size = class_size[pg->cls];
    void *p;
    if (pg->free != NULL) {
        p = pg->free;
        UNPOISON(p, sizeof(struct slot));
        pg->free = ((struct slot *)p)->next;
    } else {
        p = (char *)pg + header_size() + (size_t)pg->top++ * size;
    }
    UNPOISON(p, size);
    pg->used++;
    return p;
}

/* A slot of class cls, its bytes as they were. */
static void *class_take(unsigned cls)
{
    struct page *pg = with_room[cls];
    void *p;
    if (pg == NULL) {
        if ((pg = page_new(cls)) == NULL)
            return NULL;
        list_push(&with_room[cls], pg);
    }
    p = slot_take(pg);
    if (pg->used == slots_per_page(cls))
        list_unlink(&with_room[cls], pg);
    return p;
}

void *slab_alloc(size_t size)
{
    int cls = class_of(size);
    void *p;
    if (cls < 0 || use_malloc())
        return calloc(1, size ? size : 1);
    p = class_take((unsigned)cls);
    return p ? memset(p, 0, size) : NULL;
}

void slab_free(void *p, size_t size)
{
    int cls = class_of(size);
    struct page *pg;

    if (p == NULL)
        return;
    if (cls < 0 || use_malloc()) {
        free(p);
        return;
    }
    pg = (struct page *)((uintptr_t)p & ~(uintptr_t)(page_size - 1));
    if (pg->used-- == slots_per_page(pg->cls))
        list_push(&with_room[pg->cls], pg);     /* was full: has room again */
    ((struct slot *)p)->next = pg->free;
    pg->free = p;
    POISON(p, class_size[pg->cls]);
    if (pg->used == 0) {
        list_unlink(&with_room[pg->cls], pg);
        page_release(pg);
    }
}

void *slab_realloc(void *p, size_t old_size, size_t size)
{
    int from = p ? class_of(old_size) : -2, to = class_of(size);
    void *moved;

    if (use_malloc() || (from == -1 && to == -1))
        return realloc(p, size);
    if (from == to)
        return p;               /* the slot has room */
    if ((moved = to >= 0 ? class_take((unsigned)to) : malloc(size)) == NULL)
        return NULL;
    if (p != NULL) {
        memcpy(moved, p, old_size < size ? old_size : size);
        slab_free(p, old_size);
    }
    return moved;
}

char *slab_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = slab_alloc(n);
    return copy ? memcpy(copy, s, n) : NULL;
}

void slab_strfree(char *s)
{
    if (s != NULL)
        slab_free(s, strlen(s) + 1);
}

size_t slab_mapped_kib(void) { return pages_mapped * (page_size >> 10); }
