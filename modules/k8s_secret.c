/* The secret module: a Kubernetes Secret from `data` (base64, as the API
 * holds it) and `string_data` (plain text, encoded here so that a re-run
 * compares equal to the server's `data`), present or absent. Both are
 * secret arguments: the executor registers them for masking and hides the
 * diff; kubeutil masks Secret data in results and drift on its own, so
 * a change says only which key changed. A Secret marked immutable cannot
 * take new data in place: that drift needs `replace`. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

static const struct aicp_arg_spec secret_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "The Secret's name."},
    {.name = "namespace",
     .type = AICP_ARG_STR,
     .help = "Its namespace (default: the context's namespace, else default)."},
    {.name = "type", .type = AICP_ARG_STR, .def = "Opaque", .help = "The Secret's type."},
    {.name = "data",
     .type = AICP_ARG_DICT,
     .secret = 1,
     .help = "Keys and base64-encoded values, as the API's `data`."},
    {.name = "string_data",
     .type = AICP_ARG_DICT,
     .secret = 1,
     .help = "Keys and plain-text values; encoded into `data` (a key in both: this wins)."},
    {.name = "labels", .type = AICP_ARG_DICT, .help = "Labels of the Secret."},
    {.name = "annotations", .type = AICP_ARG_DICT, .help = "Annotations of the Secret."},
    {.name = "immutable",
     .type = AICP_ARG_BOOL,
     .help = "Mark the Secret immutable (its data can then only change by replacement)."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "Whether the Secret exists."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Server-side apply with force: take over fields another manager owns."},
    {.name = "replace",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Delete and re-create the Secret when its type changes or an immutable Secret's "
             "data changes (else that change fails)."},
    {.name = NULL},
};

/* Fields the API refuses to change; for an immutable Secret, its data too. */
static const char *const secret_immutable[] = {"type", NULL};

static int b64_encode(struct aicp_buf *b, const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        if (aicp_buf_append(b, q, 4) != 0)
            return AICP_ENOMEM;
    }
    return 0;
}

/* A value of data or string_data as text. Numbers and booleans are
 * written as YAML would read them back; the error never shows a value. */
static int value_text(const json_t *v, char *num, size_t numlen, const char **s, size_t *n)
{
    if (json_is_string(v)) {
        *s = json_string_value(v);
        *n = json_string_length(v);
        return 0;
    }
    if (json_is_integer(v))
        snprintf(num, numlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(num, numlen, "%.17g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(num, numlen, "%s", json_is_true(v) ? "true" : "false");
    else
        return AICP_EINVAL;
    *s = num;
    *n = strlen(num);
    return 0;
}

/* The manifest's `data`: data as given, string_data encoded. */
static int build_data(json_t *manifest, const struct aicp_args *args, struct aicp_err *err)
{
    const json_t *data = aicp_args_get(args, "data");
    const json_t *sdata = aicp_args_get(args, "string_data");
    json_t *out = json_object();
    const char *k;
    json_t *v;
    char num[64];
    const char *s;
    size_t n;
    int rc = 0;

    if (out == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    json_object_foreach((json_t *)data, k, v) {
        if (value_text(v, num, sizeof(num), &s, &n) != 0) {
            rc = aicp_err_set(err, AICP_EINVAL, "data.%s: the value must be a base64 string", k);
            goto out;
        }
        json_object_set_new(out, k, json_stringn(s, n));
    }
    json_object_foreach((json_t *)sdata, k, v) {
        struct aicp_buf b = AICP_BUF_INIT;
        if (value_text(v, num, sizeof(num), &s, &n) != 0) {
            rc = aicp_err_set(err, AICP_EINVAL, "string_data.%s: the value must be a string", k);
            goto out;
        }
        if (b64_encode(&b, (const unsigned char *)s, n) != 0) {
            aicp_buf_free_secret(&b);
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        json_object_set_new(out, k, json_stringn(b.data ? b.data : "", b.len));
        aicp_buf_free_secret(&b);
    }
    if (data != NULL || sdata != NULL)
        json_object_set(manifest, "data", out);
out:
    json_decref(out);
    return rc;
}

/* An immutable Secret (live) takes no new data in place: mark that drift
 * as a replacement, as kubeutil does for the fields it is told about. */
static void immutable_live(json_t *current)
{
    size_t i, j;
    json_t *e, *d;
    json_array_foreach(json_object_get(current, "objects"), i, e) {
        if (!json_is_true(json_object_get(json_object_get(e, "live"), "immutable")))
            continue;
        json_t *imm = json_object_get(e, "immutable");
        json_array_foreach(json_object_get(e, "drift"), j, d) {
            const char *p = json_string_value(json_object_get(d, "path"));
            if (p == NULL || !(strncmp(p, "data", 4) == 0 || strcmp(p, "immutable") == 0))
                continue;
            json_object_set_new(e, "replace", json_true());
            if (json_is_array(imm))
                json_array_append_new(imm, json_string(p));
        }
    }
}

static int secret_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                        struct aicp_err *err)
{
    const char *state = aicp_args_str(args, "state");
    struct aicp_ku_opts o = {
        .absent = state != NULL && strcmp(state, "absent") == 0,
        .immutable = secret_immutable,
        .allow_replace = aicp_args_bool(args, "replace", 0),
        .force = aicp_args_bool(args, "force", 0),
    };
    json_t *m = aicp_ku_manifest("v1", "Secret", aicp_args_str(args, "namespace"),
                                 aicp_args_str(args, "name"));
    int rc;

    if (m == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (!o.absent) {
        const char *type = aicp_args_str(args, "type");
        const json_t *imm = aicp_args_get(args, "immutable");
        if ((rc = aicp_ku_set_meta(m, args, err)) != 0 || (rc = build_data(m, args, err)) != 0) {
            json_decref(m);
            return rc;
        }
        if (type != NULL)
            json_object_set_new(m, "type", json_string(type));
        if (imm != NULL)
            json_object_set_new(m, "immutable", json_boolean(aicp_args_bool(args, "immutable", 0)));
    }
    if ((rc = aicp_ku_check(ctx, args, json_pack("[o]", m), &o, current, err)) != 0)
        return rc;
    immutable_live(*current);
    return 0;
}

static const struct aicp_module_ops secret_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = secret_check,
    .diff = aicp_ku_diff,
    .apply = aicp_ku_apply,
};

const struct aicp_module aicp_mod_secret = {
    .name = "secret",
    .summary = "Kubernetes Secret (data never shown)",
    .args = secret_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &secret_ops,
};
