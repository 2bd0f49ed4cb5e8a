/* aicp's command line (in progress). */
#include "config.h"

#include <stdio.h>

int main(void)
{
    puts("aicp " PACKAGE_VERSION);
    return 0;
}
