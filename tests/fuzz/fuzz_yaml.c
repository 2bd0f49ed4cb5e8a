/* Fuzz target for the YAML loader: any bytes must load or fail with
 * AICP_EINVAL and a message, never crash or leak. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aicp_srcmap *map = NULL;
    struct aicp_err err = {0};
    json_t *doc = NULL;
    if (aicp_srcmap_new(&map) != 0)
        return 0;
    int rc = aicp_yaml_load_string(&doc, (const char *)data, size, "fuzz.yml", map, &err);
    /* Errors must be invalid-input errors with a message; a !vault value
     * that cannot be decrypted fails as the vault does (AICP_EAUTH). */
    if (rc != 0 && ((rc != AICP_EINVAL && rc != AICP_EAUTH) || err.msg[0] == '\0') &&
        rc != AICP_ENOMEM)
        __builtin_trap();
    if (rc == 0 && json_is_object(doc))
        (void)aicp_srcmap_get(map, doc);
    json_decref(doc);
    aicp_srcmap_free(map);
    return 0;
}
