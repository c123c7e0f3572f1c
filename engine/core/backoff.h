/* backoff.h: how long to wait before trying again: doubling from a first
 * delay up to a cap, back to the first after a success.  Docker's
 * reconnects, the backend's open and the reconciler's retries share it. */
#ifndef REGISTRAR_CORE_BACKOFF_H
#define REGISTRAR_CORE_BACKOFF_H

struct backoff {
    long first_ms, cap_ms, next_ms;
};

void backoff_init(struct backoff *b, long first_ms, long cap_ms);
/* The delay to wait now; the one after it is twice as long, up to the cap. */
long backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);

#endif
