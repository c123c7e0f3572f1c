/* hostinfo.c: defaults for `hostname` and `ipaddress`, and the container
 * registrar runs in, if any.  No packet leaves the machine: the address
 * comes from the routing table and the interfaces, not from connecting
 * anywhere. */
#include "core/hostinfo.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int hostinfo_fqdn(char *buf, size_t len)
{
    struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *res = NULL;
    char name[256];

    if (gethostname(name, sizeof name) < 0)
        return -1;
    name[sizeof name - 1] = '\0';
    if (getaddrinfo(name, NULL, &hints, &res) == 0 && res && res->ai_canonname)
        snprintf(buf, len, "%s", res->ai_canonname);
    else
        snprintf(buf, len, "%s", name);
    if (res)
        freeaddrinfo(res);
    return buf[0] ? 0 : -1;
}

/* Name of the interface with the IPv4 default route, from /proc/net/route. */
static int default_route_interface(char *ifname, size_t len)
{
    FILE *f = fopen("/proc/net/route", "r");
    char line[256], name[IF_NAMESIZE + 1];
    unsigned long dest, flags;
    int found = -1;

    if (f == NULL)
        return -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%16s %lx %*x %lx", name, &dest, &flags) == 3 && dest == 0 && (flags & 1)) {
            snprintf(ifname, len, "%s", name);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

/* A path component of exactly 64 hex digits: a container id. */
static int container_id_in(const char *path, char *buf, size_t len)
{
    for (const char *p = path; (p = strchr(p, '/')) != NULL; p++) {
        if (strcspn(p + 1, "/") == 64 && strspn(p + 1, "0123456789abcdef") >= 64) {
            snprintf(buf, len, "%.64s", p + 1);
            return 0;
        }
    }
    return -1;
}

/* Docker and Podman bind-mount a file of their own over /etc/hostname;
 * mountinfo's fourth field is its path on the host's file system.  (The
 * cgroup path no longer names the container under cgroup v2 namespaces,
 * and HOSTNAME is whatever --hostname said.) */
int hostinfo_container_id(const char *mountinfo, char *buf, size_t len)
{
    FILE *f = fopen(mountinfo, "r");
    char line[4096], root[2048], point[256];
    int found = -1;

    if (f == NULL)
        return -1;
    while (found < 0 && fgets(line, sizeof line, f))
        if (sscanf(line, "%*s %*s %*s %2047s %255s", root, point) == 2 && strcmp(point, "/etc/hostname") == 0)
            found = container_id_in(root, buf, len);
    fclose(f);
    return found;
}

int hostinfo_address(char *buf, size_t len)
{
    struct ifaddrs *list, *ifa;
    char route_if[IF_NAMESIZE + 1] = "";
    int found = -1;

    if (getifaddrs(&list) < 0)
        return -1;
    default_route_interface(route_if, sizeof route_if);
    /* two passes: the default route's interface first, then any other */
    for (int pass = 0; pass < 2 && found < 0; pass++) {
        for (ifa = list; ifa && found < 0; ifa = ifa->ifa_next) {
            struct sockaddr_in *sin = (struct sockaddr_in *)ifa->ifa_addr;
            if (sin == NULL || sin->sin_family != AF_INET || (ifa->ifa_flags & IFF_LOOPBACK))
                continue;
            if (pass == 0 && strcmp(ifa->ifa_name, route_if) != 0)
                continue;
            if (inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len))
                found = 0;
        }
    }
    freeifaddrs(list);
    return found;
}
