/* template (in progress). */
#include "config.h"
