/* Shared helpers for file modules (in progress). */
#include "config.h"
