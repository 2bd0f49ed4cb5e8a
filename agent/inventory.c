/* inventory (in progress). */
#include "config.h"
