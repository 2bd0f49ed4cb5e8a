/* Fuzz target for inventories: the input is written to a temporary file and
 * loaded both as INI (".ini") and as YAML (".yml"), then listed, graphed
 * and matched; nothing may crash. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "inventory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const char *path)
{
    struct aicp_inventory *inv = NULL;
    struct aicp_err err = {0};
    json_t *out = NULL;
    char *graph = NULL;
    if (aicp_inventory_new(&inv, NULL) != 0)
        return;
    if (aicp_inventory_load(inv, path, &err) == 0) {
        if (aicp_inventory_list_json(&out, inv, &err) == 0)
            json_decref(out);
        if (aicp_inventory_graph(&graph, inv, "all", 1, &err) == 0)
            free(graph);
        if (aicp_inventory_match(&out, inv, "all:!ungrouped:&*[0:3]", &err) == 0)
            json_decref(out);
        if (aicp_inventory_host_count(inv) > 0 &&
            aicp_inventory_host_vars(&out, inv, aicp_inventory_host_name(inv, 0), &err) == 0)
            json_decref(out);
    }
    aicp_inventory_free(inv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const suffixes[] = {".ini", ".yml"};
    for (size_t i = 0; i < 2; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/tmp/aicp-fuzz-inv-%ld-XXXXXX%s", (long)getpid(), suffixes[i]);
        int fd = mkstemps(path, 4);
        if (fd < 0)
            return 0;
        ssize_t w = write(fd, data, size);
        close(fd);
        if (w == (ssize_t)size)
            exercise(path);
        unlink(path);
    }
    return 0;
}
