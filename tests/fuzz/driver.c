/* A plain main() for the fuzz targets, so `make check` replays the corpus in
 * tests/data/fuzz/ under the normal (and sanitizer) builds; libFuzzer builds
 * link the same targets without this file. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *data = NULL;
        size_t len = 0;
        if (aicp_read_file(&data, &len, argv[i], NULL) != 0) {
            fprintf(stderr, "%s: cannot read\n", argv[i]);
            return 1;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        free(data);
    }
    return 0;
}
