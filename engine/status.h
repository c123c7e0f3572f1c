/* status.h: `registrar status`. */
#ifndef REGISTRAR_STATUS_H
#define REGISTRAR_STATUS_H

struct config;

/* Asks the registrar listening at c->listen; 0 healthy, 1 not, 2 when it
 * cannot be asked. */
int status_run(const struct config *c);

#endif
