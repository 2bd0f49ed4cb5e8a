/* The file module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_file = {
    .name = "file",
    .summary = "not yet implemented",
};
