/* buffer.h: a growable byte buffer, kept NUL-terminated so its bytes can
 * be read as text (HTTP bodies, the event stream, JSON being written). */
#ifndef REGISTRAR_CORE_BUFFER_H
#define REGISTRAR_CORE_BUFFER_H

#include <stddef.h>

struct buffer {
    char *data;                 /* NULL until something is added */
    size_t len, cap;
};

/* Appends n bytes; -1 when out of memory (the buffer is unchanged). */
int buffer_append(struct buffer *b, const char *data, size_t n);
/* Drops the first n bytes (those consumed). */
void buffer_consume(struct buffer *b, size_t n);
void buffer_free(struct buffer *b);

#endif
