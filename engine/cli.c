/* cli.c: `registrar [-c FILE] [-d] COMMAND [options]`, the old tool's
 * flags plus a few of ours, each mapped to its configuration key. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

struct option_spec {
    char short_name;
    const char *long_name;
    int key;                    /* config key, or one of the OPT_ codes */
    const char *arg;            /* NULL: takes no value */
    const char *help;
};

enum { OPT_CONFIG = -1, OPT_ENV_FILE = -2, OPT_DEBUG = -3, OPT_HELP = -4, OPT_CONTAINERS = -5, OPT_JSON = -6 };

static const struct option_spec options[] = {
    { 'c', "config", OPT_CONFIG, "FILE", "YAML configuration file" },
    { 'e', "env-file", OPT_ENV_FILE, "FILE", "KEY=VALUE lines, as the environment variables" },
    { 'd', "debug", OPT_DEBUG, NULL, "log at debug level" },
    { 'H', "hostname", CK_HOSTNAME, "NAME", "this Docker host's name (HOST)" },
    { 'a', "ipaddress", CK_IPADDRESS, "ADDR", "address services are reached at (IPADDRESS)" },
    { 'B', "backend", CK_BACKEND, "URI", "registry, e.g. etcd://127.0.0.1:2379 (BACKEND)" },
    { 'i', "interval", CK_INTERVAL, "MS", "ms between full resyncs (INTERVAL)" },
    { 't', "ttl", CK_TTL, "MS", "entry ttl in ms, ttl mode (TTL)" },
    { 'l', "logfile", CK_LOG, "FILE", "append the log to FILE (LOGFILE)" },
    { 'm', "method", CK_SERVICE_TTL, "MODE", "prune or ttl (SERVICE_METHOD)" },
    { 'D', "docker", CK_DOCKER, "SOCKET", "Docker socket or URI (DOCKER_SOCKET)" },
    { 's', "script", CK_SCRIPT, "FILE", "site script loaded after the defaults" },
    { 'n', "naming", CK_NAMING, "NAME", "default, registrator, or a .lua file" },
    { 0, "log-level", CK_LOG_LEVEL, "LEVEL", "debug, info, warn or error (LOGLEVEL)" },
    { 0, "listen", CK_LISTEN, "ADDR", "serve /health, /metrics, /services; status: ask there (LISTEN)" },
    { 0, "containers", OPT_CONTAINERS, "FILE", "check: a JSON list of `docker inspect` results" },
    { 0, "json", OPT_JSON, NULL, "check: print one JSON document, the log on stderr" },
    { 'h', "help", OPT_HELP, NULL, "this help" },
};

#define NOPTIONS (sizeof options / sizeof options[0])

static const struct option_spec *find_option(const char *arg)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (arg[1] != '-' && arg[2] == '\0' && options[i].short_name == arg[1])
            return &options[i];
        if (arg[1] == '-' && strcmp(arg + 2, options[i].long_name) == 0)
            return &options[i];
    }
    return NULL;
}

static int add_flag(struct cli *cli, int key, const char *value, const char *shown,
                    char *err, size_t errlen)
{
    struct cli_flag *f;
    if (cli->nflags == CLI_MAX_FLAGS) {
        snprintf(err, errlen, "too many options");
        return -1;
    }
    f = &cli->flags[cli->nflags++];
    f->key = (enum config_key)key;
    f->value = value;
    snprintf(f->where, sizeof f->where, "flag %s", shown);
    return 0;
}

static int take_option(struct cli *cli, const struct option_spec *o, const char *shown,
                       const char *value, char *err, size_t errlen)
{
    switch (o->key) {
    case OPT_CONFIG: cli->config_file = value; return 0;
    case OPT_ENV_FILE: cli->env_file = value; return 0;
    case OPT_CONTAINERS: cli->containers = value; return 0;
    case OPT_JSON: cli->json = true; return 0;
    case OPT_HELP: cli->help = true; return 0;
    case OPT_DEBUG: return add_flag(cli, CK_LOG_LEVEL, "debug", shown, err, errlen);
    default: return add_flag(cli, o->key, value, shown, err, errlen);
    }
}

int cli_parse(struct cli *cli, int argc, char **argv, char *err, size_t errlen)
{
    memset(cli, 0, sizeof *cli);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL, *eq;
        char name[64];
        const struct option_spec *o;

        if (arg[0] != '-' || arg[1] == '\0') {
            if (cli->command == NULL)
                cli->command = arg;
            else if (strcmp(cli->command, "help") == 0 && cli->topic == NULL)
                cli->topic = arg;
            else {
                snprintf(err, errlen, "unexpected argument \"%s\" (see `registrar help`)", arg);
                return -1;
            }
            continue;
        }
        /* --name=value */
        eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
        o = find_option(name);
        if (o == NULL) {
            snprintf(err, errlen, "unknown option %s (see `registrar help`)", name);
            return -1;
        }
        if (o->arg != NULL) {
            value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (value == NULL) {
                snprintf(err, errlen, "option %s needs a value (%s)", name, o->arg);
                return -1;
            }
        } else if (eq) {
            snprintf(err, errlen, "option %s takes no value", name);
            return -1;
        }
        if (take_option(cli, o, name, value, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int cli_build_config(const struct cli *cli, struct config *c, char *const *environ,
                     char *err, size_t errlen)
{
    config_init(c);
    if (config_load_env(c, environ, err, errlen) < 0)
        return -1;
    if (cli->config_file && config_load_yaml(c, cli->config_file, err, errlen) < 0)
        return -1;
    if (cli->env_file && config_load_env_file(c, cli->env_file, err, errlen) < 0)
        return -1;
    for (int i = 0; i < cli->nflags; i++)
        if (config_set(c, cli->flags[i].key, cli->flags[i].value, cli->flags[i].where, err, errlen) < 0)
            return -1;
    return config_finish(c, err, errlen);
}

void cli_usage(const char *command)
{
    if (command != NULL && strcmp(command, "run") == 0)
        printf("usage: registrar [-c FILE] [-d] run [options]\n\n"
               "Watches Docker and keeps the registry equal to this host's running\n"
               "containers' published ports, until SIGTERM or SIGINT.\n\n");
    else if (command != NULL && strcmp(command, "check") == 0)
        printf("usage: registrar check [--containers FILE] [--json] [options]\n\n"
               "Loads the configuration and scripts, reads the running containers (or\n"
               "FILE, a JSON list of `docker inspect` results) and prints the services,\n"
               "keys and documents that would be written.  Touches no registry.\n\n");
    else if (command != NULL && strcmp(command, "status") == 0)
        printf("usage: registrar status [--listen ADDR] [options]\n\n"
               "Asks the registrar serving on ADDR (config listen) for this host's\n"
               "entries and its health, and prints them.  Exit status 0 when healthy,\n"
               "1 when not, 2 when it cannot be asked.\n\n");
    else
        printf("usage: registrar [-c FILE] [-d] COMMAND [options]\n\n"
               "commands:\n"
               "  run            watch Docker and keep the registry in step\n"
               "  check          print what would be registered, write nothing\n"
               "  status         ask a running registrar (--listen) for its entries and health\n"
               "  version        print the version\n"
               "  help [config]  this help, or the configuration keys\n\n");
    printf("options (before or after the command):\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        char left[48];
        if (options[i].short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", options[i].short_name, options[i].long_name,
                     options[i].arg ? " " : "", options[i].arg ? options[i].arg : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", options[i].long_name,
                     options[i].arg ? " " : "", options[i].arg ? options[i].arg : "");
        printf("  %-28s %s\n", left, options[i].help);
    }
    printf("\nprecedence: defaults < environment < -c YAML < -e env file < flags\n"
           "`registrar help config` lists every key, its variable and default.\n");
}

/* The key table: key, variable, default, meaning.  A default wider than
 * its column is printed whole, with the meaning on the next line. */
void cli_help_config(void)
{
    enum { KEY_W = 19, ENV_W = 19, DEF_W = 26 };
    printf("%-*s %-*s %-*s %s\n", KEY_W, "key", ENV_W, "environment", DEF_W, "default", "meaning");
    for (int k = 0; k < CK_COUNT; k++) {
        const struct config_key_info *d = config_key_info((enum config_key)k);
        const char *def = config_key_default_text((enum config_key)k);
        char more[200] = "";
        size_t n = 0;

        if (d->type == CT_MS || d->type == CT_COUNT || d->type == CT_MIB)
            n += (size_t)snprintf(more + n, sizeof more - n, " (%ld to %ld)", d->min, d->max);
        if (d->env_alt != NULL && n < sizeof more)
            n += (size_t)snprintf(more + n, sizeof more - n, " (else env %s)", d->env_alt);
        if (d->secret && n < sizeof more)
            snprintf(more + n, sizeof more - n, " (secret: not in registrar.config)");
        if (strlen(def) > DEF_W)
            printf("%-*s %-*s %s\n%*s %s%s\n", KEY_W, d->name, ENV_W, d->env ? d->env : "-", def,
                   KEY_W + ENV_W + DEF_W + 2, "", d->help, more);
        else
            printf("%-*s %-*s %-*s %s%s\n", KEY_W, d->name, ENV_W, d->env ? d->env : "-", DEF_W, def,
                   d->help, more);
    }
}
