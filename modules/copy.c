/* The copy module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_copy = {
    .name = "copy",
    .summary = "not yet implemented",
};
