/* Tag selection as ansible-playbook does it for --tags and --skip-tags,
 * with the special tags all, always, never, tagged and untagged. */
#include "config.h"

#include <string.h>

#include "tags.h"

static int tags_intersect(const json_t *a, const json_t *b)
{
    size_t i, j;
    json_t *x, *y;
    json_array_foreach(a, i, x) {
        json_array_foreach(b, j, y) {
            if (json_equal(x, y))
                return 1;
        }
    }
    return 0;
}

static int has_tag(const json_t *tags, const char *name)
{
    size_t i;
    json_t *x;
    json_array_foreach(tags, i, x) {
        if (json_is_string(x) && strcmp(json_string_value(x), name) == 0)
            return 1;
    }
    return 0;
}

/* Ansible's tag selection: --tags/--skip-tags with all, always, never,
 * tagged and untagged. */
int aicp_tags_selected(const json_t *tags, const json_t *only, const json_t *skip)
{
    if (skip && json_array_size(skip)) {
        if (tags_intersect(tags, skip) || (has_tag(skip, "all") && !has_tag(tags, "always")) ||
            (has_tag(skip, "tagged") && json_array_size(tags)) ||
            (has_tag(skip, "untagged") && !json_array_size(tags)))
            return 0;
    }
    if (has_tag(tags, "always"))
        return !(skip && has_tag(skip, "always"));
    if (only == NULL || json_array_size(only) == 0)
        return !has_tag(tags, "never");
    if (has_tag(only, "all"))
        return !has_tag(tags, "never");
    if (has_tag(only, "tagged") && json_array_size(tags) && !has_tag(tags, "never"))
        return 1;
    if (has_tag(only, "untagged") && json_array_size(tags) == 0)
        return 1;
    return tags_intersect(tags, only);
}
