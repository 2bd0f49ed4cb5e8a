/* A free() and realloc() watch for unit tests: while watching, every heap
 * block released (free, or the old block of a realloc) that still holds
 * the marker text is counted. That is how a test checks that memory which
 * held a secret was wiped before it went back to the allocator, including
 * blocks that libraries (libyaml) free.
 *
 * It works by defining free and realloc in the test binary, which the
 * dynamic linker then resolves for the shared libraries too, and handing
 * the blocks on to glibc's __libc_free/__libc_realloc. Under ASan the
 * sanitizer owns the heap, so the watch is off and freewatch_available()
 * says so (tests skip). */
#ifndef AICP_TEST_FREEWATCH_H
#define AICP_TEST_FREEWATCH_H

#include <stddef.h>

/* 1 when the watch works in this build. */
int freewatch_available(void);
/* Starts counting released blocks that contain marker (borrowed). */
void freewatch_start(const char *marker);
/* Stops, and returns how many were counted. */
size_t freewatch_stop(void);

#endif
