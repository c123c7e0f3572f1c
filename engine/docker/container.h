/* container.h: a Docker inspect answer turned into the container table
 * the scripts see (design: "A container as scripts see it"). */
#ifndef REGISTRAR_CONTAINER_H
#define REGISTRAR_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Container data is the container's to choose: a value longer than this
 * is left out (and noted), so no hook spends its time on megabytes. */
#define CONTAINER_MAX_VALUE 16384

/* What was left out of a container, for one log line. */
struct container_notes {
    char first[200];            /* the first thing left out, and why */
    int count;
};

/* Returns a new cJSON object, or NULL with the reason in err.  Never trusts
 * the input: missing or mistyped fields are skipped, and what is left out
 * because it is unusable (an oversized value, a HostIp that is not an
 * address, an unknown protocol) is counted in *notes.
 * peer_networks: for network mode container:<id>, that container's
 * `networks` (scripts' shape): they are this container's too. */
struct cJSON *container_from_inspect(const struct cJSON *inspect, const struct cJSON *peer_networks,
                                     struct container_notes *notes, char *err, size_t errlen);

/* Parses raw inspect JSON; the same, for callers holding bytes. */
struct cJSON *container_from_json(const char *json, size_t len, struct container_notes *notes,
                                  char *err, size_t errlen);

/* The table's name ("/web"), or "?": for log lines. */
const char *container_name(const struct cJSON *container);

/* Ids go into URLs and the log: letters, digits, '_', '.', '-' only. */
bool container_id_valid(const char *id);

/* "env X is 70000 bytes (and 2 more)": the notes as one phrase, or "". */
const char *container_notes_text(const struct container_notes *notes, char *buf, size_t len);

#endif
