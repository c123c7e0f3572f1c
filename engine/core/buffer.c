/* buffer.c: see buffer.h.  Capacity doubles, so appending n bytes one
 * piece at a time costs O(n). */
#define _GNU_SOURCE             /* mremap */
#include "core/buffer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* From this capacity on, a buffer is memory mapped for it alone and
 * unmapped when freed.  Not left to malloc's own threshold: malloc first
 * serves a large block from free heap, and a large answer read every
 * interval (Docker's listing of a hundred containers is 100 KiB) would
 * then keep heap pages resident that malloc_trim had given back.  So
 * would the blocks it grows through on the way: with the threshold at 64
 * KiB, the listing's 16 and 32 KiB steps kept some 50 KiB of heap resident
 * on an idle host.  A capacity of at least this means mapped, one below
 * means malloc'd. */
#define BUFFER_MAPPED (16 * 1024)

/* An emptied buffer keeps this much; a larger one (a burst of events, a
 * watch's first answer) goes back, so a long-lived stream does not hold
 * its peak for good.  Below BUFFER_MAPPED: what a stream keeps is a heap
 * block, not a mapping of its own. */
#define BUFFER_KEEP (8 * 1024)

static char *map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void release(char *data, size_t cap)
{
    if (cap >= BUFFER_MAPPED)
        munmap(data, cap);
    else
        free(data);
}

/* The block of capacity `want` holding the first len + 1 bytes of data
 * (NULL: out of memory, data unchanged). */
static char *resize(char *data, size_t cap, size_t len, size_t want)
{
    char *p;
    if (cap >= BUFFER_MAPPED && want >= BUFFER_MAPPED) {
        p = mremap(data, cap, want, MREMAP_MAYMOVE);
        return p == MAP_FAILED ? NULL : p;
    }
    if (cap < BUFFER_MAPPED && want < BUFFER_MAPPED)
        return realloc(data, want);
    if ((p = want >= BUFFER_MAPPED ? map(want) : malloc(want)) == NULL)
        return NULL;
    if (data != NULL)
        memcpy(p, data, len + 1);
    release(data, cap);
    return p;
}

int buffer_append(struct buffer *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = resize(b->data, b->cap, b->len, cap);
        if (p == NULL)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void buffer_consume(struct buffer *b, size_t n)
{
    if (n >= b->len && b->cap > BUFFER_KEEP) {
        buffer_free(b);
        return;
    }
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data != NULL)
        b->data[b->len] = '\0';
    if (b->cap > BUFFER_KEEP && b->len < BUFFER_KEEP) {
        /* a stream rarely empties (a line is on its way): shrink anyway */
        char *p = resize(b->data, b->cap, b->len, BUFFER_KEEP);
        if (p != NULL) {
            b->data = p;
            b->cap = BUFFER_KEEP;
        }
    }
}

void buffer_free(struct buffer *b)
{
    if (b->data != NULL)
        release(b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}
