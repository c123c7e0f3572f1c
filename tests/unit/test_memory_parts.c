/* The parts the reconciler keeps its memory small with: the keyed digest
 * against SipHash-2-4's reference vectors (key 00..0f, messages 00..n-1),
 * the pool of values waiting to be written, whose blocks go back to the
 * system as their last string goes, and the slab records a container's
 * entries and Lua's objects live in. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "core/digest.h"
#include "core/pool.h"
#include "core/slab.h"

#ifdef HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

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

/* Record i's size and the byte it is filled with. */
static size_t record_size(int i) { return (size_t)(1 + (i * 37) % 1100); }   /* up to past the largest class */
static unsigned char record_byte(int i) { return (unsigned char)(i * 7 + 1); }

static bool holds(const unsigned char *p, size_t n, unsigned char byte)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != byte)
            return false;
    return true;
}

static void test_slab_records_keep_their_bytes_and_their_pages_go_back(void)
{
    enum { N = 6000 };
    static unsigned char *held[N];
    size_t before = slab_mapped_kib();
    bool zeroed = true, kept = true;

    for (int i = 0; i < N; i++) {
        CHECK((held[i] = slab_alloc(record_size(i))) != NULL);
        zeroed = zeroed && holds(held[i], record_size(i), 0);
        memset(held[i], record_byte(i), record_size(i));
    }
    CHECK(zeroed);
    if (!RUNNING_ON_VALGRIND)   /* there records come from malloc, for memcheck to see */
        CHECK(slab_mapped_kib() > before + 400);    /* 100 pages of 4 KiB, at least */
    for (int i = 0; i < N; i += 2)          /* every other, then some again */
        slab_free(held[i], record_size(i));
    for (int i = 0; i < N; i += 2)
        memset(held[i] = slab_alloc(record_size(i)), record_byte(i), record_size(i));
    for (int i = 0; i < N; i++)
        kept = kept && holds(held[i], record_size(i), record_byte(i));
    CHECK(kept);                            /* no two records share a byte */
    uintptr_t page_of_first = (uintptr_t)held[0] & ~(uintptr_t)4095;
    for (int i = 0; i < N; i++)
        slab_free(held[i], record_size(i));
    slab_trim();
    CHECK(slab_mapped_kib() == before);     /* every page unmapped */
    slab_free(NULL, 10);

    /* What is mapped there next is usable as it is (with ASan: no
     * poison left behind on the address).  Under valgrind it was malloc's. */
    if (!RUNNING_ON_VALGRIND) {
        void *again = mmap((void *)page_of_first, 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        CHECK(again == (void *)page_of_first);
        if (again != MAP_FAILED) {
            memset(again, 1, 4096);
            munmap(again, 4096);
        }
    }
}

static void test_slab_resizes_as_realloc_does(void)
{
    unsigned char *p = slab_realloc(NULL, 5, 24);   /* Lua passes a type in old_size here */
    size_t sizes[] = { 24, 30, 200, 1000, 5000, 700, 16, 3 };
    CHECK(p != NULL);
    memset(p, 0xab, 24);
    for (size_t k = 1; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t kept = sizes[k - 1] < sizes[k] ? sizes[k - 1] : sizes[k];
        CHECK((p = slab_realloc(p, sizes[k - 1], sizes[k])) != NULL);
        CHECK(holds(p, kept, 0xab));        /* what fits is still there */
        memset(p, 0xab, sizes[k]);
    }
    slab_free(p, 3);

    char *s = slab_strdup("/services/web/80/host-1");
    CHECK_STR(s, "/services/web/80/host-1");
    slab_strfree(s);
    slab_strfree(NULL);
    slab_trim();
    CHECK(slab_mapped_kib() == 0);
}

int main(void)
{
    test_siphash_gives_the_reference_vectors();
    test_digests_change_with_the_text();
    test_the_pool_gives_its_blocks_back();
    test_slab_records_keep_their_bytes_and_their_pages_go_back();
    test_slab_resizes_as_realloc_does();
    return CHECK_DONE();
}
