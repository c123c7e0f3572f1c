/* The reconciler's rules, with a backend that records what it is asked
 * to write and answers when the test says: what is written and when, what
 * is never deleted, and how retries back off. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/backoff.h"
#include "core/loop.h"
#include "registry/reconcile.h"

#define MAX_WRITES 64

struct written {
    char key[128];
    char value[128];            /* "" for a delete */
    char stored[128];           /* the value to write it handed over, or "" */
    bool delete;
    unsigned long batch;
    int n;                      /* keys in its batch */
    long payload;
};

struct fake {
    struct written w[MAX_WRITES];
    int count;
    long released[MAX_WRITES];
    int nreleased;
};

static void fake_write(void *arg, const struct reconcile_write *w, int n, unsigned long batch)
{
    struct fake *f = arg;
    for (int i = 0; i < n && f->count < MAX_WRITES; i++) {
        struct written *r = &f->w[f->count++];
        snprintf(r->key, sizeof r->key, "%s", w[i].key);
        snprintf(r->value, sizeof r->value, "%s", w[i].value ? w[i].value : "");
        snprintf(r->stored, sizeof r->stored, "%s", w[i].stored ? w[i].stored : "");
        r->delete = w[i].value == NULL;
        r->batch = batch;
        r->n = n;
        r->payload = w[i].payload;
    }
}

static void fake_release(void *arg, long payload)
{
    struct fake *f = arg;
    if (f->nreleased < MAX_WRITES)
        f->released[f->nreleased++] = payload;
}

static struct loop *lp;

static struct reconcile *setup_ttl(struct fake *f, bool batches, long ttl_ms)
{
    struct reconcile_settings s = { 1000, 16, ttl_ms };
    struct reconcile_ops ops = { fake_write, fake_release, f };
    struct reconcile *r;
    memset(f, 0, sizeof *f);
    r = reconcile_new(lp, &s, &ops, NULL);
    reconcile_backend_ready(r, batches, true);
    return r;
}

static struct reconcile *setup(struct fake *f, bool batches) { return setup_ttl(f, batches, 0); }

/* value as compared (the daemon's digest); stored, the value to write */
static void name_stored(struct reconcile *r, const char *id, const char *key, const char *value,
                        const char *stored, long payload)
{
    struct reconcile_want w = { key, value, NULL, payload, stored };
    reconcile_container(r, id, NULL, &w, 1);
}

static void name(struct reconcile *r, const char *id, const char *key, const char *value, long payload)
{
    name_stored(r, id, key, value, NULL, payload);
}

static void gone(struct reconcile *r, const char *id)
{
    reconcile_container(r, id, NULL, NULL, 0);
}

static void audited(struct reconcile *r, const char *key, const char *value)
{
    struct reconcile_held h = { key, value };
    reconcile_audited(r, reconcile_audit_begin(r), &h, key ? 1 : 0);
}

/* Answers every write not answered yet. */
static void answer_all(struct reconcile *r, struct fake *f, int from, bool ok)
{
    unsigned long last = 0;
    for (int i = from; i < f->count; i++) {
        if (f->w[i].batch != last)
            reconcile_written(r, f->w[i].batch, ok ? NULL : "refused");
        last = f->w[i].batch;
    }
}

static void test_nothing_before_audit_and_listing(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    name(r, "a", "/s/a", "A", 1);
    CHECK(f.count == 0);                     /* not audited, not listed */
    audited(r, NULL, NULL);
    CHECK(f.count == 0);                     /* not listed yet: start-up writes go together */
    reconcile_listed(r, false);
    CHECK(f.count == 1);
    CHECK_STR(f.w[0].key, "/s/a");
    CHECK_STR(f.w[0].value, "A");
    CHECK(f.w[0].payload == 1);
    reconcile_free(r);
}

static void test_only_differences_are_written(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    audited(r, "/s/a", "A");
    name(r, "a", "/s/a", "A", 1);            /* the registry has it already */
    reconcile_listed(r, true);
    CHECK(f.count == 0);
    name(r, "a", "/s/a", "A2", 2);           /* its document changed */
    CHECK(f.count == 1);
    CHECK_STR(f.w[0].value, "A2");
    CHECK(f.nreleased == 1 && f.released[0] == 1);   /* the old entry handed back */
    reconcile_free(r);
}

static void test_orphans_wait_for_a_complete_listing(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    audited(r, "/s/orphan", "O");            /* left by an earlier run */
    reconcile_listed(r, false);              /* a container could not be read */
    CHECK(f.count == 0);
    reconcile_listed(r, true);
    CHECK(f.count == 1);
    CHECK(f.w[0].delete);
    CHECK_STR(f.w[0].key, "/s/orphan");
    reconcile_free(r);
}

static void test_a_failed_naming_holds_deletes(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    audited(r, "/s/orphan", "O");
    reconcile_naming_failed(r, "broken");    /* it may be the orphan's owner */
    reconcile_listed(r, true);
    CHECK(f.count == 0);
    gone(r, "broken");                       /* its naming works again: names nothing */
    CHECK(f.count == 1);
    CHECK(f.w[0].delete);
    reconcile_free(r);
}

static void test_a_key_named_in_this_run_goes_with_its_container(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    audited(r, NULL, NULL);
    reconcile_listed(r, false);              /* not complete: orphans wait, this one need not */
    name(r, "a", "/s/a", "A", 1);
    answer_all(r, &f, 0, true);
    gone(r, "a");
    CHECK(f.count == 2);
    CHECK(f.w[1].delete);
    CHECK_STR(f.w[1].key, "/s/a");
    CHECK(f.nreleased == 1);
    reconcile_free(r);
}

/* An audit asked before a write finished knows less than the write. */
static void test_an_older_audit_does_not_undo_a_write(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    unsigned long long mark;
    audited(r, NULL, NULL);
    reconcile_listed(r, true);
    mark = reconcile_audit_begin(r);         /* the next audit is asked ... */
    name(r, "a", "/s/a", "A", 1);            /* ... a write starts ... */
    CHECK(f.count == 1);
    reconcile_audited(r, mark, NULL, 0);     /* ... the audit says "nothing there" while it is busy */
    CHECK(f.count == 1);                     /* no second write */
    reconcile_written(r, f.w[0].batch, NULL);
    mark = reconcile_audit_begin(r);
    CHECK(f.count == 1);
    /* an audit asked before the write settled, answered after it */
    mark -= 1;
    reconcile_audited(r, mark, NULL, 0);
    CHECK(f.count == 1);
    /* a fresh audit that does not see it: someone deleted it, so write again */
    reconcile_audited(r, reconcile_audit_begin(r), NULL, 0);
    CHECK(f.count == 2);
    CHECK_STR(f.w[1].key, "/s/a");
    reconcile_free(r);
}

static void test_a_shared_key_passes_to_the_waiting_container(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    audited(r, NULL, NULL);
    reconcile_listed(r, true);
    name(r, "a", "/s/k", "from a", 1);
    answer_all(r, &f, 0, true);
    name(r, "b", "/s/k", "from b", 2);       /* a holds it: b waits */
    CHECK(f.count == 1);
    gone(r, "a");
    CHECK(f.count == 2);
    CHECK(!f.w[1].delete);                   /* taken over, not deleted */
    CHECK_STR(f.w[1].value, "from b");
    CHECK(f.w[1].payload == 2);
    answer_all(r, &f, 1, true);
    gone(r, "b");
    CHECK(f.count == 3);
    CHECK(f.w[2].delete);
    reconcile_free(r);
}

static void test_a_backend_that_takes_batches_gets_one_write(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, true);
    struct reconcile_want w[3] = { { "/s/a", "A", NULL, 1, NULL }, { "/s/b", "B", NULL, 2, NULL },
                                   { "/s/c", "C", NULL, 3, NULL } };
    audited(r, "/s/orphan", "O");
    reconcile_container(r, "x", NULL, w, 3);
    reconcile_listed(r, true);
    CHECK(f.count == 3);                     /* one write of three, at the first listing */
    CHECK(f.w[0].n == 3 && f.w[2].batch == f.w[0].batch);
    answer_all(r, &f, 0, true);              /* one batch at a time: the orphan's delete next */
    CHECK(f.count == 4);
    CHECK(f.w[3].n == 1 && f.w[3].delete);
    reconcile_free(r);
}

static long stop_loop(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
    return LOOP_NOMORE;
}

static void test_a_failed_write_is_retried(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    audited(r, NULL, NULL);
    reconcile_listed(r, true);
    name(r, "a", "/s/a", "A", 1);
    reconcile_written(r, f.w[0].batch, "connection refused");
    CHECK(reconcile_failing(r) == 1);
    CHECK(f.count == 1);                     /* not at once: after the backoff */
    loop_timer_add(lp, 2000, stop_loop, NULL);
    loop_run(lp);
    CHECK(f.count == 2);
    CHECK_STR(f.w[1].key, "/s/a");
    reconcile_written(r, f.w[1].batch, NULL);
    CHECK(reconcile_failing(r) == 0);
    reconcile_free(r);
}

/* The value to write goes with every write until the registry holds it,
 * a retry too; after that only its digest is left, and a repair (the
 * backend names the container again for the value) gets none. */
static void test_the_value_to_write_is_held_until_written(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    struct reconcile_held deleted = { "/s/a", NULL };
    audited(r, NULL, NULL);
    reconcile_listed(r, true);
    name_stored(r, "a", "/s/a", "dA", "the document", 1);
    CHECK(f.count == 1);
    CHECK_STR(f.w[0].value, "dA");
    CHECK_STR(f.w[0].stored, "the document");
    reconcile_written(r, f.w[0].batch, "connection refused");
    loop_timer_add(lp, 2000, stop_loop, NULL);
    loop_run(lp);
    CHECK(f.count == 2);
    CHECK_STR(f.w[1].stored, "the document");     /* the retry has it */
    reconcile_written(r, f.w[1].batch, NULL);
    name_stored(r, "a", "/s/a", "dA", "the document", 1);  /* named again, unchanged */
    reconcile_observed(r, &deleted, 1);               /* deleted by hand */
    CHECK(f.count == 3);
    CHECK_STR(f.w[2].value, "dA");
    CHECK_STR(f.w[2].stored, "");                     /* let go of once written */
    reconcile_written(r, f.w[2].batch, NULL);
    name_stored(r, "a", "/s/a", "dA2", "changed", 2);   /* its document changed */
    CHECK(f.count == 4);
    CHECK_STR(f.w[3].stored, "changed");
    reconcile_written(r, f.w[3].batch, NULL);
    reconcile_free(r);
}

struct seen {
    int n;
    enum reconcile_state state;
    char error[64];
    long long since;
};

static void look(void *arg, const struct reconcile_entry_view *v)
{
    struct seen *s = arg;
    s->n++;
    s->state = v->state;
    snprintf(s->error, sizeof s->error, "%s", v->error ? v->error : "");
    s->since = v->failing_since_ms;
}

static void test_the_operator_sees_what_fails_and_since_when(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    struct seen s = { 0 };
    audited(r, NULL, NULL);
    reconcile_listed(r, true);
    name(r, "a", "/s/a", "A", 1);
    reconcile_each_entry(r, look, &s);
    CHECK(s.n == 1 && s.state == RECONCILE_PENDING);
    reconcile_written(r, f.w[0].batch, "status 403: denied");
    memset(&s, 0, sizeof s);
    reconcile_each_entry(r, look, &s);
    CHECK(s.state == RECONCILE_FAILING);
    CHECK_STR(s.error, "status 403: denied");
    CHECK(s.since > 0 && reconcile_failing_since(r) == s.since);
    reconcile_free(r);
}

static void test_drop_all_deletes_every_key_of_this_host(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, true);
    audited(r, "/s/orphan", "O");            /* left by an earlier run */
    name(r, "a", "/s/a", "A", 1);
    reconcile_listed(r, false);              /* not complete: the orphan would wait */
    answer_all(r, &f, 0, true);
    CHECK(f.count == 1);
    reconcile_drop_all(r);                   /* deregister_on_exit */
    CHECK(f.count == 3 && f.w[1].delete && f.w[2].delete);
    CHECK(!reconcile_empty(r));
    answer_all(r, &f, 1, true);
    CHECK(reconcile_empty(r));
    name(r, "b", "/s/b", "B", 2);            /* too late: nothing is wanted any more */
    CHECK(f.count == 3);
    reconcile_free(r);
}

static void test_backoff_doubles_up_to_its_cap(void)
{
    struct backoff b;
    long got[6];
    backoff_init(&b, 250, 1000);             /* the reconciler's: capped at the interval */
    for (int i = 0; i < 6; i++)
        got[i] = backoff_next(&b);
    CHECK(got[0] == 250 && got[1] == 500 && got[2] == 1000 && got[3] == 1000 && got[5] == 1000);
    backoff_reset(&b);
    CHECK(backoff_next(&b) == 250);
    backoff_init(&b, 250, 100);              /* an interval shorter than the first delay */
    CHECK(backoff_next(&b) == 100 && backoff_next(&b) == 100);
}

static void test_ttl_rewrite_all(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    audited(r, "/s/a", "A");
    name(r, "a", "/s/a", "A", 1);
    reconcile_listed(r, true);
    CHECK(f.count == 0);
    reconcile_rewrite_all(r);                /* the lease is gone */
    CHECK(f.count == 1);
    CHECK_STR(f.w[0].value, "A");
    reconcile_free(r);
}

struct due_keys {
    char keys[4][16];
    int n;
};

static void add_due(void *arg, const char *key, long payload)
{
    struct due_keys *d = arg;
    (void)payload;
    if (d->n < 4)
        snprintf(d->keys[d->n++], sizeof d->keys[0], "%s", key);
}

static struct due_keys due_by(struct reconcile *r, long long due_ms)
{
    struct due_keys d = { .n = 0 };
    reconcile_each_due(r, due_ms, add_due, &d);
    return d;
}

/* ttl mode: a refresh is given only the entries whose ttl may run out by
 * then.  One found by an audit has a ttl nobody here knows. */
static void test_ttl_refresh_takes_the_entries_due(void)
{
    struct fake f;
    struct reconcile *r = setup_ttl(&f, false, 10000);
    long long now = loop_now_ms(), before = now;
    struct due_keys d;
    audited(r, "/s/found", "F");
    name(r, "found", "/s/found", "F", 1);
    name(r, "new", "/s/new", "N", 2);
    reconcile_listed(r, true);
    CHECK(f.count == 1 && strcmp(f.w[0].key, "/s/new") == 0);
    answer_all(r, &f, 0, true);
    d = due_by(r, now + 5000);
    CHECK(d.n == 1);
    CHECK_STR(d.keys[0], "/s/found");
    d.n = 0;
    CHECK(reconcile_each_due(r, 0, add_due, &d) == 2);   /* held, due or not */
    CHECK(due_by(r, loop_now_ms() + 10000).n == 2);   /* written at least 10 s ago by then */
    reconcile_refreshed(r, "/s/found", now);
    CHECK(due_by(r, now + 5000).n == 0);
    reconcile_refreshed(r, "/s/found", now - 60000);    /* an older refresh's answer shortens nothing */
    CHECK(due_by(r, now + 5000).n == 0);
    reconcile_rewrite_all(r);                /* the lease is gone: no ttl is known */
    CHECK(due_by(r, before).n == 0);         /* being written again, not held */
    answer_all(r, &f, 1, true);
    CHECK(due_by(r, now + 5000).n == 0);
    reconcile_free(r);
}

static void count_in_step(void *arg) { (*(int *)arg)++; }

/* The daemon's READY=1: only once every change a complete listing asked
 * for is written, and again each time the registry catches up. */
static void test_in_step_once_the_listing_is_written(void)
{
    struct fake f;
    struct reconcile *r = setup(&f, false);
    int in_step = 0;
    reconcile_on_in_step(r, count_in_step, &in_step);
    audited(r, "/s/orphan", "O");
    name(r, "a", "/s/a", "A", 1);
    reconcile_listed(r, false);              /* a container could not be read */
    answer_all(r, &f, 0, true);
    CHECK(in_step == 0);
    reconcile_listed(r, true);               /* the orphan's delete goes out */
    CHECK(f.count == 2 && f.w[1].delete);
    CHECK(in_step == 0);                     /* under way */
    reconcile_written(r, f.w[1].batch, "connection refused");
    CHECK(in_step == 0);                     /* failing */
    loop_timer_add(lp, 2000, stop_loop, NULL);
    loop_run(lp);
    CHECK(f.count == 3);
    reconcile_written(r, f.w[2].batch, NULL);
    CHECK(in_step == 1);
    name(r, "b", "/s/b", "B", 2);            /* out of step, then in step again */
    CHECK(in_step == 1);
    answer_all(r, &f, 3, true);
    CHECK(in_step == 2);
    reconcile_listed(r, true);               /* nothing to do: no new call */
    CHECK(in_step == 2);
    reconcile_free(r);
}

int main(void)
{
    lp = loop_new();
    test_nothing_before_audit_and_listing();
    test_only_differences_are_written();
    test_orphans_wait_for_a_complete_listing();
    test_a_failed_naming_holds_deletes();
    test_a_key_named_in_this_run_goes_with_its_container();
    test_an_older_audit_does_not_undo_a_write();
    test_a_shared_key_passes_to_the_waiting_container();
    test_a_backend_that_takes_batches_gets_one_write();
    test_a_failed_write_is_retried();
    test_the_value_to_write_is_held_until_written();
    test_backoff_doubles_up_to_its_cap();
    test_ttl_rewrite_all();
    test_ttl_refresh_takes_the_entries_due();
    test_the_operator_sees_what_fails_and_since_when();
    test_drop_all_deletes_every_key_of_this_host();
    test_in_step_once_the_listing_is_written();
    loop_free(lp);
    return CHECK_DONE();
}
