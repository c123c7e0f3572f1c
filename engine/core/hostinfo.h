/* hostinfo.h: this machine's name and address, for the defaults. */
#ifndef REGISTRAR_HOSTINFO_H
#define REGISTRAR_HOSTINFO_H

#include <stddef.h>

/* What `hostname -f` prints: the canonical name, else the plain one. */
int hostinfo_fqdn(char *buf, size_t len);
/* The IPv4 address of the interface holding the default route, else the
 * first non-loopback IPv4 address, else 127.0.0.1's absence is an error. */
int hostinfo_address(char *buf, size_t len);
/* The id of the container this process runs in (Docker, Podman), from the
 * bind mount of /etc/hostname in mountinfo (/proc/self/mountinfo): its
 * source is <data root>/containers/<id>/hostname.  -1 outside a container.
 * buf: 65 bytes at least. */
int hostinfo_container_id(const char *mountinfo, char *buf, size_t len);

#endif
