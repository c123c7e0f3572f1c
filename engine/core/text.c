/* text.c: small string helpers shared by the config readers and the log. */
#include "core/text.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *text_trim(char *s)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

bool text_has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

int text_to_long(const char *s, long *out)
{
    char *end;
    long n;
    if (s == NULL || !(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
        return -1;
    errno = 0;
    n = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = n;
    return 0;
}

const char *text_redact_uri(const char *uri, char *buf, size_t len)
{
    const char *start = strstr(uri, "://"), *at, *end, *colon;
    if (start == NULL) {
        snprintf(buf, len, "%s", uri);
        return buf;
    }
    start += 3;
    end = start + strcspn(start, "/?#");
    at = memchr(start, '@', (size_t)(end - start));
    if (at == NULL) {
        snprintf(buf, len, "%s", uri);
        return buf;
    }
    /* the last '@' of the authority ends the userinfo */
    for (const char *p = at; p != NULL && p < end; p = memchr(p + 1, '@', (size_t)(end - p - 1)))
        at = p;
    colon = memchr(start, ':', (size_t)(at - start));
    if (colon != NULL)          /* user:password: the user may be shown */
        snprintf(buf, len, "%.*s:***%s", (int)(colon - uri), uri, at);
    else                        /* a bare token */
        snprintf(buf, len, "%.*s***%s", (int)(start - uri), uri, at);
    return buf;
}

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
size_t text_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool text_is_utf8(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0, len; i < n; i += len)
        if ((len = text_utf8_len((const unsigned char *)s + i, n - i)) == 0)
            return false;
    return true;
}

int text_host_port(const char *address, const char *bare, char *host, size_t hostlen, int *port)
{
    const char *colon, *digits;
    long p;

    if (address[0] == '[') {
        const char *end = strstr(address, "]:");
        if (end == NULL || (size_t)(end - address - 1) >= hostlen)
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(end - address - 1), address + 1);
        digits = end + 2;
    } else if ((colon = strrchr(address, ':')) != NULL) {
        if (colon == address || (size_t)(colon - address) >= hostlen || memchr(address, ':', (size_t)(colon - address)))
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(colon - address), address);
        digits = colon + 1;
    } else {
        snprintf(host, hostlen, "%s", bare);
        digits = address;
    }
    if (strlen(digits) > 5 || text_to_long(digits, &p) < 0 || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}
