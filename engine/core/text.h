/* text.h: small string helpers shared by the config readers. */
#ifndef REGISTRAR_TEXT_H
#define REGISTRAR_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Trims ASCII white space in place; returns the first non-blank byte. */
char *text_trim(char *s);
bool text_has_control(const char *s);
/* Whole decimal number, nothing else; -1 on anything else or overflow. */
int text_to_long(const char *s, long *out);

/* Length of the valid UTF-8 sequence at s (of n bytes), or 0 if it is
 * not one (overlong, a surrogate, past U+10FFFF, cut short). */
size_t text_utf8_len(const unsigned char *s, size_t n);
bool text_is_utf8(const char *s);

/* The URI as it may be shown: in its userinfo, "alice:secret@" becomes
 * "alice:***@" and a bare token "t0ken@" becomes "***@". */
const char *text_redact_uri(const char *uri, char *buf, size_t len);

/* "PORT", "HOST:PORT" or "[ADDR6]:PORT" as host and port (bare for a
 * bare port); -1 when it is none of these or the port is not 0 to 65535. */
int text_host_port(const char *address, const char *bare, char *host, size_t hostlen, int *port);

#endif
