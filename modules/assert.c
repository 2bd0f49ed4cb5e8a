/* The assert module (not yet implemented). */
#include "config.h"

#include "module.h"

const struct aicp_module aicp_mod_assert = {
    .name = "assert",
    .summary = "not yet implemented",
};
