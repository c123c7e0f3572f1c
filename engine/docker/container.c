/* container.c: Docker's inspect JSON -> the scripts' container table.
 *
 *   { id, name, image, hostname, env = {K = V}, labels = {}, state, running,
 *     health, network_mode, networks = { <name> = {ip, ip6, gateway, mac} },
 *     ports = { {port, proto, host_ip, host_port}, ... } }
 *
 * `ports` holds one entry per host binding; a port that is exposed but not
 * published appears once without host_ip/host_port, so naming can skip it
 * or register a container address.  In host network mode the exposed ports
 * are the host's own.  Entries are sorted so the same container always
 * gives the same table. */
#include "docker/container.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static const cJSON *field(const cJSON *obj, const char *name)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
}

static const char *string_field(const cJSON *obj, const char *name)
{
    const cJSON *v = field(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void add_string(cJSON *obj, const char *name, const char *value)
{
    if (value != NULL && value[0] != '\0')
        cJSON_AddStringToObject(obj, name, value);
}

static void note(struct container_notes *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct container_notes *notes, const char *fmt, ...)
{
    va_list ap;
    if (notes->count++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(notes->first, sizeof notes->first, fmt, ap);
    va_end(ap);
}

const char *container_notes_text(const struct container_notes *notes, char *buf, size_t len)
{
    if (notes->count == 0)
        snprintf(buf, len, "%s", "");
    else if (notes->count == 1)
        snprintf(buf, len, "%s", notes->first);
    else
        snprintf(buf, len, "%s (and %d more)", notes->first, notes->count - 1);
    return buf;
}

/* Names and values a hook may see: neither oversized. */
static int fits(struct container_notes *notes, const char *kind, const char *name, size_t name_len,
                size_t value_len)
{
    if (name_len <= CONTAINER_MAX_VALUE && value_len <= CONTAINER_MAX_VALUE)
        return 1;
    note(notes, "%s%s%.*s%s is %zu bytes, over %d: left out", kind, name_len ? " " : "",
         name_len > 40 ? 40 : (int)name_len, name, name_len > 40 ? "..." : "",
         name_len > value_len ? name_len : value_len, CONTAINER_MAX_VALUE);
    return 0;
}

static void add_text(cJSON *obj, const char *name, const char *value, struct container_notes *notes)
{
    if (value != NULL && fits(notes, name, "", 0, strlen(value)))
        add_string(obj, name, value);
}

/* "K=V" list -> map; the value keeps every '=' after the first. */
static cJSON *env_map(const cJSON *list, struct container_notes *notes)
{
    cJSON *env = cJSON_CreateObject();
    const cJSON *item, *items = cJSON_IsArray(list) ? list : NULL;
    cJSON_ArrayForEach(item, items) {
        const char *kv = cJSON_IsString(item) ? item->valuestring : NULL;
        const char *eq = kv ? strchr(kv, '=') : NULL;
        char *name;
        if (eq == NULL || eq == kv)
            continue;           /* "NAME" alone is an unset variable */
        if (!fits(notes, "env", kv, (size_t)(eq - kv), strlen(eq + 1)))
            continue;
        name = strndup(kv, (size_t)(eq - kv));
        if (name == NULL)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(env, name);   /* the last one wins */
        cJSON_AddStringToObject(env, name, eq + 1);
        free(name);
    }
    return env;
}

static cJSON *label_map(const cJSON *obj, struct container_notes *notes)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *item, *items = cJSON_IsObject(obj) ? obj : NULL;
    cJSON_ArrayForEach(item, items)
        if (cJSON_IsString(item) && item->string != NULL &&
            fits(notes, "label", item->string, strlen(item->string), strlen(item->valuestring)))
            cJSON_AddStringToObject(out, item->string, item->valuestring);
    return out;
}

/* Addresses go into documents and keys: only what parses as one. */
static const char *address_field(const cJSON *obj, const char *name, struct container_notes *notes)
{
    const char *v = string_field(obj, name);
    unsigned char buf[sizeof(struct in6_addr)];
    if (v == NULL || v[0] == '\0' || inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
        return v;
    note(notes, "%s \"%.40s\" is not an IP address: left out", name, v);
    return NULL;
}

static cJSON *networks_of(const cJSON *inspect, struct container_notes *notes)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *net;
    cJSON_ArrayForEach(net, field(field(inspect, "NetworkSettings"), "Networks")) {
        cJSON *n;
        if (!cJSON_IsObject(net) || net->string == NULL)
            continue;
        n = cJSON_CreateObject();
        add_string(n, "ip", address_field(net, "IPAddress", notes));
        add_string(n, "ip6", address_field(net, "GlobalIPv6Address", notes));
        add_string(n, "gateway", address_field(net, "Gateway", notes));
        add_string(n, "mac", string_field(net, "MacAddress"));
        cJSON_AddItemToObject(out, net->string, n);
    }
    return out;
}

/* "4001/tcp" -> 4001, "tcp"; 0 when it is not a port of a protocol
 * Docker publishes (the protocol goes into keys). */
static int parse_port_key(const char *key, char *proto, size_t protolen, struct container_notes *notes)
{
    static const char *const protocols[] = { "tcp", "udp", "sctp", NULL };
    char *end;
    long port = strtol(key, &end, 10);
    if (end == key || port < 1 || port > 65535 || (*end != '/' && *end != '\0')) {
        note(notes, "port \"%.40s\" is not PORT/PROTOCOL: left out", key);
        return 0;
    }
    snprintf(proto, protolen, "tcp");
    if (*end == '\0')
        return (int)port;
    for (int i = 0; protocols[i]; i++)
        if (strcmp(end + 1, protocols[i]) == 0) {
            snprintf(proto, protolen, "%s", protocols[i]);
            return (int)port;
        }
    note(notes, "port %ld has protocol \"%.40s\", not tcp, udp or sctp: left out", port, end + 1);
    return 0;
}

static int parse_host_port(const char *s)
{
    char *end;
    long port;
    if (s == NULL || *s == '\0')
        return 0;
    port = strtol(s, &end, 10);
    return (*end == '\0' && port >= 1 && port <= 65535) ? (int)port : 0;
}

static void add_port(cJSON *ports, int port, const char *proto, const char *host_ip, int host_port)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "port", port);
    cJSON_AddStringToObject(p, "proto", proto);
    if (host_port > 0) {
        add_string(p, "host_ip", host_ip);
        cJSON_AddNumberToObject(p, "host_port", host_port);
    }
    cJSON_AddItemToArray(ports, p);
}

static int has_port(const cJSON *ports, int port, const char *proto)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, ports) {
        if ((int)cJSON_GetObjectItem(p, "port")->valuedouble == port &&
            strcmp(cJSON_GetObjectItem(p, "proto")->valuestring, proto) == 0)
            return 1;
    }
    return 0;
}

static void published_ports(cJSON *ports, const cJSON *inspect, struct container_notes *notes)
{
    const cJSON *entry, *binding;
    cJSON_ArrayForEach(entry, field(field(inspect, "NetworkSettings"), "Ports")) {
        char proto[16];
        int port = entry->string ? parse_port_key(entry->string, proto, sizeof proto, notes) : 0;
        int bound = 0;
        const cJSON *bindings = cJSON_IsArray(entry) ? entry : NULL;
        if (port == 0)
            continue;
        cJSON_ArrayForEach(binding, bindings) {
            int host_port = parse_host_port(string_field(binding, "HostPort"));
            const char *host_ip = string_field(binding, "HostIp");
            if (host_port == 0)
                continue;
            if (host_ip != NULL && address_field(binding, "HostIp", notes) == NULL)
                continue;       /* bound to something that is not an address */
            add_port(ports, port, proto, host_ip, host_port);
            bound = 1;
        }
        if (!bound)
            add_port(ports, port, proto, NULL, 0);
    }
}

/* Exposed ports Docker left out of NetworkSettings.Ports; in host mode
 * they are published as themselves. */
static void exposed_ports(cJSON *ports, const cJSON *inspect, int host_mode, struct container_notes *notes)
{
    const cJSON *entry;
    cJSON_ArrayForEach(entry, field(field(inspect, "Config"), "ExposedPorts")) {
        char proto[16];
        int port = entry->string ? parse_port_key(entry->string, proto, sizeof proto, notes) : 0;
        if (port == 0 || has_port(ports, port, proto))
            continue;
        add_port(ports, port, proto, NULL, host_mode ? port : 0);
    }
}

static int host_port_of(const cJSON *p)
{
    const cJSON *v = cJSON_GetObjectItem(p, "host_port");
    return cJSON_IsNumber(v) ? (int)v->valuedouble : 0;
}

static int compare_ports(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int px = (int)cJSON_GetObjectItem(x, "port")->valuedouble;
    int py = (int)cJSON_GetObjectItem(y, "port")->valuedouble;
    const char *ix = string_field(x, "host_ip"), *iy = string_field(y, "host_ip");
    int c;
    if (px != py)
        return px < py ? -1 : 1;
    c = strcmp(cJSON_GetObjectItem(x, "proto")->valuestring, cJSON_GetObjectItem(y, "proto")->valuestring);
    if (c != 0)
        return c;
    /* unpublished first, then by address, then by host port */
    c = strcmp(ix ? ix : "", iy ? iy : "");
    if (c != 0)
        return c;
    return host_port_of(x) - host_port_of(y);
}

static cJSON *sorted_ports(cJSON *ports)
{
    int n = cJSON_GetArraySize(ports), i = 0;
    cJSON **items, *item, *out;
    if (n < 2)
        return ports;
    items = malloc((size_t)n * sizeof *items);
    if (items == NULL)
        return ports;
    while ((item = cJSON_DetachItemFromArray(ports, 0)) != NULL)
        items[i++] = item;
    qsort(items, (size_t)n, sizeof *items, compare_ports);
    out = ports;
    for (i = 0; i < n; i++)
        cJSON_AddItemToArray(out, items[i]);
    free(items);
    return out;
}

static void add_state(cJSON *c, const cJSON *inspect)
{
    const cJSON *state = field(inspect, "State");
    const cJSON *running = field(state, "Running");
    add_string(c, "state", string_field(state, "Status"));
    cJSON_AddBoolToObject(c, "running", cJSON_IsTrue(running));
    add_string(c, "health", string_field(field(state, "Health"), "Status"));
}

cJSON *container_from_inspect(const cJSON *inspect, const cJSON *peer_networks,
                              struct container_notes *notes, char *err, size_t errlen)
{
    const char *id = string_field(inspect, "Id");
    const cJSON *config = field(inspect, "Config");
    const char *mode = string_field(field(inspect, "HostConfig"), "NetworkMode");
    cJSON *c, *ports;

    if (!cJSON_IsObject(inspect)) {
        snprintf(err, errlen, "the answer is not a JSON object");
        return NULL;
    }
    if (id == NULL || id[0] == '\0') {
        snprintf(err, errlen, "the answer has no \"Id\"");
        return NULL;
    }
    c = cJSON_CreateObject();
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cJSON_AddStringToObject(c, "id", id);
    add_text(c, "name", string_field(inspect, "Name"), notes);
    add_text(c, "image", string_field(config, "Image"), notes);
    add_text(c, "hostname", string_field(config, "Hostname"), notes);
    add_text(c, "network_mode", mode, notes);
    cJSON_AddItemToObject(c, "env", env_map(field(config, "Env"), notes));
    cJSON_AddItemToObject(c, "labels", label_map(field(config, "Labels"), notes));
    add_state(c, inspect);
    if (cJSON_IsNumber(field(config, "StopTimeout")))
        cJSON_AddNumberToObject(c, "stop_timeout", field(config, "StopTimeout")->valuedouble);
    cJSON_AddItemToObject(c, "networks", peer_networks ? cJSON_Duplicate(peer_networks, 1)
                                                       : networks_of(inspect, notes));
    ports = cJSON_CreateArray();
    published_ports(ports, inspect, notes);
    exposed_ports(ports, inspect, mode != NULL && strcmp(mode, "host") == 0, notes);
    cJSON_AddItemToObject(c, "ports", sorted_ports(ports));
    return c;
}

cJSON *container_from_json(const char *json, size_t len, struct container_notes *notes,
                           char *err, size_t errlen)
{
    const char *bad = NULL;
    cJSON *inspect = json_parse(json, len, &bad), *c;
    if (inspect == NULL) {
        snprintf(err, errlen, "the answer is not JSON (byte %zu of %zu is wrong)", (size_t)(bad - json) + 1, len);
        return NULL;
    }
    c = container_from_inspect(inspect, NULL, notes, err, errlen);
    cJSON_Delete(inspect);
    return c;
}

/* Ids go into URLs and the log: letters, digits, '_', '.', '-' only. */
bool container_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128)
        return false;
    for (; *id; id++)
        if (!isalnum((unsigned char)*id) && *id != '_' && *id != '.' && *id != '-')
            return false;
    return true;
}

const char *container_name(const cJSON *container)
{
    const char *name = string_field(container, "name");
    return name ? name : "?";
}
