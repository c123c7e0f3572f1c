/* allocator.c: see allocator.h.
 *
 * glibc's thread cache (tcache) keeps up to seven freed blocks of each
 * small size for the next malloc, outside the heap's free lists.  After a
 * start-up those blocks lie all over the heap, and each keeps the page it
 * is on, and its free neighbours, from being given back: measured, about
 * 250 KiB of 2.5 MiB private memory with 100 containers, a quarter of what
 * the containers themselves cost.  The cache can only be switched off by
 * GLIBC_TUNABLES, which the dynamic loader reads as the program starts:
 * so the daemon sets it and executes itself again, the same process with
 * the same arguments (systemd sees the same PID).  A daemon allocates far
 * too little for the cache's speed to matter. */
#include "core/allocator.h"

#include <stdlib.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define TUNED "glibc.malloc.tcache_count=0"

void allocator_exec_tuned(char **argv)
{
    /* valgrind replaces malloc anyway, and would not follow the exec */
    if (getenv("GLIBC_TUNABLES") != NULL || RUNNING_ON_VALGRIND)
        return;
    if (setenv("GLIBC_TUNABLES", TUNED, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("GLIBC_TUNABLES");      /* no /proc: run as we are */
}
