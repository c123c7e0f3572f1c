/* A whole listing's hash: the same containers listed the same way hash
 * alike however long they have been up; any other change, the health in
 * the Status text included, hashes differently; hostile bodies (an
 * unterminated string, escapes) are read within their bounds. */
#include "docker/fingerprint.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static unsigned long long of(const char *body)
{
    return fingerprint_listing(body, strlen(body));
}

#define ENTRY(status, port) \
    "[{\"Id\":\"ab\",\"Names\":[\"/web\"],\"Ports\":[{\"PrivatePort\":80,\"PublicPort\":" port "}]," \
    "\"State\":\"running\",\"Status\":\"" status "\",\"Labels\":{}}]"

static void test_uptime_alone_changes_nothing(void)
{
    CHECK(of(ENTRY("Up 5 seconds", "32768")) == of(ENTRY("Up About an hour", "32768")));
    CHECK(of(ENTRY("Up 5 seconds (healthy)", "32768")) == of(ENTRY("Up 2 hours (healthy)", "32768")));
}

static void test_health_and_other_fields_change_it(void)
{
    CHECK(of(ENTRY("Up 5 seconds (healthy)", "32768")) != of(ENTRY("Up 5 seconds (unhealthy)", "32768")));
    CHECK(of(ENTRY("Up 5 seconds", "32768")) != of(ENTRY("Up 5 seconds (health: starting)", "32768")));
    CHECK(of(ENTRY("Up 5 seconds", "32768")) != of(ENTRY("Up 5 seconds", "32769")));
    CHECK(of("[]") != of(ENTRY("Up 5 seconds", "32768")));
}

static void test_ports_in_any_order_hash_alike(void)
{
    const char *a = "[{\"Ports\":[{\"PrivatePort\":80,\"PublicPort\":1},{\"PrivatePort\":443,\"PublicPort\":2}]}]";
    const char *b = "[{\"Ports\":[{\"PrivatePort\":443,\"PublicPort\":2},{\"PrivatePort\":80,\"PublicPort\":1}]}]";
    const char *c = "[{\"Ports\":[{\"PrivatePort\":443,\"PublicPort\":1},{\"PrivatePort\":80,\"PublicPort\":2}]}]";
    CHECK(of(a) == of(b));
    CHECK(of(a) != of(c));
}

/* A label may hold the marker's text: inside a JSON string its quotes are
 * escaped, so it is hashed as any other byte. */
static void test_marker_inside_a_string_is_data(void)
{
    const char *a = "[{\"Labels\":{\"x\":\"\\\"Status\\\":\\\"Up 1 second\"}}]";
    const char *b = "[{\"Labels\":{\"x\":\"\\\"Status\\\":\\\"Up 2 seconds\"}}]";
    CHECK(of(a) != of(b));
}

static void test_hostile_bodies_stay_in_bounds(void)
{
    static const char *const bodies[] = {
        "\"Status\":\"", "\"Status\":\"Up \\", "\"Status\":\"Up (", "\"Status\":\"\\\"",
        "\"Status\":\"\"Status\":\"", "", "\"Status\"", "\"Ports\":[", "\"Ports\":[{\"a\":\"]",
        "\"Ports\":[]]]]", "\"Ports\":[\"Status\":\"(", "\"Status\":\"\"Ports\":[",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        size_t n = strlen(bodies[i]);
        char *exact = malloc(n ? n : 1);     /* no NUL after it: ASan sees any overread */
        memcpy(exact, bodies[i], n);
        CHECK(fingerprint_listing(exact, n) != 0);
        free(exact);
    }
}

int main(void)
{
    test_uptime_alone_changes_nothing();
    test_health_and_other_fields_change_it();
    test_ports_in_any_order_hash_alike();
    test_marker_inside_a_string_is_data();
    test_hostile_bodies_stay_in_bounds();
    return CHECK_DONE();
}
