/* log.c: one line per message, "time level message" or a JSON object,
 * flushed at once so a crash never hides the line that explains it.
 * Written to the journal (systemd), a line starts with its syslog
 * priority, "<4>", and the text line carries no time of its own. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "core/text.h"

static FILE *log_file;
static bool log_on_stderr;
static enum log_level log_threshold = LOG_INFO;
static bool log_as_json;

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const int syslog_priorities[] = { 7, 6, 4, 3 };     /* debug, info, warning, err */

/* The stream is_journal() last looked at, and its answer. */
static FILE *journal_checked;
static bool journal_stream;

int log_open(const char *path, char *err, size_t errlen)
{
    FILE *f;
    if (path == NULL || path[0] == '\0' || strcmp(path, "-") == 0) {
        log_close();
        return 0;
    }
    f = fopen(path, "a");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    log_close();
    log_file = f;
    return 0;
}

void log_to_stderr(void) { log_on_stderr = true; }

void log_close(void)
{
    if (log_file != NULL)
        fclose(log_file);
    log_file = NULL;
    journal_checked = NULL;
}

/* systemd sets JOURNAL_STREAM=DEVICE:INODE when it connects stdout or
 * stderr to the journal; a stream is the journal only if it is that very
 * socket (the variable is inherited by processes whose output goes
 * elsewhere).  The journal stamps each line itself and reads a leading
 * "<N>" as the line's priority (sd-daemon(3)). */
static bool is_journal(FILE *out)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    return v != NULL && sscanf(v, "%llu:%llu", &dev, &ino) == 2 && fstat(fileno(out), &st) == 0 &&
           (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_level(enum log_level level) { log_threshold = level; }
void log_set_json(bool json) { log_as_json = json; }
bool log_enabled(enum log_level level) { return level >= log_threshold; }
const char *log_level_name(enum log_level level) { return level_names[level]; }

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -1;
}

/* A message as a JSON string: quotes, backslashes and control bytes
 * escaped, bytes that are not UTF-8 as U+FFFD, so a log shipper always
 * reads a valid line whatever a container named itself. */
static void write_json_string(FILE *out, const char *s)
{
    size_t n = strlen(s);
    fputc('"', out);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
            i++;
        } else if ((len = text_utf8_len((const unsigned char *)s + i, n - i)) == 0) {
            fputs("\xef\xbf\xbd", out);
            i++;
        } else {
            fwrite(s + i, 1, len, out);
            i += len;
        }
    }
    fputc('"', out);
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    FILE *out = log_file ? log_file : log_on_stderr ? stderr : stdout;
    struct timeval tv;
    struct tm tm;
    char stamp[32], msg[4096];

    if (out != journal_checked) {
        journal_stream = is_journal(out);
        journal_checked = out;
    }
    if (journal_stream)
        fprintf(out, "<%d>", syslog_priorities[level]);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_as_json) {
        vsnprintf(msg, sizeof msg, fmt, ap);
        fprintf(out, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", stamp, (long)(tv.tv_usec / 1000),
                level_names[level]);
        write_json_string(out, msg);
        fputs("}\n", out);
    } else if (journal_stream) {
        fprintf(out, "%-5s ", level_names[level]);
        vfprintf(out, fmt, ap);
        fputc('\n', out);
    } else {
        fprintf(out, "%s.%03ldZ %-5s ", stamp, (long)(tv.tv_usec / 1000), level_names[level]);
        vfprintf(out, fmt, ap);
        fputc('\n', out);
    }
    fflush(out);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}

bool log_trouble_begin(struct log_trouble *t, long long now_ms, const char *fmt, ...)
{
    va_list ap;
    if (t->active)
        return false;
    t->active = true;
    t->since_ms = now_ms;
    va_start(ap, fmt);
    if (log_enabled(LOG_WARN))
        log_vwrite(LOG_WARN, fmt, ap);
    va_end(ap);
    return true;
}

bool log_trouble_end(struct log_trouble *t, long long now_ms, const char *what)
{
    if (!t->active)
        return false;
    t->active = false;
    log_info("%s is back after %.1f s", what, (double)(now_ms - t->since_ms) / 1000.0);
    return true;
}
