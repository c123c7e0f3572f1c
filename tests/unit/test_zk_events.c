/* A session's queue of node events: taken in order; the waiter called
 * once, only when something comes; past its bound the queue is dropped
 * whole and the next take says so, once; a loss drops what was queued and
 * is said before anything that comes after it. */
#include "core/zk_events.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static int woken;

static void on_ready(void *arg)
{
    (void)arg;
    woken++;
}

static int take(struct zk_events *q, char *path, size_t len, char *why)
{
    struct zk_node_event ev = { 0 };
    int rc = zk_events_take(q, &ev, why, 256);
    if (rc > 0) {
        snprintf(path, len, "%s %s", zk_event_type_name(ev.type), ev.path);
        free(ev.path);
    }
    return rc;
}

static void test_in_order_and_one_wake_per_wait(void)
{
    struct zk_events q;
    char path[128], why[256];
    zk_events_init(&q, 8);
    woken = 0;
    CHECK(take(&q, path, sizeof path, why) == 0);
    CHECK(zk_events_wait(&q, on_ready, NULL));
    CHECK(!zk_events_wait(&q, on_ready, NULL));     /* one waiter */
    CHECK(zk_events_push(&q, ZK_EVENT_DELETED, "/a"));
    CHECK(zk_events_push(&q, ZK_EVENT_CHILD, "/hosts.records/h"));
    CHECK(woken == 1);
    CHECK(take(&q, path, sizeof path, why) == 1);
    CHECK_STR(path, "deleted /a");
    CHECK(take(&q, path, sizeof path, why) == 1);
    CHECK_STR(path, "child /hosts.records/h");
    CHECK(take(&q, path, sizeof path, why) == 0);
    CHECK(zk_events_wait(&q, on_ready, NULL));
    zk_events_cancel(&q);
    CHECK(zk_events_push(&q, ZK_EVENT_CHANGED, "/b"));
    CHECK(woken == 1);                              /* cancelled: not called */
    zk_events_clear(&q);
    CHECK(take(&q, path, sizeof path, why) == 0);
}

static void test_overflow_drops_everything_and_is_said_once(void)
{
    struct zk_events q;
    char path[128], why[256];
    zk_events_init(&q, 3);
    for (int i = 0; i < 5; i++)
        CHECK(zk_events_push(&q, ZK_EVENT_CHANGED, "/k"));
    CHECK(take(&q, path, sizeof path, why) == -1);
    CHECK_HAS(why, "more than 3 node events");
    CHECK(take(&q, path, sizeof path, why) == 0);
    CHECK(zk_events_push(&q, ZK_EVENT_CREATED, "/k"));
    CHECK(take(&q, path, sizeof path, why) == 1);
    CHECK_STR(path, "created /k");
    zk_events_clear(&q);
}

static void test_a_loss_comes_first_and_wakes_the_waiter(void)
{
    struct zk_events q;
    char path[128], why[256];
    zk_events_init(&q, 8);
    woken = 0;
    CHECK(zk_events_push(&q, ZK_EVENT_CHANGED, "/old"));
    zk_events_drop(&q);
    CHECK(take(&q, path, sizeof path, why) == 0);
    CHECK(zk_events_wait(&q, on_ready, NULL));
    zk_events_lose(&q, "the session 0x1 expired");
    CHECK(woken == 1);
    CHECK(zk_events_push(&q, ZK_EVENT_CHANGED, "/after"));     /* the reader reads anew anyway */
    CHECK(take(&q, path, sizeof path, why) == -1);
    CHECK_STR(why, "the session 0x1 expired");
    CHECK(take(&q, path, sizeof path, why) == 0);
    zk_events_clear(&q);
}

int main(void)
{
    test_in_order_and_one_wake_per_wait();
    test_overflow_drops_everything_and_is_said_once();
    test_a_loss_comes_first_and_wakes_the_waiter();
    return CHECK_DONE();
}
