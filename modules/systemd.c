/* The systemd module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_systemd = {
    .name = "systemd",
    .summary = "not yet implemented",
};
