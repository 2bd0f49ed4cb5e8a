/* The registry: the one list of modules. */
#ifndef AICP_REGISTRY_H
#define AICP_REGISTRY_H

#include <stddef.h>

struct aicp_module;

/* Finds a module by name; "ansible.builtin.copy" and "copy" are the same
 * module. NULL when unknown. */
const struct aicp_module *aicp_module_find(const char *name);
size_t aicp_module_count(void);
const struct aicp_module *aicp_module_at(size_t i);

#endif
