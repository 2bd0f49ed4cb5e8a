/* conn (in progress). */
#include "config.h"
