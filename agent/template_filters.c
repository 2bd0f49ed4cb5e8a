/* template_filters (in progress). */
#include "config.h"
