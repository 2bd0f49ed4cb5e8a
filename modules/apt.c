/* The apt module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_apt = {
    .name = "apt",
    .summary = "not yet implemented",
};
