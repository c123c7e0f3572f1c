/* libFuzzer target: the env-file reader (-e FILE, config_load_env_file in
 * engine/config.c: KEY=VALUE lines, comments, `export`, quotes) and the
 * checks of config_finish on what it read.  What must hold, for any file:
 * both return 0, or -1 with an error line; neither crashes, leaks, hits
 * undefined behaviour or hangs -- long lines, NUL bytes, lone quotes,
 * CR line ends and bytes that are not UTF-8 included.  HOST and IPADDRESS
 * are set before the file, so nothing asks the network. */
#include "fuzz_config_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    char err[1024] = "";
    const char *path = fuzz_input_path(data, size);
    int rc;

    fuzz_config_start(&c);
    rc = config_load_env_file(&c, path, err, sizeof err);
    fuzz_config_end(&c, rc, err, sizeof err);
    return 0;
}
