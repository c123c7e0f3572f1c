/* main.c: the command dispatch. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>
#include <zookeeper/zookeeper_version.h>

#include "check.h"
#include "cli.h"
#include "core/allocator.h"
#include "core/config.h"
#include "core/http.h"
#include "core/json.h"
#include "core/log.h"
#include "daemon.h"
#include "registrar_commit.h"   /* generated at build time: cmake/git_commit.cmake */
#include "status.h"

extern char **environ;

/* The libraries as this binary runs with them; Lua and the ZooKeeper
 * client say only the version they were built with. */
static int print_version(void)
{
    printf("registrar %s (%s, libcurl %s, cJSON %s, libyaml %s, ZooKeeper C client %s), commit %s\n",
           REGISTRAR_VERSION, LUA_RELEASE, curl_version_info(CURLVERSION_NOW)->version, cJSON_Version(),
           yaml_get_version_string(), ZOO_VERSION, REGISTRAR_COMMIT);
    return 0;
}

static int run_command(const struct cli *cli)
{
    struct config c;
    char err[1024];
    int rc;

    if (cli_build_config(cli, &c, environ, err, sizeof err) < 0) {
        fprintf(stderr, "registrar: %s\n", err);
        config_free(&c);
        return 2;
    }
    log_set_level(c.log_level);
    log_set_json(c.log_format == LOG_FORMAT_JSON);
    if (strcmp(cli->command, "run") == 0 && log_open(c.log_file, err, sizeof err) < 0) {
        fprintf(stderr, "registrar: log: %s (%s)\n", err, config_origin(&c, CK_LOG));
        config_free(&c);
        return 2;
    }
    if (strcmp(cli->command, "run") == 0)
        rc = daemon_run(cli, &c);
    else if (strcmp(cli->command, "status") == 0)
        rc = status_run(&c);
    else
        rc = check_run(&c, cli->containers, cli->json);
    log_close();
    config_free(&c);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli cli;
    char err[512];
    int rc;

    json_trees_in_slabs();
    if (cli_parse(&cli, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "registrar: %s\n", err);
        return 2;
    }
    if (cli.command == NULL || strcmp(cli.command, "help") == 0 || cli.help) {
        if (cli.topic != NULL && strcmp(cli.topic, "config") == 0)
            cli_help_config();
        else
            cli_usage(cli.command && strcmp(cli.command, "help") != 0 ? cli.command : cli.topic);
        return cli.command == NULL && !cli.help ? 2 : 0;
    }
    if (strcmp(cli.command, "version") == 0)
        return print_version();
    if (strcmp(cli.command, "run") != 0 && strcmp(cli.command, "check") != 0 &&
        strcmp(cli.command, "status") != 0) {
        fprintf(stderr, "registrar: unknown command \"%s\" (see `registrar help`)\n", cli.command);
        return 2;
    }
    if (strcmp(cli.command, "check") != 0 && cli.containers != NULL) {
        fprintf(stderr, "registrar: --containers is an option of `registrar check`; `%s` reads Docker\n",
                cli.command);
        return 2;
    }
    if (strcmp(cli.command, "check") != 0 && cli.json) {
        fprintf(stderr, "registrar: --json is an option of `registrar check`, not of `%s`\n", cli.command);
        return 2;
    }
    if (strcmp(cli.command, "run") == 0)
        allocator_exec_tuned(argv);
    http_global_init();
    rc = run_command(&cli);
    http_global_cleanup();
    return rc;
}
