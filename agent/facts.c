/* facts (in progress). */
#include "config.h"
