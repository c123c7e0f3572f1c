/* The growable buffer: bytes stay as appended across the move from the
 * heap into a mapping of its own (16 KiB) and back, NUL-terminated, and a
 * consumed buffer lets its memory go. */
#include "core/buffer.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Appends n bytes of a pattern that says where each byte came from. */
static void fill(struct buffer *b, size_t from, size_t n, size_t piece)
{
    char chunk[4096];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < piece ? n - done : piece;
        for (size_t i = 0; i < k; i++)
            chunk[i] = (char)('a' + (from + done + i) % 23);
        CHECK(buffer_append(b, chunk, k) == 0);
        done += k;
    }
}

static bool intact(const struct buffer *b, size_t from)
{
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] != (char)('a' + (from + i) % 23))
            return false;
    return b->data[b->len] == '\0';
}

static void test_growing_past_the_mapped_size_keeps_every_byte(void)
{
    struct buffer b = { 0 };
    fill(&b, 0, 300 * 1024, 1000);      /* heap, then mapped, then mapped and moved */
    CHECK(b.len == 300 * 1024);
    CHECK(b.cap >= b.len + 1);
    CHECK(intact(&b, 0));
    buffer_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

static void test_consuming_shrinks_a_large_buffer_and_keeps_the_rest(void)
{
    struct buffer b = { 0 };
    fill(&b, 0, 200 * 1024, 4096);
    buffer_consume(&b, 200 * 1024 - 100);   /* a line is left, as in a stream */
    CHECK(b.len == 100);
    CHECK(b.cap == 8 * 1024);               /* back from the mapping into the heap */
    CHECK(intact(&b, 200 * 1024 - 100));
    fill(&b, 200 * 1024, 70 * 1024, 4096);  /* and out again */
    CHECK(b.len == 100 + 70 * 1024);
    CHECK(intact(&b, 200 * 1024 - 100));
    buffer_consume(&b, b.len);
    CHECK(b.data == NULL && b.cap == 0);    /* emptied: all of it goes */
    buffer_free(&b);
}

static void test_a_small_buffer_keeps_its_memory_when_emptied(void)
{
    struct buffer b = { 0 };
    fill(&b, 0, 1000, 1000);
    buffer_consume(&b, 400);
    CHECK(b.len == 600 && intact(&b, 400));
    buffer_consume(&b, 600);
    CHECK(b.len == 0 && b.data != NULL && b.data[0] == '\0');
    buffer_free(&b);
}

/* Bytes of malloc's heap in use (under valgrind or ASan, which have their
 * own allocator, this stays 0 or still: the check below holds trivially). */
static size_t heap_in_use(void) { return mallinfo2().uordblks; }

/* An answer read every interval (Docker's listing) grows through 16 and
 * 32 KiB: those steps in the heap would stay resident on an idle host. */
static void test_an_answer_past_16_kib_is_read_off_the_heap(void)
{
    struct buffer b = { 0 };
    size_t before = heap_in_use();
    fill(&b, 0, 20 * 1024, 1000);           /* capacity 32 KiB */
    CHECK(heap_in_use() < before + 1024);
    fill(&b, 20 * 1024, 20 * 1024, 1000);   /* 64 KiB */
    CHECK(heap_in_use() < before + 1024 && intact(&b, 0));
    buffer_free(&b);
}

int main(void)
{
    test_growing_past_the_mapped_size_keeps_every_byte();
    test_consuming_shrinks_a_large_buffer_and_keeps_the_rest();
    test_a_small_buffer_keeps_its_memory_when_emptied();
    test_an_answer_past_16_kib_is_read_off_the_heap();
    return CHECK_DONE();
}
