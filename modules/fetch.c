/* The fetch module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_fetch = {
    .name = "fetch",
    .summary = "not yet implemented",
};
