/* metrics.h: counters, gauges and timings; sent to statsd when set. */
#ifndef REGISTRAR_METRICS_H
#define REGISTRAR_METRICS_H

struct buffer;
struct metrics;

struct metrics *metrics_new(const char *prefix, const char *statsd_host, int statsd_port);
void metrics_free(struct metrics *m);

void metrics_count(struct metrics *m, const char *name, long delta);
void metrics_gauge(struct metrics *m, const char *name, double value);
void metrics_timing(struct metrics *m, const char *name, double ms);

/* The current value (counters: total; gauges and timings: last). */
double metrics_value(const struct metrics *m, const char *name);

/* Every metric in Prometheus' text format: registrar_<name> with '.' as
 * '_', counters as _total, timings in seconds; backend.* get the label
 * backend="<backend_label>". */
void metrics_prometheus(const struct metrics *m, const char *backend_label, struct buffer *out);

#endif
