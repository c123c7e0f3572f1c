/* digest.h: 16 hex digits that change when a text does. */
#ifndef REGISTRAR_CORE_DIGEST_H
#define REGISTRAR_CORE_DIGEST_H

#include <stddef.h>

#define DIGEST_HEX_LEN 16

/* FNV-1a, 64 bits: the same digits in every process (registrar.digest(),
 * which scripts may store).  For noticing a change, not for security. */
void digest_fnv(const char *s, size_t n, char hex[DIGEST_HEX_LEN + 1]);

/* SipHash-2-4 under a key drawn once per process: what the reconciler
 * holds in place of a value it wrote.  Nobody who can write to the
 * registry can make a value of theirs pass for ours without the key. */
void digest_keyed(const char *s, size_t n, char hex[DIGEST_HEX_LEN + 1]);

/* The keyed digest with a given key (the tests' reference vectors). */
unsigned long long digest_siphash(const void *s, size_t n, const unsigned char key[16]);

#endif
