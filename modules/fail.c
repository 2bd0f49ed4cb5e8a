/* The fail module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_fail = {
    .name = "fail",
    .summary = "not yet implemented",
};
