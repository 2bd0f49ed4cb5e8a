/* The mount module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_mount = {
    .name = "mount",
    .summary = "not yet implemented",
};
