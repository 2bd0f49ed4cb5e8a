/* playbook (in progress). */
#include "config.h"
