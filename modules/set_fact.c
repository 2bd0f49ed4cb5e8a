/* The set_fact module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_set_fact = {
    .name = "set_fact",
    .summary = "not yet implemented",
};
