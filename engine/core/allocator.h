/* allocator.h: how the daemon asks glibc's malloc to hand memory back. */
#ifndef REGISTRAR_CORE_ALLOCATOR_H
#define REGISTRAR_CORE_ALLOCATOR_H

/* Executes this program again, once, with glibc's per-thread cache of
 * freed blocks switched off, unless GLIBC_TUNABLES is set already (by the
 * operator, or by the first run) or the program runs under valgrind.
 * Returns only when it does not (or the exec failed). */
void allocator_exec_tuned(char **argv);

#endif
