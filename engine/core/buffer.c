/* buffer.c: see buffer.h.  Capacity doubles, so appending n bytes one
 * piece at a time costs O(n). */
#include "core/buffer.h"

#include <stdlib.h>
#include <string.h>

int buffer_append(struct buffer *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->data, cap);
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
}

void buffer_free(struct buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
