/* executor (in progress). */
#include "config.h"
