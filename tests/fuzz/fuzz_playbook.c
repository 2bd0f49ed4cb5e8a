/* Fuzz target for playbook loading: writes the input to a private temp
 * file and loads it as a playbook, then runs the pre-run variable check on
 * what loaded (against an empty inventory). Any input must give either a
 * playbook or an error with a message, never a crash or a leak. Imports in
 * the input resolve relative to the temp directory, where nothing else
 * exists. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "inventory.h"
#include "playbook.h"
#include "precheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/aicp-fuzz-pb-XXXXXX";
    char path[sizeof(dir) + 16];
    struct aicp_playbook *pb = NULL;
    struct aicp_err err = {0};
    FILE *f;

    if (mkdtemp(dir) == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/play.yml", dir);
    f = fopen(path, "wb");
    if (f != NULL) {
        int ok = fwrite(data, 1, size, f) == size;
        if (fclose(f) == 0 && ok) {
            int rc = aicp_playbook_load(&pb, path, &err);
            if (rc != 0 && (pb != NULL || err.msg[0] == '\0'))
                abort(); /* an error must come with a message and no playbook */
            struct aicp_inventory *inv = NULL;
            if (rc == 0 && aicp_inventory_new(&inv, NULL) == 0) {
                struct aicp_err perr = {0};
                if (aicp_precheck_playbook(pb, inv, NULL, &perr) != 0 && perr.msg[0] == '\0')
                    abort();
                aicp_inventory_free(inv);
            }
            aicp_playbook_free(pb);
        }
        unlink(path);
    }
    rmdir(dir);
    return 0;
}
