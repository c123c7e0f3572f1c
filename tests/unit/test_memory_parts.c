/* The parts the reconciler keeps its memory small with: the keyed digest
 * against SipHash-2-4's reference vectors (key 00..0f, messages 00..n-1),
 * and the pool of values waiting to be written, whose blocks go back to
 * the system as their last string goes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/digest.h"
#include "core/pool.h"

static void test_siphash_gives_the_reference_vectors(void)
{
    unsigned char key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    CHECK(digest_siphash(msg, 0, key) == 0x726fdb47dd0e0e31ULL);
    CHECK(digest_siphash(msg, 1, key) == 0x74f839c593dc67fdULL);
    CHECK(digest_siphash(msg, 7, key) == 0xab0200f58b01d137ULL);
    CHECK(digest_siphash(msg, 8, key) == 0x93f5f5799a932462ULL);
    CHECK(digest_siphash(msg, 15, key) == 0xa129ca6149be45e5ULL);
}

static void test_digests_change_with_the_text(void)
{
    char a[DIGEST_HEX_LEN + 1], b[DIGEST_HEX_LEN + 1], c[DIGEST_HEX_LEN + 1];
    digest_keyed("{\"port\":80}", 11, a);
    digest_keyed("{\"port\":80}", 11, b);
    digest_keyed("{\"port\":81}", 11, c);
    CHECK(strlen(a) == DIGEST_HEX_LEN);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    digest_fnv("{\"a\":1}", 7, a);       /* registrar.digest's, as documented */
    CHECK_STR(a, "9c3e82dd6fcae8b1");
}

/* Is anything mapped at p?  (Read from /proc/self/maps: valgrind or not.) */
static bool mapped(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long lo, hi, at = (unsigned long)(uintptr_t)p;
    char line[512];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f))
        found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && at >= lo && at < hi;
    if (f != NULL)
        fclose(f);
    return found;
}

static void test_the_pool_gives_its_blocks_back(void)
{
    enum { N = 5000 };
    static char *held[N];
    struct pool p = { NULL };
    char text[600];
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "value %d %0*d", i, i % 500, 0);
        CHECK((held[i] = pool_strdup(&p, text)) != NULL);
    }
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "value %d %0*d", i, i % 500, 0);
        CHECK_STR(held[i], text);
    }
    for (int i = 0; i < N; i += 2)          /* every other: no block is empty yet */
        pool_free(held[i]);
    CHECK(mapped(held[1]) && mapped(held[N / 2 + 1]) && mapped(held[N - 1]));
    for (int i = 1; i < N; i += 2)
        pool_free(held[i]);
    CHECK(!mapped(held[1]) && !mapped(held[N / 2 + 1]) && !mapped(held[N - 1]));   /* all of it back */
    CHECK(p.current == NULL);
    char *long_text = calloc(1, 200000), *big;
    CHECK(long_text != NULL);
    memset(long_text, 'x', 199999);
    big = pool_strdup(&p, long_text);
    CHECK(big != NULL && strlen(big) == 199999);    /* larger than a block */
    CHECK(mapped(big + 150000));
    pool_free(big);
    CHECK(!mapped(big + 150000));
    pool_free(NULL);
    free(long_text);
}

int main(void)
{
    test_siphash_gives_the_reference_vectors();
    test_digests_change_with_the_text();
    test_the_pool_gives_its_blocks_back();
    return CHECK_DONE();
}
