/* The lineinfile module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_lineinfile = {
    .name = "lineinfile",
    .summary = "not yet implemented",
};
