/* What the ONTAP modules share (modules/ontaputil.h): the client for a
 * task from the run's pool, built from the netapp.ontap-style connection
 * arguments; the provenance text objects aicp creates carry; and the
 * field-level drift between what a task declared and the record ONTAP
 * returned, with sizes compared as bytes and enums as ONTAP compares them,
 * so that a second run of the same task is unchanged (the netapp.ontap
 * collection's most-reported bugs are spurious "changed" results). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "ontap.h"
#include "ontaputil.h"
#include "util.h"

/* A leading "~/" in a jump-host path is the user's home, as a shell
 * would read it. New string, or NULL (path NULL, or out of memory with
 * *oom set). */
static char *local_path(const char *path, int *oom)
{
    const char *home = getenv("HOME");
    struct aicp_buf b = AICP_BUF_INIT;
    char *out;

    if (path == NULL || path[0] == '\0')
        return NULL;
    if (path[0] == '~' && path[1] == '/' && home != NULL && home[0] != '\0') {
        if (aicp_buf_printf(&b, "%s/%s", home, path + 2) != 0) {
            aicp_buf_free(&b);
            *oom = 1;
            return NULL;
        }
        return aicp_buf_steal(&b);
    }
    if ((out = aicp_strdup(path)) == NULL)
        *oom = 1;
    return out;
}

int aicp_ou_client(struct aicp_ctx *ctx, const struct aicp_args *args, struct aicp_ontap **o,
                   struct aicp_err *err)
{
    struct aicp_ontap_config cfg = {0};
    char *cert = NULL, *key = NULL, *ca = NULL;
    int oom = 0, rc;

    *o = NULL;
    if (ctx == NULL || ctx->ontap == NULL)
        return aicp_err_set(err, AICP_EINVAL,
                            "this run has no ONTAP clients (the module runs on the jump host "
                            "against the ONTAP REST API)");
    cfg.hostname = aicp_args_str(args, "hostname");
    cfg.username = aicp_args_str(args, "username");
    cfg.password = aicp_args_str(args, "password");
    cert = local_path(aicp_args_str(args, "cert_filepath"), &oom);
    key = local_path(aicp_args_str(args, "key_filepath"), &oom);
    ca = local_path(aicp_args_str(args, "ca_file"), &oom);
    if (oom) {
        rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP client: out of memory");
        goto out;
    }
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.ca_file = ca;
    cfg.validate_certs = aicp_args_bool(args, "validate_certs", 1);
    cfg.use_http = !aicp_args_bool(args, "https", 1);
    rc = aicp_ontap_pool_get(ctx->ontap, &cfg, o, err);
out:
    free(cert);
    free(key);
    free(ca);
    return rc;
}

void aicp_ou_provenance(const struct aicp_ctx *ctx, char *buf, size_t cap)
{
    const char *site = ctx != NULL && ctx->site != NULL && ctx->site[0] != '\0' ? ctx->site : "-";
    const char *run =
        ctx != NULL && ctx->run_id != NULL && ctx->run_id[0] != '\0' ? ctx->run_id : "-";

    if (buf == NULL || cap == 0)
        return;
    snprintf(buf, cap, "aicp site=%s run=%s", site, run);
}

/* ---- drift ---------------------------------------------------------------- */

struct drift_keys {
    const char *const *size;
    const char *const *enums;
};

/* 1 when path is listed: by its whole dotted path ("space.snapshot.
 * reserve_percent"), or by its last key when the entry has no dot
 * ("size" covers "size" and "space.size"). */
static int listed(const char *const *keys, const char *path)
{
    const char *leaf = strrchr(path, '.');
    size_t i;

    leaf = leaf != NULL ? leaf + 1 : path;
    for (i = 0; keys != NULL && keys[i] != NULL; i++)
        if (strcmp(keys[i], path) == 0 ||
            (strchr(keys[i], '.') == NULL && strcmp(keys[i], leaf) == 0))
            return 1;
    return 0;
}

static int same(const json_t *w, const json_t *h, const char *path, const struct drift_keys *k);

/* Numbers compare by value: 10 and 10.0 are the same percentage. */
static int same_number(const json_t *w, const json_t *h)
{
    return json_is_number(w) && json_is_number(h) && json_number_value(w) == json_number_value(h);
}

/* Lists in ONTAP records are sets (aggregates, protocols, clients): each
 * wanted element must match a different element of have, in any order;
 * an object element matches on the fields it declares (so the uuid ONTAP
 * adds to {"name": "aggr1"} is not drift). */
static int same_list(const json_t *w, const json_t *h, const char *path, const struct drift_keys *k)
{
    size_t n = json_array_size(w), i, j;
    unsigned char *used;
    int ok = 1;

    if (n != json_array_size(h))
        return 0;
    if (n == 0)
        return 1;
    if ((used = calloc(n, 1)) == NULL)
        return json_equal(w, h);
    for (i = 0; i < n && ok; i++) {
        const json_t *we = json_array_get(w, i);
        ok = 0;
        for (j = 0; j < n && !ok; j++) {
            if (!used[j] && same(we, json_array_get(h, j), path, k)) {
                used[j] = 1;
                ok = 1;
            }
        }
    }
    free(used);
    return ok;
}

/* Whether wanted value w is what have holds (h present). */
static int same(const json_t *w, const json_t *h, const char *path, const struct drift_keys *k)
{
    if (listed(k->size, path)) {
        long long a = aicp_ontap_size(w), b = aicp_ontap_size(h);
        if (a >= 0 && b >= 0)
            return a == b;
    }
    if (json_is_string(w) && json_is_string(h) && listed(k->enums, path))
        return aicp_ontap_enum_eq(json_string_value(w), json_string_value(h));
    if (json_is_object(w) && json_is_object(h)) {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)w, key, v)
        {
            const json_t *hv = json_object_get(h, key);
            char child[512];
            snprintf(child, sizeof child, "%s%s%s", path, path[0] != '\0' ? "." : "", key);
            if (hv != NULL && !same(v, hv, child, k))
                return 0;
        }
        return 1;
    }
    if (json_is_array(w) && json_is_array(h))
        return same_list(w, h, path, k);
    if (same_number(w, h))
        return 1;
    return json_equal(w, h);
}

static int drift_walk(const json_t *wanted, const json_t *have, const char *prefix,
                      const struct drift_keys *k, json_t *before, json_t *after)
{
    const char *key;
    const json_t *w;
    int n = 0;

    json_object_foreach((json_t *)wanted, key, w)
    {
        const json_t *h = json_object_get(have, key);
        struct aicp_buf path = AICP_BUF_INIT;

        /* Absent from the record: the API did not return it (an older
         * version, a field not asked for), so nothing can be said. */
        if (h == NULL)
            continue;
        if ((prefix[0] != '\0' ? aicp_buf_printf(&path, "%s.%s", prefix, key)
                               : aicp_buf_puts(&path, key)) != 0) {
            aicp_buf_free(&path);
            continue;
        }
        if (json_is_object(w) && json_is_object(h) && json_object_size(w) > 0 &&
            !listed(k->size, path.data)) {
            n += drift_walk(w, h, path.data, k, before, after);
        } else if (!same(w, h, path.data, k)) {
            if (before != NULL)
                json_object_set(before, path.data, (json_t *)h);
            if (after != NULL)
                json_object_set(after, path.data, (json_t *)w);
            n++;
        }
        aicp_buf_free(&path);
    }
    return n;
}

int aicp_ou_drift(const json_t *wanted, const json_t *have, const char *const *size_keys,
                  const char *const *enum_keys, json_t *before, json_t *after)
{
    struct drift_keys k = {size_keys, enum_keys};

    if (!json_is_object(wanted) || !json_is_object(have))
        return 0;
    return drift_walk(wanted, have, "", &k, before, after);
}
