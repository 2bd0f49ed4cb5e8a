/* The template module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_template = {
    .name = "template",
    .summary = "not yet implemented",
};
