/* The ping module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_ping = {
    .name = "ping",
    .summary = "not yet implemented",
};
