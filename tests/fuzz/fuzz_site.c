/* Fuzz target for the site loader: any bytes must load (and select) or
 * fail with an invalid-input error and a message; never crash or leak. The
 * modules are stand-ins that take any argument, so that the graph (ONTAP
 * edges included) is built for whatever the input names, and the
 * cross-layer comparison runs for every PVC. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "secret.h"
#include "site.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct aicp_arg_spec args[] = {
    {.name = "name", .type = AICP_ARG_STR},
    {.name = "namespace", .type = AICP_ARG_STR},
    {.name = "password", .type = AICP_ARG_STR, .secret = 1},
    {.name = "definition", .type = AICP_ARG_RAW},
    {.name = "default", .type = AICP_ARG_BOOL},
    {.name = "hostname", .type = AICP_ARG_STR},
    {.name = "ca_file", .type = AICP_ARG_STR},
    {.name = "validate_certs", .type = AICP_ARG_RAW},
    {.name = "https", .type = AICP_ARG_RAW},
    {0},
};

static const struct aicp_module mods[] = {
    {.name = "namespace", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "secret", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "trident_backend", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "storage_class", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "pvc", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "k8s", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "k8s_job", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "ontap_export_policy", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "ontap_volume", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "ontap_snapshot", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "ontap_clone", .args = args, .flags = AICP_MOD_ANY_ARGS},
    {.name = "ontap_snapmirror", .args = args, .flags = AICP_MOD_ANY_ARGS},
};

static const struct aicp_module *find(const char *name)
{
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
        if (strcmp(mods[i].name, name) == 0)
            return &mods[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aicp_secrets *secrets = NULL;
    struct aicp_site *s = NULL;
    struct aicp_err err = {0};
    if (aicp_secrets_new(&secrets) != 0)
        return 0;
    json_t *ev = json_pack("{s:s}", "vault_ontap_password", "fuzz-pw");
    struct aicp_site_load_opts o = {.find_module = find, .secrets = secrets, .extra_vars = ev};
    int rc = aicp_site_load_string(&s, (const char *)data, size, "fuzz.site.yml", &o, &err);
    if (rc != 0 &&
        ((rc != AICP_EINVAL && rc != AICP_EUNDEF && rc != AICP_EAUTH) || err.msg[0] == '\0') &&
        rc != AICP_ENOMEM)
        __builtin_trap(); /* errors must be invalid-input errors with a message */
    if (rc == 0) {
        unsigned char *sel = calloc(s->nres + 1, 1);
        json_t *only = aicp_site_split_list(NULL, "pvcs,trident");
        json_t *limit = aicp_site_split_list(NULL, "*a*");
        if (sel != NULL)
            (void)aicp_site_select(sel, s, only, limit, &err);
        for (size_t i = 0; i < s->nres; i++) {
            (void)aicp_site_find(s, s->res[i].id);
            if (strcmp(s->res[i].mod->name, "pvc") != 0)
                continue;
            /* the cross-layer comparison, against a volume that drifted */
            json_t *want = NULL, *f = json_array();
            json_t *vol = json_pack("{s:s, s:s, s:{s:{s:s}}}", "size", "1TB", "state", "offline",
                                    "nas", "export_policy", "name", "x");
            if (aicp_site_cross_want(&want, s, i, "trident_pvc_1") == 0 && f != NULL)
                (void)aicp_site_cross_compare(f, want, vol);
            json_decref(want);
            json_decref(vol);
            json_decref(f);
        }
        free(sel);
        json_decref(only);
        json_decref(limit);
    }
    aicp_site_free(s);
    json_decref(ev);
    aicp_secrets_free(secrets);
    return 0;
}
