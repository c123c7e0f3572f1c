/* libFuzzer target: the YAML config reader (-c FILE, engine/config_yaml.c)
 * and the checks of config_finish (engine/config.c) on what it read.
 * What must hold, for any file: config_load_yaml and config_finish return
 * 0, or -1 with an error line; neither crashes, leaks, hits undefined
 * behaviour or hangs -- aliases that expand to billions of nodes, deep
 * nesting, duplicate keys, non-scalar keys, bytes that are not UTF-8 and
 * NUL bytes included.  HOST and IPADDRESS are set before the file, so
 * nothing asks the network. */
#include "fuzz_config_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    char err[1024] = "";
    const char *path = fuzz_input_path(data, size);
    int rc;

    fuzz_config_start(&c);
    rc = config_load_yaml(&c, path, err, sizeof err);
    fuzz_config_end(&c, rc, err, sizeof err);
    return 0;
}
