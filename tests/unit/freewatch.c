/* See freewatch.h. */
#include "config.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "freewatch.h"

#if defined(__SANITIZE_ADDRESS__)
#define FREEWATCH_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FREEWATCH_ON 0
#endif
#endif
#ifndef FREEWATCH_ON
#define FREEWATCH_ON 1
#endif

static const char *watch_marker;
static size_t watch_hits;

int freewatch_available(void)
{
    return FREEWATCH_ON;
}

void freewatch_start(const char *marker)
{
    watch_hits = 0;
    watch_marker = marker;
}

size_t freewatch_stop(void)
{
    watch_marker = NULL;
    return watch_hits;
}

#if FREEWATCH_ON
/* glibc's own entry points, exported for exactly this kind of wrapper. */
extern void __libc_free(void *p);
extern void *__libc_realloc(void *p, size_t n);

static void released(void *p)
{
    if (p == NULL || watch_marker == NULL)
        return;
    if (memmem(p, malloc_usable_size(p), watch_marker, strlen(watch_marker)) != NULL)
        watch_hits++;
}

void free(void *p)
{
    released(p);
    __libc_free(p);
}

void *realloc(void *p, size_t n)
{
    /* Counted even when glibc grows the block in place: the allocator is
     * then free to hand the old bytes out again later, unwiped. */
    released(p);
    return __libc_realloc(p, n);
}
#endif
