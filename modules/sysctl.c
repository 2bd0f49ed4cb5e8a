/* The sysctl module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_sysctl = {
    .name = "sysctl",
    .summary = "not yet implemented",
};
