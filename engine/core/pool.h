/* pool.h: strings held for a short while and let go of in about the order
 * they came (the values of a start-up's thousands of keys, until each is
 * written).  They are packed into blocks of their own mapping, and a block
 * is unmapped when its last string goes: a burst leaves no holes among
 * the heap's long-lived allocations, and an idle daemon holds no block. */
#ifndef REGISTRAR_CORE_POOL_H
#define REGISTRAR_CORE_POOL_H

struct pool_block;

struct pool {
    struct pool_block *current;     /* the block new strings go to, or NULL */
};

/* A copy of s in p, or NULL when no memory could be mapped. */
char *pool_strdup(struct pool *p, const char *s);
/* Lets go of a string pool_strdup made (NULL: nothing). */
void pool_free(char *s);

#endif
