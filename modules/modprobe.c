/* The modprobe module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_modprobe = {
    .name = "modprobe",
    .summary = "not yet implemented",
};
