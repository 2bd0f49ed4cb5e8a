/* The service module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_service = {
    .name = "service",
    .summary = "not yet implemented",
};
