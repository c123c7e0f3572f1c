/* hostdoc.h: this host's document, <prefix_hosts>/<hostname>, as the old
 * tool wrote it: who this host is and which keys it has registered. */
#ifndef REGISTRAR_REGISTRY_HOSTDOC_H
#define REGISTRAR_REGISTRY_HOSTDOC_H

/* The owner the reconciler knows the document by: no Docker id has a ':'. */
#define HOSTDOC_OWNER ":host"

struct config;
struct hostdoc;
struct reconcile;
struct script;

struct hostdoc *hostdoc_new(const struct config *c);
void hostdoc_free(struct hostdoc *h);
/* <prefix_hosts>/<hostname> */
const char *hostdoc_key(const struct hostdoc *h);

/* After a listing: the document from the keys r now wants, handed to r
 * when it differs from the last one (the time in it then moves too). */
void hostdoc_update(struct hostdoc *h, struct reconcile *r, struct script *s);

#endif
