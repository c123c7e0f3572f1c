/* text.h: small string helpers shared by the config readers. */
#ifndef REGISTRAR_TEXT_H
#define REGISTRAR_TEXT_H

#include <stdbool.h>

/* Trims ASCII white space in place; returns the first non-blank byte. */
char *text_trim(char *s);
bool text_has_control(const char *s);
/* Whole decimal number, nothing else; -1 on anything else or overflow. */
int text_to_long(const char *s, long *out);

#endif
