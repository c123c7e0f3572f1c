/* backoff.c: see backoff.h. */
#include "core/backoff.h"

void backoff_init(struct backoff *b, long first_ms, long cap_ms)
{
    b->first_ms = first_ms < cap_ms ? first_ms : cap_ms;   /* the cap holds from the first */
    b->cap_ms = cap_ms;
    b->next_ms = b->first_ms;
}

long backoff_next(struct backoff *b)
{
    long now = b->next_ms;
    b->next_ms = now > b->cap_ms / 2 ? b->cap_ms : now * 2;
    return now;
}

void backoff_reset(struct backoff *b)
{
    b->next_ms = b->first_ms;
}
