/* module (in progress). */
#include "config.h"
