/* The command module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_command = {
    .name = "command",
    .summary = "not yet implemented",
};
