/* The stat module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_stat = {
    .name = "stat",
    .summary = "not yet implemented",
};
