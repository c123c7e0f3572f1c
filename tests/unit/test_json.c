/* Reading a JSON array one element at a time (Docker's listing): every
 * element is handed over in order, and anything that is not exactly one
 * array (a second value after it, a missing comma, a NUL byte, an element
 * that is not JSON) is refused, so a caller acting on "all or nothing"
 * never acts on half a listing it took for whole. */
#include "core/json.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

struct seen {
    int count;
    char ids[8][16];
    int stop_at;                /* 0: take them all */
};

static bool take(const cJSON *item, void *arg)
{
    struct seen *s = arg;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "Id");
    if (s->stop_at && s->count + 1 == s->stop_at)
        return false;
    if (s->count < 8)
        snprintf(s->ids[s->count], sizeof s->ids[0], "%s", cJSON_IsString(id) ? id->valuestring : "?");
    s->count++;
    return true;
}

/* Read from a copy with no NUL after it: ASan sees any read past len. */
static bool each(const char *text, struct seen *s)
{
    size_t n = strlen(text);
    char *exact = malloc(n ? n : 1);
    bool whole;
    memcpy(exact, text, n);
    whole = json_each_element(exact, n, take, s);
    free(exact);
    return whole;
}

static void test_elements_come_in_order(void)
{
    struct seen s = { 0 };
    CHECK(each(" [ {\"Id\":\"a\"} ,{\"Id\":\"b\",\"x\":[1,{\"y\":\"]\"}]},\n{\"Id\":\"c\"} ]\n", &s));
    CHECK(s.count == 3);
    CHECK_STR(s.ids[0], "a");
    CHECK_STR(s.ids[1], "b");
    CHECK_STR(s.ids[2], "c");
}

static void test_an_empty_array_is_whole(void)
{
    struct seen s = { 0 };
    CHECK(each("[]", &s));
    CHECK(each(" [ \t\n] ", &s));
    CHECK(s.count == 0);
}

static void test_what_is_not_one_array_is_refused(void)
{
    const char *bad[] = {
        "", "   ", "{}", "{\"Id\":\"a\"}", "\"[]\"", "[", "[{\"Id\":\"a\"}", "[{\"Id\":\"a\"},]",
        "[{\"Id\":\"a\"} {\"Id\":\"b\"}]", "[,{\"Id\":\"a\"}]", "[{\"Id\":\"a\"}]]", "[][]",
        "[{\"Id\":\"a\"}] x", "[{\"Id\":\"a\"", "[{\"Id\":\"a\\\"}]", "[nul]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct seen s = { 0 };
        if (each(bad[i], &s))
            fprintf(stderr, "taken as one array: %s\n", bad[i]);
        CHECK(!each(bad[i], &s));
    }
}

static void test_a_nul_byte_is_refused_and_an_escaped_one_is_kept_as_a_character(void)
{
    struct seen s = { 0 };
    const char with_nul[] = "[{\"Id\":\"a\"},\0{\"Id\":\"b\"}]";
    CHECK(!json_each_element(with_nul, sizeof with_nul - 1, take, &s));
    s.count = 0;
    CHECK(each("[{\"Id\":\"a\\u0000b\"}]", &s));
    CHECK(s.count == 1);
    CHECK_STR(s.ids[0], "a\xef\xbf\xbd" "b");   /* U+FFFD: the id is not cut short at "a" */
}

static void test_the_reader_can_stop(void)
{
    struct seen s = { .stop_at = 2 };
    CHECK(!each("[{\"Id\":\"a\"},{\"Id\":\"b\"},{\"Id\":\"c\"}]", &s));
    CHECK(s.count == 1);
}

int main(void)
{
    test_elements_come_in_order();
    test_an_empty_array_is_whole();
    test_what_is_not_one_array_is_refused();
    test_a_nul_byte_is_refused_and_an_escaped_one_is_kept_as_a_character();
    test_the_reader_can_stop();
    return CHECK_DONE();
}
