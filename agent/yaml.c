/* yaml (in progress). */
#include "config.h"
