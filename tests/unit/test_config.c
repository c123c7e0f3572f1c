/* Configuration: the merge order of the five sources, and one clear line
 * naming key, value and origin for each kind of bad input. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "core/config.h"
#include "core/hostinfo.h"
#include "lua/modules.h"

static char tmpdir[] = "/tmp/registrar-config-test-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[16][512];
    static int next;
    char *p = path[next++ % 16];
    FILE *f;
    snprintf(p, 512, "%s/%s", tmpdir, name);
    f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

/* Runs the command line with the given environment; err gets the error. */
static int build(struct config *c, char **argv, char **env, char *err, size_t errlen)
{
    struct cli cli;
    int argc = 0;
    while (argv[argc])
        argc++;
    err[0] = '\0';
    if (cli_parse(&cli, argc, argv, err, errlen) < 0) {
        config_init(c);
        return -1;
    }
    return cli_build_config(&cli, c, env, err, errlen);
}

static char *base_env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", NULL };

static void test_defaults(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "run", NULL };
    CHECK(build(&c, argv, base_env, err, sizeof err) == 0);
    CHECK_STR(c.docker, "/var/run/docker.sock");
    CHECK(c.interval_ms == 3000);
    CHECK(c.ttl_ms == 12000);
    CHECK(c.mode == MODE_PRUNE);
    CHECK_STR(c.prefix_services, "/services");
    CHECK_STR(c.prefix_hosts, "/hosts");
    CHECK_STR(c.prefix_stats, "registrar-service");
    CHECK(c.prefix_path.len == 5);
    CHECK_STR(c.prefix_path.items[0], "environment:ENVIRONMENT");
    CHECK_STR(c.prefix_path.items[4], "service:HOSTNAME");
    CHECK_STR(c.backend, "file:///var/lib/registrar/registry.json");
    CHECK(c.log_level == LOG_INFO);
    CHECK(c.statsd.host == NULL);
    CHECK_STR(c.hostname, "h1");
    CHECK_STR(c.where[CK_HOSTNAME], "env HOST");
    CHECK(c.script_instructions == 50000000);
    CHECK(c.script_memory_mb == 512);
    config_free(&c);
}

static void test_host_defaults_are_found(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "run", NULL };
    char *env[] = { NULL };
    CHECK(build(&c, argv, env, err, sizeof err) == 0);
    CHECK(c.hostname != NULL && c.hostname[0] != '\0');
    CHECK(c.ipaddress != NULL && c.ipaddress[0] != '\0');
    config_free(&c);
}

/* defaults < env < YAML < env file < flags, one key at each level */
static void test_precedence(void)
{
    struct config c;
    char err[512];
    const char *yaml = write_file("p.yml",
        "interval: 2000\nttl: 20000\nprefix_services: /yaml\nbackend: etcd://yaml:1\n");
    const char *envf = write_file("p.env", "# comment\nexport TTL=30000\nBACKEND='etcd://envfile:2'\n\n");
    char *argv[] = { "registrar", "-c", (char *)yaml, "run", "-e", (char *)envf, "-B", "etcd://flag:3", NULL };
    char *env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "INTERVAL=1000", "PREFIX_SERVICES=/env",
                    "PREFIX_HOSTS=/envhosts", "TTL=5", NULL };
    CHECK(build(&c, argv, env, err, sizeof err) == 0);
    CHECK_STR(err, "");
    CHECK_STR(c.prefix_hosts, "/envhosts");           /* env over default */
    CHECK(c.interval_ms == 2000);                     /* YAML over env */
    CHECK_STR(c.prefix_services, "/yaml");
    CHECK(c.ttl_ms == 30000);                         /* env file over YAML */
    CHECK_STR(c.backend, "etcd://flag:3");            /* flag over env file */
    CHECK_HAS(c.where[CK_INTERVAL], "p.yml:1");
    CHECK_HAS(c.where[CK_TTL], "p.env:2");
    CHECK_STR(c.where[CK_BACKEND], "flag -B");
    config_free(&c);
}

static void test_old_tool_flags(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "-d", "run", "-H", "web1", "-a", "192.0.2.7", "-B", "etcd://10.0.0.5:2379",
                     "-i", "500", "-t", "9000", "-l", "/tmp/x.log", NULL };
    CHECK(build(&c, argv, base_env, err, sizeof err) == 0);
    CHECK_STR(c.hostname, "web1");
    CHECK_STR(c.ipaddress, "192.0.2.7");
    CHECK(c.interval_ms == 500);
    CHECK(c.ttl_ms == 9000);
    CHECK_STR(c.log_file, "/tmp/x.log");
    CHECK(c.log_level == LOG_DEBUG);
    config_free(&c);
}

/* Services may be advertised at an IPv4 or IPv6 address or a DNS name. */
static void test_ipaddress_forms(void)
{
    static const char *const good[] = { "10.0.1.100", "fd00::5", "::1", "node-7.dc1.example.com", "db", NULL };
    for (int i = 0; good[i]; i++) {
        struct config c;
        char err[512];
        char *argv[] = { "registrar", "run", "-a", (char *)good[i], NULL };
        CHECK(build(&c, argv, base_env, err, sizeof err) == 0);
        CHECK_STR(c.ipaddress, good[i]);
        config_free(&c);
    }
}

static void test_env_names(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "run", NULL };
    char *env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "DOCKER_HOST=tcp://127.0.0.1:2375", "SERVICE_METHOD=ttl",
                    "LOGLEVEL=warn", "PREFIX_STATSD=x", "BACKEND=etcd://e:1", "INTERVAL=", NULL };
    CHECK(build(&c, argv, env, err, sizeof err) == 0);
    CHECK_STR(c.docker, "tcp://127.0.0.1:2375");      /* DOCKER_HOST when DOCKER_SOCKET is unset */
    CHECK(c.mode == MODE_TTL);
    CHECK(c.log_level == LOG_WARN);
    CHECK_STR(c.prefix_stats, "x");
    CHECK(c.interval_ms == 3000);                     /* INTERVAL= is unset, not empty */
    config_free(&c);

    char *env2[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "DOCKER_HOST=tcp://a:1", "DOCKER_SOCKET=/run/d.sock", NULL };
    CHECK(build(&c, argv, env2, err, sizeof err) == 0);
    CHECK_STR(c.docker, "/run/d.sock");               /* DOCKER_SOCKET wins */
    config_free(&c);
}

static void test_yaml_lists_and_maps(void)
{
    struct config c;
    char err[512];
    const char *yaml = write_file("l.yml",
        "prefix_path:\n  - string:teams\n  - label:team\n  - service:PORT\n"
        "statsd:\n  host: 127.0.0.1\n  port: 8125\n"
        "site:\n  zone: eu-1\n  weights: [1, 2]\n");
    char *argv[] = { "registrar", "run", "-c", (char *)yaml, NULL };
    CHECK(build(&c, argv, base_env, err, sizeof err) == 0);
    CHECK_STR(err, "");
    CHECK(c.prefix_path.len == 3);
    CHECK_STR(c.prefix_path.items[1], "label:team");
    CHECK_STR(c.statsd.host, "127.0.0.1");
    CHECK(c.statsd.port == 8125);
    CHECK(c.site != NULL);
    config_free(&c);
}

/* Each error is one line: key, value, origin. */
static void expect_error(char **argv, char **env, const char *want1, const char *want2)
{
    struct config c;
    char err[512];
    CHECK(build(&c, argv, env, err, sizeof err) < 0);
    CHECK_HAS(err, want1);
    if (want2)
        CHECK_HAS(err, want2);
    CHECK(strchr(err, '\n') == NULL);
    config_free(&c);
}

/* The whole error line; want is a format with at most one %s. */
static void expect_exact(char **argv, char **env, const char *want, ...)
{
    struct config c;
    char err[512], line[1024];
    va_list ap;
    va_start(ap, want);
    vsnprintf(line, sizeof line, want, ap);
    va_end(ap);
    CHECK(build(&c, argv, env, err, sizeof err) < 0);
    CHECK_STR(err, line);
    config_free(&c);
}

static void test_errors(void)
{
    const char *unknown = write_file("u.yml", "interval: 100\nintervall: 200\n");
    const char *badyaml = write_file("b.yml", "interval: 100\n  - nope: [\n");
    const char *listval = write_file("lv.yml", "hostname:\n  - a\n");
    const char *badenvf = write_file("b.env", "INTERVAL=100\nNOT_A_SETTING=1\n");
    const char *noeq = write_file("n.env", "INTERVAL\n");
    const char *badpath = write_file("pp.yml", "prefix_path: [environment:X, bogus:Y]\n");

    char *a1[] = { "registrar", "run", "-i", "abc", NULL };
    expect_error(a1, base_env, "interval: \"abc\" is not a whole number of milliseconds", "(flag -i)");
    char *e1[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "INTERVAL=3s", NULL };
    char *a2[] = { "registrar", "run", NULL };
    expect_error(a2, e1, "interval: \"3s\"", "(env INTERVAL)");
    char *a3[] = { "registrar", "run", "-B", "consul", NULL };
    expect_error(a3, base_env, "backend: \"consul\" is not a URI", "(flag -B)");
    char *a4[] = { "registrar", "-c", "/nonexistent/registrar.yml", "run", NULL };
    expect_error(a4, base_env, "config file /nonexistent/registrar.yml", "No such file");
    char *a5[] = { "registrar", "-c", (char *)unknown, "run", NULL };
    expect_error(a5, base_env, "u.yml:2: unknown key \"intervall\"", NULL);
    char *a6[] = { "registrar", "run", "--intervall", "5", NULL };
    expect_error(a6, base_env, "unknown option --intervall", NULL);
    char *a7[] = { "registrar", "-c", (char *)badyaml, "run", NULL };
    expect_error(a7, base_env, "b.yml:2:", NULL);
    char *a8[] = { "registrar", "-c", (char *)listval, "run", NULL };
    expect_error(a8, base_env, "hostname: expected a single value", "lv.yml:2");
    char *a9[] = { "registrar", "run", "-e", (char *)badenvf, NULL };
    expect_error(a9, base_env, "b.env:2: unknown variable NOT_A_SETTING", NULL);
    char *a10[] = { "registrar", "run", "-e", (char *)noeq, NULL };
    expect_error(a10, base_env, "n.env:1: expected KEY=VALUE", NULL);
    char *a11[] = { "registrar", "run", "-m", "sometimes", NULL };
    expect_error(a11, base_env, "service_ttl: \"sometimes\" is not prune or ttl", "(flag -m)");
    char *a12[] = { "registrar", "run", "-m", "ttl", "-t", "2000", "-i", "3000", NULL };
    expect_error(a12, base_env, "ttl: \"2000\" must be longer than interval", "(flag -t)");
    char *a13[] = { "registrar", "-c", (char *)badpath, "run", NULL };
    expect_error(a13, base_env, "prefix_path: \"bogus:Y\" has an unknown TYPE", "pp.yml:1");
    char *a14[] = { "registrar", "run", "-i", NULL };
    expect_error(a14, base_env, "option -i needs a value", NULL);
    char *a15[] = { "registrar", "run", "-i", "0", NULL };
    expect_error(a15, base_env, "interval: \"0\" is out of range", NULL);
    char *e2[] = { "HOST=a/b", "IPADDRESS=10.0.0.1", NULL };
    expect_error(a2, e2, "hostname: \"a/b\" is not usable", "(env HOST)");
    char *a16[] = { "registrar", "run", "--log-level", "loud", NULL };
    expect_error(a16, base_env, "log_level: \"loud\"", "(flag --log-level)");
    char *a17[] = { "registrar", "run", "-e", "/nonexistent.env", NULL };
    expect_error(a17, base_env, "env file /nonexistent.env", NULL);
    char *e3[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "SCRIPT_INSTRUCTIONS=lots", NULL };
    expect_error(a2, e3, "script_instructions: \"lots\" is not a whole number of instructions",
                 "(env SCRIPT_INSTRUCTIONS)");
    char *e5[] = { "HOST=h1", "IPADDRESS=10.0.0.256", NULL };
    expect_error(a2, e5, "ipaddress: \"10.0.0.256\" is not an IPv4 or IPv6 address, nor a DNS name",
                 "(env IPADDRESS)");
    char *a18[] = { "registrar", "run", "-a", "a b", NULL };
    expect_error(a18, base_env, "ipaddress: \"a b\" is not", "(flag -a)");
    char *e4[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "SCRIPT_MEMORY=8", NULL };
    expect_error(a2, e4, "script_memory: \"8\" is out of range", "(env SCRIPT_MEMORY)");
}

/* The table itself: what every row must hold for the parser, help and
 * registrar.config to work from it alone. */
static void test_key_table(void)
{
    int secrets = 0;
    for (int k = 0; k < CK_COUNT; k++) {
        const struct config_key_info *d = config_key_info((enum config_key)k);
        CHECK(d->name != NULL && d->name[0] != '\0');
        CHECK(d->help != NULL && d->help[0] != '\0');
        CHECK(config_key_find(d->name) == k);
        CHECK(d->def != NULL || d->unset != NULL);     /* help has something to show */
        CHECK(d->def == NULL || d->unset == NULL);     /* and only one thing */
        CHECK(d->field < sizeof(struct config));
        for (int j = 0; j < k; j++) {
            const struct config_key_info *o = config_key_info((enum config_key)j);
            const char *const mine[] = { d->env, d->env_alt }, *const theirs[] = { o->env, o->env_alt };
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    CHECK(mine[a] == NULL || theirs[b] == NULL || strcmp(mine[a], theirs[b]) != 0);
        }
        CHECK(d->env_alt == NULL || d->env != NULL);
        switch (d->type) {
        case CT_MS:
        case CT_COUNT:
        case CT_MIB:
            CHECK(d->def != NULL);                     /* a number is never unset */
            CHECK(d->min <= d->max);
            CHECK(d->type != CT_COUNT || d->unit != NULL);
            break;
        case CT_BOOL:
            CHECK(d->def != NULL);
            break;
        case CT_CHOICE:
            CHECK(d->def != NULL && d->words != NULL && d->words[0] != NULL);
            break;
        case CT_HOSTPORT:
            CHECK(d->port >= 1 && d->port <= 65535);
            break;
        default:
            break;
        }
        CHECK(d->shown == 0 || d->type == CT_STRING || d->type == CT_PATH);
        if (d->secret) {
            secrets++;
            CHECK(d->type == CT_STRING && d->def == NULL);
        }
    }
    CHECK(secrets == 2);
    CHECK(config_key_info(CK_PASSWORD)->secret && config_key_info(CK_TOKEN)->secret);
    CHECK(config_key_find("intervall") == -1);
    CHECK_STR(config_key_default_text(CK_INTERVAL), "3000");
    CHECK_STR(config_key_default_text(CK_LOG), "stdout");
}

/* Every key unset: each field holds the default its row names. */
static void test_every_default(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "run", NULL };
    CHECK(build(&c, argv, base_env, err, sizeof err) == 0);
    CHECK(c.docker_tls_verify == false);
    CHECK(c.docker_cert_path == NULL);
    CHECK(c.log_file == NULL);
    CHECK(c.script == NULL);
    CHECK(c.network == NULL);
    CHECK(c.username == NULL && c.password == NULL && c.token == NULL);
    CHECK(c.ca_file == NULL && c.cert_file == NULL && c.key_file == NULL);
    CHECK_STR(c.naming, "default");
    CHECK(c.health == HEALTH_REQUIRE);
    CHECK(c.explicit_only == false);
    CHECK(c.concurrency == 16);
    CHECK(c.timeout_ms == 5000);
    CHECK(c.script_timeout_ms == 1000);
    CHECK(c.statsd.host == NULL);
    CHECK(cJSON_IsObject(c.site) && c.site->child == NULL);
    CHECK_STR(c.backend_shown, "file:///var/lib/registrar/registry.json");
    CHECK(c.where[CK_INTERVAL] == NULL);
    config_free(&c);
}

static void test_booleans(void)
{
    static const struct { const char *word; bool value; } words[] = {
        { "1", true }, { "true", true }, { "yes", true }, { "on", true },
        { "0", false }, { "false", false }, { "no", false }, { "off", false },
    };
    char *argv[] = { "registrar", "run", NULL };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        struct config c;
        char err[512], tls[64], explicit[64];
        snprintf(tls, sizeof tls, "DOCKER_TLS_VERIFY=%s", words[i].word);
        snprintf(explicit, sizeof explicit, "EXPLICIT=%s", words[i].word);
        char *env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", tls, explicit, NULL };
        CHECK(build(&c, argv, env, err, sizeof err) == 0);
        CHECK(c.docker_tls_verify == words[i].value);
        CHECK(c.explicit_only == words[i].value);
        config_free(&c);
    }
    char *bad[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "DOCKER_TLS_VERIFY=maybe", NULL };
    expect_exact(argv, bad, "docker_tls_verify: \"maybe\" is not a boolean (true or false) (env DOCKER_TLS_VERIFY)");
}

static void test_lists_and_host_ports_as_text(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "run", NULL };
    char *env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "PREFIX_PATH=string:a,label:b \t service:PORT",
                    "STATSD=stats.example:9125", NULL };
    CHECK(build(&c, argv, env, err, sizeof err) == 0);
    CHECK(c.prefix_path.len == 3);
    CHECK_STR(c.prefix_path.items[0], "string:a");
    CHECK_STR(c.prefix_path.items[2], "service:PORT");
    CHECK_STR(c.statsd.host, "stats.example");
    CHECK(c.statsd.port == 9125);
    config_free(&c);

    const char *noport = write_file("sp.yml", "statsd:\n  host: 127.0.0.1\n");
    char *a2[] = { "registrar", "run", "-c", (char *)noport, NULL };
    CHECK(build(&c, a2, base_env, err, sizeof err) == 0);
    CHECK_STR(c.statsd.host, "127.0.0.1");
    CHECK(c.statsd.port == 8125);                   /* the row's port */
    config_free(&c);
}

/* Errors in full, byte for byte, as the old parser wrote them. */
static void test_error_lines(void)
{
    const char *pmap = write_file("pm.yml", "prefix_path:\n  a: b\n");
    const char *plist = write_file("pl.yml", "prefix_path: [[x]]\n");
    const char *slist = write_file("sl.yml", "statsd: [a]\n");
    const char *site1 = write_file("s1.yml", "site: x\n");
    const char *site2 = write_file("s2.yml", "site: [1]\n");
    const char *empty = write_file("e.yml", "interval:\n");
    char *a[] = { "registrar", "run", NULL };
#define ENV(...) ((char *[]){ "HOST=h1", "IPADDRESS=10.0.0.1", __VA_ARGS__, NULL })
    expect_exact(a, ENV("LOGLEVEL=loud"), "log_level: \"loud\" is not debug, info, warn or error (env LOGLEVEL)");
    expect_exact(a, ENV("HEALTH=often"), "health: \"often\" is not require or ignore (env HEALTH)");
    expect_exact(a, ENV("SERVICE_METHOD=x"), "service_ttl: \"x\" is not prune or ttl (env SERVICE_METHOD)");
    expect_exact(a, ENV("SCRIPT_MEMORY=8"), "script_memory: \"8\" is out of range: 16 to 65536 MiB (env SCRIPT_MEMORY)");
    expect_exact(a, ENV("CONCURRENCY=many"), "concurrency: \"many\" is not a whole number of requests (env CONCURRENCY)");
    expect_exact(a, ENV("TIMEOUT=5"), "timeout: \"5\" is out of range: 100 to 600000 milliseconds (env TIMEOUT)");
    expect_exact(a, ENV("DOCKER_HOST=ssh://x"),
                 "docker: \"ssh://x\" is not a socket path, unix:///PATH or tcp://HOST:PORT (env DOCKER_HOST)");
    expect_exact(a, ENV("DOCKER_HOST=tcp://"), "docker: \"tcp://\" has no HOST (tcp://HOST:PORT) (env DOCKER_HOST)");
    expect_exact(a, ENV("DOCKER_HOST=tcp://h:0"), "docker: \"tcp://h:0\" has a port that is not 1 to 65535 (env DOCKER_HOST)");
    expect_exact(a, ENV("PREFIX_SERVICES=services"), "prefix_services: \"services\" must start with '/' (env PREFIX_SERVICES)");
    expect_exact(a, ENV("PREFIX_HOSTS=/a//b"), "prefix_hosts: \"/a//b\" has an empty segment ('//') (env PREFIX_HOSTS)");
    expect_exact(a, ENV("PREFIX_HOSTS=/a/../b"),
                 "prefix_hosts: \"/a/../b\" has a relative segment ('.' or '..') (env PREFIX_HOSTS)");
    expect_exact(a, ENV("PREFIX_PATH=nocolon"), "prefix_path: \"nocolon\" is not TYPE:VALUE (env PREFIX_PATH)");
    expect_exact(a, ENV("STATSD=nohost"), "statsd: \"nohost\" is not HOST:PORT (env STATSD)");
    expect_exact(a, ENV("NETWORK=a\tb"), "network: \"a\tb\" contains control characters (env NETWORK)");
    expect_exact(a, ENV("BACKEND=etcd:/alice:pw@x"),
                 "backend: \"etcd:/alice:pw@x\" is not a URI like etcd://HOST:PORT or file:///PATH (env BACKEND)");
    expect_exact(a, ENV("BACKEND=etcd://alice:pw@x y\x01"),
                 "backend: \"etcd://alice:***@x y\x01\" contains control characters (env BACKEND)");
    char *ttl[] = { "registrar", "run", "-m", "ttl", "-i", "3000", "-t", "3000", NULL };
    expect_exact(ttl, base_env,
                 "ttl: \"3000\" must be longer than interval, or entries expire between refreshes (flag -t)");
    char *a1[] = { "registrar", "run", "-c", (char *)pmap, NULL };
    expect_exact(a1, base_env, "prefix_path: \"(map)\" is not a list of TYPE:VALUE elements (%s:2)", pmap);
    char *a2[] = { "registrar", "run", "-c", (char *)plist, NULL };
    expect_exact(a2, base_env, "prefix_path: \"(list)\" holds an element that is not a string (%s:1)", plist);
    char *a3[] = { "registrar", "run", "-c", (char *)slist, NULL };
    expect_exact(a3, base_env, "statsd: \"(map)\" needs host: and port: (%s:1)", slist);
    char *a4[] = { "registrar", "run", "-c", (char *)site1, NULL };
    expect_exact(a4, base_env, "site: \"(list)\" must be a map (%s:1)", site1);
    char *a5[] = { "registrar", "run", "-c", (char *)site2, NULL };
    expect_exact(a5, base_env, "site: \"(list)\" must be a map (%s:1)", site2);
    char *a6[] = { "registrar", "run", "-c", (char *)empty, NULL };
    expect_exact(a6, base_env, "interval: no value (%s:1)", empty);
    char *a7[] = { "registrar", "run", "-H", "", NULL };
    expect_exact(a7, base_env, "hostname: \"\" is not usable as a host name (empty, '/', or dots only) (flag -H)");
#undef ENV
}

/* A string for site, from anywhere but YAML, is refused. */
static void test_site_only_as_a_map(void)
{
    struct config c;
    char err[512];
    config_init(&c);
    CHECK(config_set(&c, CK_HOSTNAME, "h1", "test", err, sizeof err) == 0);
    CHECK(config_set(&c, CK_IPADDRESS, "10.0.0.1", "test", err, sizeof err) == 0);
    CHECK(config_set(&c, CK_SITE, "zone=eu", "test", err, sizeof err) == 0);
    CHECK(config_finish(&c, err, sizeof err) < 0);
    CHECK_STR(err, "site: \"zone=eu\" must be a map in the YAML file (test)");
    config_free(&c);
}

/* password and token: named in errors, never shown. */
static void test_secrets(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "run", NULL };
    char *env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "BACKEND_PASSWORD=pw\x01secret", NULL };
    CHECK(build(&c, argv, env, err, sizeof err) < 0);
    CHECK_STR(err, "password: (secret) contains control characters (env BACKEND_PASSWORD)");
    config_free(&c);

    /* CONSUL_HTTP_TOKEN beats BACKEND_TOKEN, in either order */
    char *env2[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "BACKEND_TOKEN=alt", "CONSUL_HTTP_TOKEN=main", NULL };
    CHECK(build(&c, argv, env2, err, sizeof err) == 0);
    CHECK_STR(c.token, "main");
    CHECK_STR(c.where[CK_TOKEN], "env CONSUL_HTTP_TOKEN");
    config_free(&c);
    char *env3[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "BACKEND_TOKEN=alt", NULL };
    CHECK(build(&c, argv, env3, err, sizeof err) == 0);
    CHECK_STR(c.token, "alt");
    CHECK_STR(c.where[CK_TOKEN], "env BACKEND_TOKEN");
    config_free(&c);
}

static void test_backend_is_shown_redacted(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "run", "-B", "etcd://alice:s3cret@10.0.0.5:2379", NULL };
    CHECK(build(&c, argv, base_env, err, sizeof err) == 0);
    CHECK_STR(c.backend, "etcd://alice:s3cret@10.0.0.5:2379");
    CHECK_STR(c.backend_shown, "etcd://alice:***@10.0.0.5:2379");
    config_free(&c);
}

/* Fields of registrar.config (t at -1), by name. */
static int lua_field_type(lua_State *L, const char *name)
{
    int t;
    lua_getfield(L, -1, name);
    t = lua_type(L, -1);
    lua_pop(L, 1);
    return t;
}

static const char *lua_field_string(lua_State *L, const char *name)
{
    const char *s;
    lua_getfield(L, -1, name);
    s = lua_tostring(L, -1);    /* the table still holds it */
    lua_pop(L, 1);
    return s;
}

/* registrar.config: every key by name, in its Lua type; secrets only for
 * the backend's open(). */
static void test_lua_config(void)
{
    struct config c;
    char err[512];
    const char *yaml = write_file("lua.yml",
        "statsd: 127.0.0.1:8125\nsite:\n  zone: eu-1\nlog: /tmp/x.log\ndocker_cert_path: /certs\n"
        "network: n1\nusername: u\nca_file: /ca\ncert_file: /c\nkey_file: /k\nlisten: 9102\n");
    char *argv[] = { "registrar", "run", "-c", (char *)yaml, "-s", "/tmp/site.lua", "-B", "etcd://u:pw@h:1", NULL };
    char *env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "BACKEND_PASSWORD=pw", "CONSUL_HTTP_TOKEN=tk",
                    "SERVICE_METHOD=ttl", "DOCKER_TLS_VERIFY=1", NULL };
    lua_State *L = luaL_newstate();
    CHECK(build(&c, argv, env, err, sizeof err) == 0);
    CHECK_STR(err, "");

    lua_registrar_push_config(L, &c, false);
    for (int k = 0; k < CK_COUNT; k++) {
        const struct config_key_info *d = config_key_info((enum config_key)k);
        int t = lua_field_type(L, d->name);
        if (d->secret) {
            CHECK(t == LUA_TNIL);
            continue;
        }
        switch (d->type) {
        case CT_STRING: case CT_PATH: case CT_CHOICE: CHECK(t == LUA_TSTRING); break;
        case CT_MS: case CT_COUNT: case CT_MIB: CHECK(t == LUA_TNUMBER); break;
        case CT_BOOL: CHECK(t == LUA_TBOOLEAN); break;
        case CT_LIST: case CT_HOSTPORT: case CT_MAP: CHECK(t == LUA_TTABLE); break;
        }
        if (t == LUA_TNIL)
            fprintf(stderr, "registrar.config.%s is missing\n", d->name);
    }
    CHECK_STR(lua_field_string(L, "backend"), "etcd://u:***@h:1");
    CHECK_STR(lua_field_string(L, "service_ttl"), "ttl");
    CHECK_STR(lua_field_string(L, "log_level"), "info");
    lua_getfield(L, -1, "interval");
    CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 3000);
    lua_pop(L, 1);
    lua_getfield(L, -1, "docker_tls_verify");
    CHECK(lua_toboolean(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "statsd");
    CHECK_STR(lua_field_string(L, "host"), "127.0.0.1");
    lua_getfield(L, -1, "port");
    CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 8125);
    lua_pop(L, 2);
    lua_getfield(L, -1, "prefix_path");
    CHECK(lua_rawlen(L, -1) == 5);
    lua_rawgeti(L, -1, 1);
    CHECK_STR(lua_tostring(L, -1), "environment:ENVIRONMENT");
    lua_pop(L, 2);
    lua_getfield(L, -1, "site");
    CHECK_STR(lua_field_string(L, "zone"), "eu-1");
    lua_pop(L, 2);

    lua_registrar_push_config(L, &c, true);
    CHECK_STR(lua_field_string(L, "password"), "pw");
    CHECK_STR(lua_field_string(L, "token"), "tk");
    CHECK_STR(lua_field_string(L, "backend"), "etcd://u:***@h:1");
    lua_pop(L, 1);
    lua_close(L);
    config_free(&c);
}

/* A bad value that a higher source overrides is not an error. */
static void test_overridden_bad_value_is_fine(void)
{
    struct config c;
    char err[512];
    char *argv[] = { "registrar", "run", "-i", "1500", NULL };
    char *env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "INTERVAL=abc", NULL };
    CHECK(build(&c, argv, env, err, sizeof err) == 0);
    CHECK(c.interval_ms == 1500);
    config_free(&c);
}

/* The container registrar runs in, from the source of its /etc/hostname
 * bind mount: Docker's and Podman's layouts, and none outside a container. */
static void test_container_id_from_mountinfo(void)
{
    const char *id = "3f2ad1a466ff0c1e8a8ff1c6a1dd4a3d0a5c30f7e1c3b3e6f0d2a9a1b8c7d6e5";
    char text[2048], got[65];
    snprintf(text, sizeof text,
             "22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n"
             "812 790 254:1 /var/lib/docker/containers/%s/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda1 rw\n"
             "813 790 254:1 /var/lib/docker/containers/%s/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n",
             id, id);
    CHECK(hostinfo_container_id(write_file("docker.mountinfo", text), got, sizeof got) == 0);
    CHECK_STR(got, id);

    snprintf(text, sizeof text,
             "640 600 0:45 /containers/overlay-containers/%s/userdata/hostname /etc/hostname rw - tmpfs tmpfs rw\n", id);
    CHECK(hostinfo_container_id(write_file("podman.mountinfo", text), got, sizeof got) == 0);
    CHECK_STR(got, id);

    /* a host: /etc/hostname is no mount; a mount whose path names no id */
    CHECK(hostinfo_container_id(write_file("host.mountinfo", "22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n"),
                                got, sizeof got) == -1);
    CHECK(hostinfo_container_id(write_file("other.mountinfo",
                                           "30 22 0:50 /srv/3f2ad1a466ff/hostname /etc/hostname rw - ext4 /dev/vdb rw\n"),
                                got, sizeof got) == -1);
    CHECK(hostinfo_container_id("/nonexistent/mountinfo", got, sizeof got) == -1);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL)
        return 2;
    test_defaults();
    test_host_defaults_are_found();
    test_container_id_from_mountinfo();
    test_precedence();
    test_old_tool_flags();
    test_ipaddress_forms();
    test_env_names();
    test_yaml_lists_and_maps();
    test_errors();
    test_overridden_bad_value_is_fine();
    test_key_table();
    test_every_default();
    test_booleans();
    test_lists_and_host_ports_as_text();
    test_error_lines();
    test_site_only_as_a_map();
    test_secrets();
    test_backend_is_shown_redacted();
    test_lua_config();
    {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return CHECK_DONE();
}
