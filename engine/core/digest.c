/* digest.c: see digest.h.  SipHash-2-4 as Aumasson and Bernstein define
 * it (2012): 64-bit words read little-endian, two rounds per word, four
 * to finish. */
#include "core/digest.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void digest_fnv(const char *s, size_t n, char hex[DIGEST_HEX_LEN + 1])
{
    unsigned long long h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    snprintf(hex, DIGEST_HEX_LEN + 1, "%016llx", h);
}

static uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

struct sip { uint64_t v0, v1, v2, v3; };

static void sip_round(struct sip *s)
{
    s->v0 += s->v1; s->v1 = rotl(s->v1, 13); s->v1 ^= s->v0; s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3; s->v3 = rotl(s->v3, 16); s->v3 ^= s->v2;
    s->v0 += s->v3; s->v3 = rotl(s->v3, 21); s->v3 ^= s->v0;
    s->v2 += s->v1; s->v1 = rotl(s->v1, 17); s->v1 ^= s->v2; s->v2 = rotl(s->v2, 32);
}

static void sip_word(struct sip *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

unsigned long long digest_siphash(const void *data, size_t n, const unsigned char key[16])
{
    const unsigned char *p = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8), last = (uint64_t)n << 56;
    struct sip s = { 0x736f6d6570736575ULL ^ k0, 0x646f72616e646f6dULL ^ k1,
                     0x6c7967656e657261ULL ^ k0, 0x7465646279746573ULL ^ k1 };
    size_t whole = n - n % 8;

    for (size_t i = 0; i < whole; i += 8)
        sip_word(&s, le64(p + i));
    for (size_t i = whole; i < n; i++)
        last |= (uint64_t)p[i] << (8 * (i - whole));
    sip_word(&s, last);
    s.v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/* Without the kernel's randomness (a very early boot) the key is made of
 * the clock and the pid: weaker, never the same twice. */
static const unsigned char *process_key(void)
{
    static unsigned char key[16];
    static int drawn;
    if (!drawn) {
        if (getrandom(key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            uint64_t a = (uint64_t)t.tv_sec ^ ((uint64_t)getpid() << 32), b = (uint64_t)t.tv_nsec;
            for (int i = 0; i < 8; i++) {
                key[i] = (unsigned char)(a >> (8 * i));
                key[8 + i] = (unsigned char)(b >> (8 * i));
            }
        }
        drawn = 1;
    }
    return key;
}

void digest_keyed(const char *s, size_t n, char hex[DIGEST_HEX_LEN + 1])
{
    snprintf(hex, DIGEST_HEX_LEN + 1, "%016llx", digest_siphash(s, n, process_key()));
}
