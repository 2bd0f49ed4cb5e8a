/* lab (in progress). */
#include "config.h"
