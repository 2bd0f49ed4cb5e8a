/* ssh (in progress). */
#include "config.h"
