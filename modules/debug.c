/* The debug module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_debug = {
    .name = "debug",
    .summary = "not yet implemented",
};
