/* log.h: leveled log lines to stdout or a file. */
#ifndef REGISTRAR_LOG_H
#define REGISTRAR_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* A condition that is reported once when it starts and once when it ends,
 * not on every retry in between (Docker down, registry down). */
struct log_trouble {
    bool active;
    long long since_ms;
};

int log_open(const char *path, char *err, size_t errlen);
/* Lines to stderr instead of stdout: `check --json` keeps stdout for its document. */
void log_to_stderr(void);
void log_close(void);
void log_set_level(enum log_level level);
/* One JSON object a line, {"time", "level", "msg"}, for log shippers. */
void log_set_json(bool json);
bool log_enabled(enum log_level level);
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns true when this call started the trouble (and logged it). */
bool log_trouble_begin(struct log_trouble *t, long long now_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs recovery with the outage's length, if the trouble was active. */
bool log_trouble_end(struct log_trouble *t, long long now_ms, const char *what);

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
