/* cli.h: the command line, and building the configuration from it. */
#ifndef REGISTRAR_CLI_H
#define REGISTRAR_CLI_H

#include <stdbool.h>

#include "core/config.h"

#define CLI_MAX_FLAGS 64

struct cli_flag {
    enum config_key key;
    const char *value;
    char where[72];             /* "flag -i" */
};

struct cli {
    const char *command;        /* NULL when none was given */
    const char *topic;          /* `registrar help TOPIC` */
    const char *config_file;    /* -c */
    const char *env_file;       /* -e */
    const char *containers;     /* check --containers FILE */
    bool json;                  /* check --json */
    bool help;
    struct cli_flag flags[CLI_MAX_FLAGS];
    int nflags;
};

/* Options may stand before or after the command.  Returns 0, or -1 with
 * one line in err naming the bad argument. */
int cli_parse(struct cli *cli, int argc, char **argv, char *err, size_t errlen);

/* defaults < env < YAML (-c) < env file (-e) < flags, then validation. */
int cli_build_config(const struct cli *cli, struct config *c, char *const *environ,
                     char *err, size_t errlen);

void cli_usage(const char *command);
void cli_help_config(void);

#endif
