/* pool.c: see pool.h.  Each string is preceded by a pointer to its block,
 * so pool_free needs nothing else; a block counts the strings it holds. */
#include "core/pool.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define POOL_BLOCK (64 * 1024)

struct pool_block {
    struct pool *pool;
    size_t size, used;          /* of the mapping, header included */
    long live;                  /* strings not let go of yet */
};

static size_t round_up(size_t n) { return (n + 7) & ~(size_t)7; }

static struct pool_block *block_new(struct pool *p, size_t need)
{
    size_t header = round_up(sizeof(struct pool_block));
    size_t size = need + header > POOL_BLOCK ? (need + header + 4095) & ~(size_t)4095 : POOL_BLOCK;
    struct pool_block *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return NULL;
    b->pool = p;
    b->size = size;
    b->used = header;
    b->live = 0;
    return b;
}

char *pool_strdup(struct pool *p, const char *s)
{
    size_t len = strlen(s), need = round_up(sizeof(struct pool_block *) + len + 1);
    struct pool_block *b = p->current;
    char *at;

    if (need < len)
        return NULL;            /* overflow */
    if (b == NULL || b->size - b->used < need) {
        /* the full block stays mapped until its strings go */
        if ((b = block_new(p, need)) == NULL)
            return NULL;
        p->current = b;
    }
    at = (char *)b + b->used;
    memcpy(at, &b, sizeof b);
    memcpy(at + sizeof b, s, len + 1);
    b->used += need;
    b->live++;
    return at + sizeof b;
}

void pool_free(char *s)
{
    struct pool_block *b;
    if (s == NULL)
        return;
    memcpy(&b, s - sizeof b, sizeof b);
    if (--b->live > 0)
        return;
    if (b->pool->current == b)
        b->pool->current = NULL;
    munmap(b, b->size);
}
