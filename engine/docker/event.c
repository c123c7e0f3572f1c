/* event.c: see event.h.  Network events name the network; the container
 * is one of their attributes. */
#include "docker/event.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <string.h>

#include "docker/container.h"

static bool action_matters(const char *action)
{
    static const char *const actions[] = {
        "start", "die", "stop", "kill", "destroy", "pause", "unpause", "rename",
        "restart", "update", "connect", "disconnect", "health_status",
        "died", "remove", "cleanup",   /* Podman's names */
        NULL,
    };
    for (int i = 0; actions[i]; i++) {
        size_t n = strlen(actions[i]);
        if (strncmp(action, actions[i], n) == 0 && (action[n] == '\0' || action[n] == ':'))
            return true;
    }
    return false;
}

static bool is_death(const char *action)
{
    return strcmp(action, "die") == 0 || strcmp(action, "died") == 0 ||
           strcmp(action, "destroy") == 0 || strcmp(action, "remove") == 0;
}

struct docker_event docker_event_read(const cJSON *ev)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "Type");
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(ev, "Action");
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(ev, "Actor");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(actor, "ID");
    struct docker_event e = { EVENT_NONE, NULL, NULL };

    if (!cJSON_IsString(action) || !action_matters(action->valuestring))
        return e;
    if (cJSON_IsString(type) && strcmp(type->valuestring, "network") == 0)
        id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(actor, "Attributes"),
                                              "container");
    if (!cJSON_IsString(id) || !container_id_valid(id->valuestring))
        return e;
    e.kind = is_death(action->valuestring) ? EVENT_DIED
             : strcmp(action->valuestring, "kill") == 0 ? EVENT_STOPPING : EVENT_CHANGED;
    e.id = id->valuestring;
    e.action = action->valuestring;
    return e;
}
