/* --tags / --skip-tags selection (see tags.c). */
#ifndef AICP_TAGS_H
#define AICP_TAGS_H

#include <jansson.h>

/* 1 when a task with these tags (an array of strings: its own and the ones
 * it inherits) runs under --tags only and --skip-tags skip (arrays of
 * strings, or NULL when not given). */
int aicp_tags_selected(const json_t *tags, const json_t *only, const json_t *skip);

#endif
