/* The shell module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_shell = {
    .name = "shell",
    .summary = "not yet implemented",
};
