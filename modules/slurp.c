/* The slurp module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_slurp = {
    .name = "slurp",
    .summary = "not yet implemented",
};
