/* output (in progress). */
#include "config.h"
