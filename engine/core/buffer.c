/* buffer.c: see buffer.h.  Capacity doubles, so appending n bytes one
 * piece at a time costs O(n). */
#include "core/buffer.h"

#include <stdlib.h>
#include <string.h>

/* From this size on, the C library maps memory of its own for a block
 * (daemon.c sets M_MMAP_THRESHOLD to it), which goes back to the
 * system when freed. */
#define BUFFER_MAPPED (64 * 1024)

/* realloc, except when crossing into mapped sizes: realloc would grow the
 * block in place into free heap next to it, and a large answer read every
 * interval (Docker's listing of thousands of containers) would keep those
 * heap pages resident after it is freed. */
static char *grow(char *data, size_t cap, size_t len, size_t want)
{
    char *p;
    if (cap >= BUFFER_MAPPED || want < BUFFER_MAPPED)
        return realloc(data, want);
    if ((p = malloc(want)) == NULL)
        return NULL;
    if (data != NULL)
        memcpy(p, data, len + 1);
    free(data);
    return p;
}

int buffer_append(struct buffer *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = grow(b->data, b->cap, b->len, cap);
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

/* An emptied buffer keeps this much; a larger one (a burst of events, a
 * watch's first answer) goes back, so a long-lived stream does not hold
 * its peak for good. */
#define BUFFER_KEEP (16 * 1024)

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
        char *p = realloc(b->data, BUFFER_KEEP);
        if (p != NULL) {
            b->data = p;
            b->cap = BUFFER_KEEP;
        }
    }
}

void buffer_free(struct buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
