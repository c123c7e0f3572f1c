/* fuzz_config_file.h: what the two config-reader targets share.  The
 * readers take a path, so each input is written to one memfd per process
 * (reused) and read back through /proc/self/fd/N. */
#ifndef FUZZ_CONFIG_FILE_H
#define FUZZ_CONFIG_FILE_H

#define _GNU_SOURCE             /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"

static const char *fuzz_input_path(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    size_t done = 0;

    if (fd < 0) {
        fd = memfd_create("registrar-fuzz-config", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0)
        abort();
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    return path;
}

/* HOST and IPADDRESS set first, as the environment would: config_finish
 * then never asks the network for this host's name and address. */
static void fuzz_config_start(struct config *c)
{
    char err[512];
    config_init(c);
    if (config_set(c, CK_HOSTNAME, "h", "fuzz", err, sizeof err) < 0 ||
        config_set(c, CK_IPADDRESS, "10.0.0.1", "fuzz", err, sizeof err) < 0)
        abort();
}

/* After the reader: finish (converting and checking every value) and
 * free.  An error is a fine answer, but it must say something (and, with
 * -DREGISTRAR_FUZZ_STRICT, be one line). */
static void fuzz_config_end(struct config *c, int loaded, char *err, size_t errlen)
{
    int failed = loaded < 0;
    if (loaded == 0) {
        err[0] = '\0';
        failed = config_finish(c, err, errlen) < 0;
        if (failed && err[0] == '\0') {
            fprintf(stderr, "config_finish failed without saying why\n");
            abort();
        }
    } else if (err[0] == '\0') {
        fprintf(stderr, "the reader failed without saying why\n");
        abort();
    }
#ifdef REGISTRAR_FUZZ_STRICT
    /* config.h promises one line; the messages quote the bad value as it
     * is, control characters included (a known finding) */
    if (failed && strchr(err, '\n') != NULL) {
        fprintf(stderr, "an error of more than one line: %s\n", err);
        abort();
    }
#endif
    config_free(c);
}

#endif
