/* Configuration: the merge order of the five sources, and one clear line
 * naming key, value and origin for each kind of bad input. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "core/config.h"

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
    CHECK(c.prefix_path_len == 5);
    CHECK_STR(c.prefix_path[0], "environment:ENVIRONMENT");
    CHECK_STR(c.prefix_path[4], "service:HOSTNAME");
    CHECK_STR(c.backend, "file:///var/lib/registrar/registry.json");
    CHECK(c.log_level == LOG_INFO);
    CHECK(c.statsd_host == NULL);
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
    CHECK(c.prefix_path_len == 3);
    CHECK_STR(c.prefix_path[1], "label:team");
    CHECK_STR(c.statsd_host, "127.0.0.1");
    CHECK(c.statsd_port == 8125);
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

int main(void)
{
    if (mkdtemp(tmpdir) == NULL)
        return 2;
    test_defaults();
    test_host_defaults_are_found();
    test_precedence();
    test_old_tool_flags();
    test_ipaddress_forms();
    test_env_names();
    test_yaml_lists_and_maps();
    test_errors();
    test_overridden_bad_value_is_fine();
    {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return CHECK_DONE();
}
