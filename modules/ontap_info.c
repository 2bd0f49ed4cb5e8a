/* The ontap_info module: facts about a cluster (the cluster itself, SVMs,
 * aggregates, volumes, export policies, SnapMirror relationships) read
 * over the REST API into the result key `ontap_info`, twice over: under
 * aicp's short keys (volumes: [...]) that this project's playbooks use,
 * and under na_ontap_rest_info's keys and shape ("storage/volumes":
 * {records: [...], num_records: n}) so that tasks written for the
 * netapp.ontap collection port over. A task registers them and later
 * tasks and templates use them. It never changes anything:
 * all of its work is in check, and diff never finds a change. Subsets are
 * named plainly (volumes) or as the collection names them
 * (storage/volumes, volume_info). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "ontap.h"
#include "ontaputil.h"
#include "util.h"

static const struct aicp_arg_spec info_args[] = {
    AICP_OU_CONN_ARGS,
    {.name = "gather_subset",
     .type = AICP_ARG_LIST,
     .def = "all",
     .help = "What to read: cluster, svms, aggregates, volumes, export_policies, snapmirror, or "
             "all. The collection's names (svm/svms, storage/volumes, volume_info...) work too."},
    {.name = "vserver",
     .type = AICP_ARG_STR,
     .aliases = "svm",
     .help = "Only this SVM's SVM record, volumes, export policies and relationships."},
    {.name = NULL},
};

/* One subset: its result key, its names, where it is read and which fields,
 * and the query field that filters it by SVM. */
struct info_subset {
    const char *key;
    const char *rest_key; /* na_ontap_rest_info's key */
    const char *names; /* '|'-separated aliases */
    const char *path;
    const char *fields;
    const char *svm_field; /* NULL: not filtered by the API */
};

static const struct info_subset subsets[] = {
    {"cluster", "cluster", "cluster|cluster_identity_info|cluster/cluster", "/api/cluster",
     "name,uuid,version", NULL},
    {"svms", "svm/svms", "svms|svm|svm/svms|vserver_info", "/api/svm/svms", "name,uuid,state", "name"},
    {"aggregates", "storage/aggregates", "aggregates|aggregate|storage/aggregates|aggregate_info",
     "/api/storage/aggregates", "name,uuid,state,space.block_storage.size,"
                                "space.block_storage.available",
     NULL},
    {"volumes", "storage/volumes", "volumes|volume|storage/volumes|volume_info", "/api/storage/volumes",
     "uuid,name,svm.name,style,size,state,type,aggregates.name,nas.path,nas.export_policy.name,"
     "snapshot_policy.name,space.snapshot.reserve_percent,guarantee.type,comment,"
     "clone.is_flexclone,clone.parent_volume.name",
     "svm.name"},
    {"export_policies", "protocols/nfs/export-policies",
     "export_policies|export_policy|protocols/nfs/export-policies|export_policy_info",
     "/api/protocols/nfs/export-policies", "id,name,svm.name", "svm.name"},
    {"snapmirror", "snapmirror/relationships", "snapmirror|snapmirror/relationships|snapmirror_info",
     "/api/snapmirror/relationships", "uuid,source.path,destination.path,state,healthy,lag_time,"
                                      "policy.name",
     NULL},
};

#define NSUBSETS (sizeof(subsets) / sizeof(subsets[0]))

static int name_in(const char *names, const char *s)
{
    size_t n = strlen(s);
    const char *p = names;
    while (p != NULL && *p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* Which subsets gather_subset asks for, into want[NSUBSETS]. */
static int pick(const struct aicp_args *args, int *want, struct aicp_err *err)
{
    const json_t *gs = aicp_args_get(args, "gather_subset");
    size_t i, k;
    json_t *v;
    memset(want, 0, NSUBSETS * sizeof(*want));
    if (gs == NULL || json_array_size(gs) == 0) {
        for (k = 0; k < NSUBSETS; k++)
            want[k] = 1;
        return 0;
    }
    json_array_foreach(gs, i, v) {
        const char *s = json_string_value(v);
        int found = 0;
        if (s == NULL)
            return aicp_err_set(err, AICP_EINVAL, "gather_subset[%zu]: a subset name", i);
        for (k = 0; k < NSUBSETS; k++) {
            if (strcmp(s, "all") == 0 || name_in(subsets[k].names, s)) {
                want[k] = 1;
                found = 1;
            }
        }
        if (!found)
            return aicp_err_set(err, AICP_EINVAL,
                                "gather_subset: unknown subset '%s' (cluster, svms, aggregates, "
                                "volumes, export_policies, snapmirror, all)",
                                s);
    }
    return 0;
}

/* A relationship belongs to an SVM when either end is in it. */
static int in_svm(const json_t *rel, const char *svm)
{
    size_t n = strlen(svm);
    for (int e = 0; e < 2; e++) {
        const char *p = json_string_value(
            json_object_get(json_object_get(rel, e ? "destination" : "source"), "path"));
        if (p != NULL && strncmp(p, svm, n) == 0 && p[n] == ':')
            return 1;
    }
    return 0;
}

static int info_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    struct aicp_ontap *o = NULL;
    const char *svm = aicp_args_str(args, "vserver");
    json_t *info = json_object(), *v = NULL;
    int want[NSUBSETS];
    int rc;

    *current = NULL;
    if (info == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if ((rc = pick(args, want, err)) != 0 || (rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    for (size_t k = 0; k < NSUBSETS; k++) {
        const struct info_subset *s = &subsets[k];
        struct aicp_buf q = AICP_BUF_INIT;
        if (!want[k])
            continue;
        v = NULL;
        if (strcmp(s->key, "cluster") == 0) {
            rc = aicp_ontap_get(o, s->path, s->fields, &v, err);
        } else {
            if (svm != NULL && s->svm_field != NULL && aicp_ontap_qadd(&q, s->svm_field, svm)) {
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
            rc = aicp_ontap_list(o, s->path, q.data, s->fields, &v, err);
            aicp_buf_free(&q);
            if (rc == 0 && svm != NULL && strcmp(s->key, "snapmirror") == 0) {
                json_t *keep = json_array();
                size_t i;
                json_t *r;
                json_array_foreach(v, i, r)
                    if (in_svm(r, svm))
                        json_array_append(keep, r);
                json_decref(v);
                v = keep;
            }
        }
        if (rc != 0) {
            aicp_err_prefix(err, "ontap_info %s", s->key);
            goto out;
        }
        if (json_is_array(v))
            json_object_set_new(info, s->rest_key,
                                json_pack("{s:O, s:I}", "records", v, "num_records",
                                          (json_int_t)json_array_size(v)));
        json_object_set_new(info, s->key, v ? v : json_null());
    }
    if (ctx->result != NULL)
        json_object_set(ctx->result, "ontap_info", info);
    *current = info;
    info = NULL;
out:
    json_decref(info);
    return rc;
}

static const struct aicp_module_ops info_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = info_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_ontap_info = {
    .name = "ontap_info",
    .summary = "Facts about an ONTAP cluster: cluster, SVMs, aggregates, volumes, policies",
    .args = info_args,
    .flags = AICP_MOD_NEEDS_ONTAP,
    .ops = &info_ops,
};
