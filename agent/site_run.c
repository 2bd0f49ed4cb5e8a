/* Running a site: `aicp apply`, `aicp plan` and `aicp drift`. The loaded
 * graph (agent/site.c) is walked by a bounded pool of worker threads: a
 * resource starts when everything it depends on is done, a failure skips
 * what depends on it (and nothing else), and each resource goes through
 * the executor's life cycle: check -> diff -> (apply -> verify). Results
 * are printed as each one is known, in Ansible's shape (a banner per
 * resource, a recap), with the run's secrets masked; `drift` also lists
 * every drifted field, checks the ONTAP volume behind each Trident PVC
 * (agent/site_ontap.c) and writes a report. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "http.h"
#include "kube.h"
#include "module.h"
#include "ontap.h"
#include "output.h"
#include "secret.h"
#include "report.h"
#include "site.h"
#include "taskutil.h"
#include "template.h"
#include "util.h"
#include "vault.h"
#include "yaml.h"

#define EXIT_USAGE 64

enum { R_PENDING = 0, R_RUNNING, R_DONE };

/* One resource's run. */
struct rstate {
    int state;
    int selected;
    enum aicp_status st;
    int blocked;       /* failed, or skipped because something it needs failed */
    int pending;       /* check mode: it, or something it needs, would change */
    int replace;       /* an immutable field drifted */
    char *changed_by;  /* "site=NAME run=ID" of the aicp run that last changed it, or NULL */
    const char *cause; /* the failed resource behind a skip (an id) */
    json_t *result;
    json_t *fields; /* drifted fields: [{object, path, want, have}] */
    char *diff_text;
    double secs;
};

struct runner {
    struct aicp_site *s;
    const struct aicp_site_run_opts *o;
    struct rstate *st;
    size_t left; /* selected resources not done */
    int check;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t out_mu;
    struct aicp_output *out;
    FILE *fp;
    struct aicp_http *http;
    struct aicp_kube_pool *pool;
    struct aicp_ontap_pool *ontap;
    char run_id[64]; /* provenance of what the run creates */
    /* plan on nodes that have no cluster yet: the Kubernetes resources are
     * listed as what would be made, without asking a cluster. */
    int no_cluster;
    int cluster_ran, cluster_status; /* the cluster layer (SSH) */
    json_t *cross;   /* drift: the cross-layer checks, one entry per PVC of the run */
    size_t ncross_drift, ncross_fail, ncross_skip;
    struct aicp_stats stats;
};

static int has_arg(const struct aicp_module *mod, const char *name)
{
    for (const struct aicp_arg_spec *a = mod->args; a && a->name; a++)
        if (strcmp(a->name, name) == 0)
            return 1;
    return 0;
}

/* ---- drifted fields -------------------------------------------------------- */

static void add_field(json_t *acc, const char *object, const char *path, const json_t *want,
                      const json_t *have)
{
    json_t *f = json_pack("{s:s, s:s}", "object", object, "path", path);
    if (f == NULL)
        return;
    if (want)
        json_object_set(f, "want", (json_t *)want);
    if (have)
        json_object_set(f, "have", (json_t *)have);
    json_array_append_new(acc, f);
}

/* The kube modules key before/after by object ("Kind/ns/name"), then by
 * field path; a value that is not an object stands for the whole object. */
static void fields_from_change(json_t *acc, const json_t *before, const json_t *after)
{
    const char *obj;
    json_t *v;
    json_t *objs = json_object();
    if (objs == NULL)
        return;
    json_object_foreach((json_t *)before, obj, v)
    {
        json_object_set_new(objs, obj, json_true());
    }
    json_object_foreach((json_t *)after, obj, v)
    {
        json_object_set_new(objs, obj, json_true());
    }
    json_object_foreach(objs, obj, v)
    {
        const json_t *b = json_object_get(before, obj), *a = json_object_get(after, obj);
        if (json_is_object(b) || json_is_object(a)) {
            const char *path;
            json_t *x;
            json_t *paths = json_object();
            json_object_foreach((json_t *)b, path, x)
            {
                json_object_set_new(paths, path, json_true());
            }
            json_object_foreach((json_t *)a, path, x)
            {
                json_object_set_new(paths, path, json_true());
            }
            json_object_foreach(paths, path, x)
            {
                add_field(acc, obj, path, json_object_get(a, path), json_object_get(b, path));
            }
            json_decref(paths);
        } else {
            add_field(acc, obj, "", a, b);
        }
    }
    json_decref(objs);
}

/* aicp_ku_check's current state: {"objects": [{"ref", "live", "drift",
 * "replace"}]}. Used when a diff refused (a replacement not allowed). */
static int fields_from_current(json_t *acc, const json_t *current)
{
    size_t i, j;
    const json_t *o, *d;
    int replace = 0;
    json_array_foreach(json_object_get(current, "objects"), i, o)
    {
        const char *ref = json_string_value(json_object_get(o, "ref"));
        if (json_is_true(json_object_get(o, "replace")))
            replace = 1;
        if (ref == NULL)
            continue;
        if (json_is_null(json_object_get(o, "live"))) {
            json_t *want = json_string("present"), *have = json_string("absent");
            add_field(acc, ref, "", want, have);
            json_decref(want);
            json_decref(have);
            continue;
        }
        json_array_foreach(json_object_get(o, "drift"), j, d)
        {
            const char *p = json_string_value(json_object_get(d, "path"));
            add_field(acc, ref, p ? p : "", json_object_get(d, "want"), json_object_get(d, "have"));
        }
    }
    return replace;
}

static void value_text(struct aicp_buf *b, const json_t *v)
{
    /* The kube modules give a missing field as null. */
    if (v == NULL || json_is_null(v)) {
        aicp_buf_puts(b, "(absent)");
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    aicp_buf_puts(b, s ? s : "?");
    free(s);
}

/* "    StorageClass/x: metadata.annotations[...]: want "true", have (absent)" */
static void fields_text(struct aicp_buf *b, const json_t *fields, int secret, const char *indent)
{
    size_t i;
    const json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *path = json_string_value(json_object_get(f, "path"));
        aicp_buf_printf(b, "%s%s", indent, json_string_value(json_object_get(f, "object")));
        if (path && *path)
            aicp_buf_printf(b, ": %s", path);
        const char *mgr = json_string_value(json_object_get(f, "manager"));
        if (secret) {
            aicp_buf_puts(b, ": differs (values hidden: secret)");
            if (mgr)
                aicp_buf_printf(b, " (set by field manager %s)", mgr);
            aicp_buf_puts(b, "\n");
            continue;
        }
        aicp_buf_puts(b, ": want ");
        value_text(b, json_object_get(f, "want"));
        aicp_buf_puts(b, ", have ");
        value_text(b, json_object_get(f, "have"));
        if (mgr)
            aicp_buf_printf(b, " (set by field manager %s)", mgr);
        aicp_buf_puts(b, "\n");
    }
}

/* "    last changed by aicp site=X run=Y" */
static void changed_by_text(struct aicp_buf *b, const char *by, const char *indent)
{
    if (by != NULL)
        aicp_buf_printf(b, "%slast changed by aicp %s\n", indent, by);
}

/* The objects the module would replace (delete and create): "A, B". */
static void replaced_refs(struct aicp_buf *b, const json_t *current)
{
    size_t i;
    const json_t *o;
    json_array_foreach(json_object_get(current, "objects"), i, o)
    {
        const char *ref = json_string_value(json_object_get(o, "ref"));
        if (ref && json_is_true(json_object_get(o, "replace")))
            aicp_buf_printf(b, "%s%s", b->len ? ", " : "", ref);
    }
}

/* ---- one resource ------------------------------------------------------ */

static int any_pending_dep(const struct runner *R, const struct aicp_site_res *r)
{
    for (size_t d = 0; d < r->ndeps; d++)
        if (R->st[r->deps[d]].pending)
            return 1;
    return 0;
}

/* Kubeflow's gate (helm_releases' requires_default_storage_class): its
 * claims name no class, so the cluster must have exactly one default. */
static int default_sc_gate(struct runner *R, struct aicp_err *err)
{
    struct aicp_kube *k = NULL;
    json_t *items = NULL;
    size_t i, found = 0;
    json_t *sc;
    int rc = aicp_kube_pool_get(R->pool, NULL, NULL, &k, err);
    if (rc == 0)
        rc = aicp_kube_list(k, "storage.k8s.io/v1", "StorageClass", NULL, NULL, &items, err);
    if (rc != 0)
        goto out;
    json_array_foreach(items, i, sc)
    {
        const json_t *ann = json_object_get(json_object_get(sc, "metadata"), "annotations");
        const char *d =
            json_string_value(json_object_get(ann, "storageclass.kubernetes.io/is-default-class"));
        if (d != NULL && strcmp(d, "true") == 0)
            found++;
    }
    if (found != 1)
        rc = aicp_err_set(err, AICP_EFAILED,
                          "Kubeflow needs exactly one default StorageClass; found %zu", found);
out:
    json_decref(items);
    return rc;
}

/* Modules that run a Kubernetes client of their own (helm_release) get the
 * run's kubeconfig and context as arguments: --kubeconfig and --context
 * win over the site's kubernetes section. The others use the run's pool. */
static void fill_kube_args(const struct runner *R, json_t *raw, const struct aicp_module *mod)
{
    const char *kc = R->o->kubeconfig ? R->o->kubeconfig : R->s->kubeconfig;
    const char *cx = R->o->context ? R->o->context : R->s->context;
    if (mod->flags & AICP_MOD_NEEDS_KUBE)
        return;
    if (kc && has_arg(mod, "kubeconfig") && json_object_get(raw, "kubeconfig") == NULL)
        json_object_set_new(raw, "kubeconfig", json_string(kc));
    if (cx && has_arg(mod, "context") && json_object_get(raw, "context") == NULL)
        json_object_set_new(raw, "context", json_string(cx));
}

static void run_one(struct runner *R, size_t idx)
{
    struct aicp_site *s = R->s;
    const struct aicp_site_res *r = &s->res[idx];
    struct rstate *st = &R->st[idx];
    const struct aicp_module *mod = r->mod;
    struct aicp_err err = {0};
    struct aicp_args args = {0};
    struct aicp_change *change = NULL;
    json_t *current = NULL;
    struct aicp_buf repl = AICP_BUF_INIT; /* the objects replaced (delete and create) */
    json_t *raw = json_deep_copy(r->args);
    json_t *result = json_object();
    int rc, diff_failed = 0;
    double t0 = aicp_now();

    st->st = AICP_ST_OK;
    st->fields = json_array();
    if (raw == NULL || result == NULL || st->fields == NULL) {
        rc = aicp_err_set(&err, AICP_ENOMEM, "out of memory");
        goto fail;
    }
    if (R->o->allow_replace && has_arg(mod, "replace"))
        json_object_set_new(raw, "replace", json_true());
    /* Who changes it: the ONTAP modules stamp their comment with it. */
    if (has_arg(mod, "provenance") && json_object_get(raw, "provenance") == NULL) {
        char prov[512];
        snprintf(prov, sizeof(prov), "site=%s run=%s", s->name, R->run_id);
        json_object_set_new(raw, "provenance", json_string(prov));
    }
    /* --force-conflicts / kubernetes.force_conflicts: server-side apply
     * takes the fields other managers own. Only the Kubernetes modules'
     * force means that (helm's would recreate resources). drift only dry
     * runs, where a field another manager took is drift, not an error. */
    int force = R->o->force_conflicts || s->force_conflicts || R->o->mode == AICP_SITE_DRIFT;
    if (force && (mod->flags & AICP_MOD_NEEDS_KUBE) &&
        has_arg(mod, "force") && json_object_get(raw, "force") == NULL)
        json_object_set_new(raw, "force", json_true());
    if (R->o->teardown)
        json_object_set_new(raw, "state", json_string("absent"));
    if (R->no_cluster && strncmp(mod->name, "ontap_", 6) != 0) {
        st->st = AICP_ST_CHANGED;
        json_object_set_new(result, "msg",
                            json_string("would be made once the cluster exists (the cluster "
                                        "layer above creates it)"));
        json_object_set_new(result, "_aicp_show", json_integer(1));
        rc = 0;
        goto fail;
    }
    fill_kube_args(R, raw, mod);
    if ((rc = aicp_args_validate(&args, mod, raw, 0, &err)) != 0)
        goto fail;
    if (r->needs_default_sc && (rc = default_sc_gate(R, &err)) != 0)
        goto fail;
    struct aicp_ctx ctx = {
        .host = s->name,
        .vars = s->vars,
        .search_dir = s->dir,
        .result = result,
        .kube = R->pool,
        .ontap = R->ontap,
        .run_id = R->run_id,
        .site = s->name,
    };
    if (mod->ops == NULL || mod->ops->check == NULL || mod->ops->diff == NULL) {
        rc = aicp_err_set(&err, AICP_EFAILED, "module '%s' is not implemented", mod->name);
        goto fail;
    }
    if ((rc = mod->ops->check(&ctx, &args, &current, &err)) != 0)
        goto fail;
    rc = mod->ops->diff(current, &args, &change, &err);
    if (rc != 0) {
        /* A replacement that is not allowed: plan and drift report it (the
         * module's message says what to do); apply fails with it. */
        st->replace = fields_from_current(st->fields, current);
        if (!R->check || !st->replace)
            goto fail;
        diff_failed = 1;
        st->st = AICP_ST_CHANGED;
        json_object_set_new(result, "msg", json_string(err.msg));
        json_object_set_new(result, "replace", json_true());
        rc = 0;
    } else {
        fields_from_change(st->fields, change->before, change->after);
        if (json_array_size(st->fields) == 0 && change->needed)
            st->replace = fields_from_current(st->fields, current);
        else if (change->needed) {
            json_t *scratch = json_array();
            st->replace = scratch && fields_from_current(scratch, current);
            json_decref(scratch);
        }
        if (st->replace)
            json_object_set_new(result, "replace", json_true());
    }
    st->changed_by = aicp_site_changed_by(result, current);
    if (st->changed_by)
        json_object_set_new(result, "last_changed_by", json_string(st->changed_by));
    if (R->o->mode == AICP_SITE_DRIFT) {
        struct aicp_buf b = AICP_BUF_INIT;
        if (json_array_size(st->fields) > 0 && (mod->flags & AICP_MOD_NEEDS_KUBE))
            aicp_site_field_managers(st->fields, current, R->pool);
        fields_text(&b, st->fields, r->secret, "    ");
        if (b.len)
            changed_by_text(&b, st->changed_by, "    ");
        st->diff_text = b.len ? aicp_buf_steal(&b) : NULL;
        aicp_buf_free(&b);
    } else if (diff_failed) {
        struct aicp_buf b = AICP_BUF_INIT;
        aicp_buf_puts(&b, "replacement needed:\n");
        fields_text(&b, st->fields, r->secret, "    ");
        st->diff_text = aicp_buf_steal(&b);
    } else {
        st->diff_text = aicp_task_change_diff(change, r->secret);
    }
    if (change && (change->before || change->after) && !r->secret)
        json_object_set_new(
            result, "diff",
            json_pack("{s:O?, s:O?}", "before", change->before, "after", change->after));
    if (!diff_failed && change->needed && st->replace)
        replaced_refs(&repl, current);
    if (diff_failed) {
        /* reported above */
    } else if (change->needed && R->check) {
        st->st = AICP_ST_CHANGED;
        aicp_task_update_from(result, json_object_get(change->plan, "result"));
        json_object_del(result, "replaced");
        if (repl.len && R->o->mode != AICP_SITE_DRIFT) {
            /* Allowed (replace: true or --allow-replace): say it, the
             * diff alone reads as an edit in place. */
            struct aicp_buf m = AICP_BUF_INIT, d = AICP_BUF_INIT;
            aicp_buf_printf(&m, "must be replaced (delete and create): %s", repl.data);
            aicp_buf_printf(&d, "%s\n%s", m.data ? m.data : "",
                            st->diff_text ? st->diff_text : "");
            json_object_set_new(result, "msg", json_string(m.data ? m.data : ""));
            json_object_set_new(result, "replace_needed", json_true());
            json_object_set_new(result, "_aicp_show", json_integer(1));
            free(st->diff_text);
            st->diff_text = aicp_buf_steal(&d);
            aicp_buf_free(&m);
            aicp_buf_free(&d);
        }
    } else if (change->needed) {
        change->args = &args;
        int wrote = 0;
        rc = aicp_task_apply(mod, &ctx, change, result, &wrote, &err);
        /* A module that wrote and then failed (a wait timed out) still
         * changed something: say so, as a command that ran and failed. */
        if (rc != 0 && wrote)
            json_object_set_new(result, "_aicp_wrote", json_true());
        if (rc != 0)
            goto fail;
        st->st = AICP_ST_CHANGED;
        if (repl.len || json_is_true(json_object_get(result, "replaced")) ||
            json_array_size(json_object_get(result, "replaced")) > 0) {
            struct aicp_buf m = AICP_BUF_INIT;
            aicp_buf_printf(&m, "replaced (deleted and created): %s",
                            repl.len ? repl.data : r->label);
            json_object_set_new(result, "msg", json_string(m.data ? m.data : "replaced"));
            json_object_set_new(result, "_aicp_show", json_integer(1));
            aicp_buf_free(&m);
        }
        /* What aicp just changed carries this run's stamp now. */
        free(st->changed_by);
        st->changed_by = NULL;
        json_object_del(result, "last_changed_by");
        if ((rc = aicp_task_verify(mod, &ctx, &args, change, &err)) != 0)
            goto fail;
    }
    rc = 0;
fail:
    if (rc != 0) {
        pthread_mutex_lock(&R->mu);
        int pending = R->check && any_pending_dep(R, r);
        pthread_mutex_unlock(&R->mu);
        if (pending) {
            /* Something it needs does not exist yet, so the server could
             * not judge this one: it will be made after that is. */
            st->st = AICP_ST_CHANGED;
            aicp_err_prefix(&err, "would be made once what it depends on is; the server cannot "
                                  "check it before that");
            /* Say why on the terminal too, as debug's results are. */
            if (result)
                json_object_set_new(result, "_aicp_show", json_integer(1));
        } else {
            st->st = AICP_ST_FAILED;
            st->blocked = 1;
        }
        if (result)
            json_object_set_new(result, "msg", json_string(err.msg));
    }
    if (result) {
        json_object_set_new(result, "changed",
                            json_boolean(st->st == AICP_ST_CHANGED ||
                                         json_is_true(json_object_get(result, "_aicp_wrote"))));
        json_object_del(result, "_aicp_wrote");
        if (st->st == AICP_ST_FAILED)
            json_object_set_new(result, "failed", json_true());
    }
    if (st->st == AICP_ST_CHANGED && R->check)
        st->pending = 1;
    st->result = result;
    st->secs = aicp_now() - t0;
    aicp_change_free(change);
    json_decref(current);
    json_decref(raw);
    aicp_args_clear(&args);
    aicp_buf_free(&repl);
}

/* ---- output ----------------------------------------------------------------- */

static void print_result(struct runner *R, size_t idx)
{
    const struct aicp_site_res *r = &R->s->res[idx];
    struct rstate *st = &R->st[idx];
    pthread_mutex_lock(&R->out_mu);
    aicp_output_task(R->out, "TASK", r->label, R->check);
    aicp_output_result(R->out, R->s->name, st->st, st->result, NULL, st->diff_text, 0, 0, st->secs);
    switch (st->st) {
    case AICP_ST_OK:
        R->stats.ok++;
        break;
    case AICP_ST_CHANGED:
        R->stats.changed++;
        break;
    case AICP_ST_FAILED:
        R->stats.failed++;
        break;
    case AICP_ST_SKIPPED:
        R->stats.skipped++;
        break;
    case AICP_ST_UNREACHABLE:
        R->stats.unreachable++;
        break;
    }
    pthread_mutex_unlock(&R->out_mu);
}

/* ---- the worker pool ------------------------------------------------------ */

/* The next resource whose dependencies are all done, in the site's order;
 * resources behind a failure are marked skipped on the way. Called with
 * mu held. */
static long next_ready(struct runner *R, int *skip_only)
{
    const struct aicp_site *s = R->s;
    *skip_only = 0;
    for (size_t k = 0; k < s->nres; k++) {
        size_t i = s->order[k];
        if (R->st[i].state != R_PENDING)
            continue;
        const struct aicp_site_res *r = &s->res[i];
        int ready = 1;
        const char *cause = NULL;
        for (size_t d = 0; !R->o->teardown && d < r->ndeps; d++) {
            const struct rstate *ds = &R->st[r->deps[d]];
            if (ds->state != R_DONE)
                ready = 0;
            else if (ds->blocked && cause == NULL)
                cause = ds->cause ? ds->cause : s->res[r->deps[d]].id;
        }
        /* Teardown: what depends on a resource goes first. */
        for (size_t j = 0; R->o->teardown && j < s->nres; j++) {
            for (size_t d = 0; d < s->res[j].ndeps; d++) {
                if (s->res[j].deps[d] != i)
                    continue;
                const struct rstate *ds = &R->st[j];
                if (ds->state != R_DONE)
                    ready = 0;
                else if (ds->blocked && cause == NULL)
                    cause = ds->cause ? ds->cause : s->res[j].id;
            }
        }
        if (cause != NULL) {
            /* Skip at once, even while other dependencies still run. */
            R->st[i].cause = cause;
            *skip_only = 1;
            return (long)i;
        }
        if (ready)
            return (long)i;
    }
    return -1;
}

static void *worker(void *arg)
{
    struct runner *R = arg;
    pthread_mutex_lock(&R->mu);
    while (R->left > 0) {
        int skip = 0;
        long i = next_ready(R, &skip);
        if (i < 0) {
            pthread_cond_wait(&R->cv, &R->mu);
            continue;
        }
        struct rstate *st = &R->st[i];
        st->state = R_RUNNING;
        if (skip) {
            st->st = AICP_ST_SKIPPED;
            st->blocked = 1;
            char msg[700];
            if (R->o->teardown)
                snprintf(msg, sizeof(msg), "skipped: %s, which depends on it, was not removed",
                         st->cause);
            else
                snprintf(msg, sizeof(msg), "skipped: dependency %s failed", st->cause);
            st->result = json_pack("{s:s, s:b, s:b, s:i}", "msg", msg, "changed", 0, "skipped", 1,
                                   "_aicp_show", 1);
        }
        pthread_mutex_unlock(&R->mu);
        if (!skip)
            run_one(R, (size_t)i);
        print_result(R, (size_t)i);
        pthread_mutex_lock(&R->mu);
        st->state = R_DONE;
        R->left--;
        pthread_cond_broadcast(&R->cv);
    }
    pthread_mutex_unlock(&R->mu);
    return NULL;
}

/* ---- cross-layer drift ------------------------------------------------------ */

/* "    resized: size: want 10995116277760, have 13194139533312" per finding. */
static void cross_text(struct aicp_buf *b, const json_t *e, const char *indent)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(e, "findings"), i, f)
    {
        const char *field = json_string_value(json_object_get(f, "field"));
        aicp_buf_printf(b, "%s%s: ", indent, json_string_value(json_object_get(f, "what")));
        if (field && *field)
            aicp_buf_printf(b, "%s: ", field);
        aicp_buf_puts(b, "want ");
        value_text(b, json_object_get(f, "want"));
        aicp_buf_puts(b, ", have ");
        value_text(b, json_object_get(f, "have"));
        aicp_buf_puts(b, "\n");
    }
}

/* "pvc default/x -> ONTAP volume svm:vol (cluster)" */
static void cross_head(struct aicp_buf *b, const json_t *e)
{
    const char *vol = json_string_value(json_object_get(e, "volume"));
    aicp_buf_printf(b, "%s", json_string_value(json_object_get(e, "pvc")));
    if (vol)
        aicp_buf_printf(b, " -> ONTAP volume %s (%s)", vol,
                        json_string_value(json_object_get(e, "cluster")));
}

/* drift's second pass: the ONTAP volume behind every selected PVC that is
 * bound to one aicp can name. Each check is shown as a task and counted in
 * the recap, so a finding makes the exit status 2 and a failure 1. */
static void run_cross(struct runner *R)
{
    const struct aicp_site *s = R->s;
    struct aicp_kube *k = NULL;
    struct aicp_err serr = {0};
    /* The PVCs --limit leaves in (--only does not apply: cross_layer is
     * its own kind). */
    unsigned char *sel = calloc(s->nres ? s->nres : 1, 1);
    R->cross = json_array();
    if (sel == NULL || aicp_site_select(sel, s, NULL, R->o->limit, &serr) != 0) {
        free(sel);
        return;
    }
    for (size_t n = 0; R->cross && n < s->nres; n++) {
        size_t i = s->order[n];
        const struct aicp_site_res *r = &s->res[i];
        if (!sel[i] || strcmp(r->mod->name, "pvc") != 0)
            continue;
        struct aicp_err err = {0};
        json_t *e = NULL;
        double t0 = aicp_now();
        int rc = k ? 0 : aicp_kube_pool_get(R->pool, NULL, NULL, &k, &err);
        if (rc == 0)
            rc = aicp_site_cross_check(&e, s, i, k, R->ontap, &err);
        enum aicp_status st;
        const char *est = json_string_value(json_object_get(e, "status"));
        if (rc == 0 && est != NULL && strcmp(est, "skipped") == 0) {
            /* Not checked, and said so with why (never silently). */
            st = AICP_ST_SKIPPED;
            R->ncross_skip++;
        } else if (rc != 0) {
            json_decref(e);
            e = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "pvc", r->label, "id", r->id, "status",
                          "failed", "msg", err.msg, "findings");
            st = AICP_ST_FAILED;
            R->ncross_fail++;
        } else if (json_array_size(json_object_get(e, "findings")) > 0) {
            st = AICP_ST_CHANGED;
            R->ncross_drift++;
        } else {
            st = AICP_ST_OK;
        }
        if (e == NULL)
            continue;
        struct aicp_buf label = AICP_BUF_INIT, diff = AICP_BUF_INIT;
        aicp_buf_puts(&label, "cross-layer ");
        cross_head(&label, e);
        cross_text(&diff, e, "    ");
        if (st == AICP_ST_CHANGED)
            changed_by_text(&diff, json_string_value(json_object_get(e, "last_changed_by")),
                            "    ");
        json_t *result =
            json_pack("{s:b, s:O}", "changed", st == AICP_ST_CHANGED, "cross_layer", e);
        if (result && rc != 0) {
            json_object_set_new(result, "msg", json_string(err.msg));
            json_object_set_new(result, "failed", json_true());
        }
        if (result && st == AICP_ST_SKIPPED) {
            struct aicp_buf m = AICP_BUF_INIT;
            aicp_buf_printf(&m, "not checked: %s",
                            json_string_value(json_object_get(e, "msg")));
            json_object_set_new(result, "msg", json_string(m.data ? m.data : "not checked"));
            json_object_set_new(result, "skipped", json_true());
            json_object_set_new(result, "_aicp_show", json_integer(1));
            aicp_buf_free(&m);
        }
        pthread_mutex_lock(&R->out_mu);
        aicp_output_task(R->out, "TASK", label.data ? label.data : r->label, 1);
        aicp_output_result(R->out, s->name, st, result, NULL, diff.data, 0, 0, aicp_now() - t0);
        if (st == AICP_ST_OK)
            R->stats.ok++;
        else if (st == AICP_ST_CHANGED)
            R->stats.changed++;
        else if (st == AICP_ST_SKIPPED)
            R->stats.skipped++;
        else
            R->stats.failed++;
        pthread_mutex_unlock(&R->out_mu);
        json_array_append_new(R->cross, e);
        json_decref(result);
        aicp_buf_free(&label);
        aicp_buf_free(&diff);
    }
    free(sel);
}

/* ---- reports --------------------------------------------------------------- */

static const char *status_word(const struct runner *R, const struct rstate *st)
{
    switch (st->st) {
    case AICP_ST_OK:
        return R->o->mode == AICP_SITE_DRIFT ? "in_sync" : "ok";
    case AICP_ST_CHANGED:
        return R->o->mode == AICP_SITE_DRIFT ? "drifted" : "changed";
    case AICP_ST_FAILED:
        return "failed";
    case AICP_ST_SKIPPED:
        return "skipped";
    case AICP_ST_UNREACHABLE:
        return "unreachable";
    }
    return "?";
}

static int write_file(const char *path, const char *text, struct aicp_err *err)
{
    struct aicp_buf tmp = AICP_BUF_INIT;
    int rc = 0, fd = -1;
    if (aicp_buf_printf(&tmp, "%s.XXXXXX", path) != 0)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    fd = mkstemp(tmp.data);
    if (fd < 0) {
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.data, path) != 0)
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp.data);
    aicp_buf_free(&tmp);
    return rc;
}

/* report.json, junit.xml and report.html (agent/report.h) of a drift run:
 * each drifted resource a failing case with its fields, each resource that
 * could not be read an error. */
static int write_drift_pages(struct runner *R, const char *dir, const json_t *resources,
                             size_t nrun, struct aicp_err *err)
{
    json_t *drifted = json_array(), *failed = json_array(), *unchecked = json_array();
    char run_id[64];
    size_t i;
    const json_t *e;
    json_array_foreach(resources, i, e)
    {
        const char *st = json_string_value(json_object_get(e, "status"));
        if (st && strcmp(st, "drifted") == 0)
            json_array_append_new(drifted,
                                  json_pack("{s:O, s:O, s:O?}", "id", json_object_get(e, "id"),
                                            "fields", json_object_get(e, "fields"),
                                            "last_changed_by",
                                            json_object_get(e, "last_changed_by")));
        else if (st && strcmp(st, "ok") != 0)
            json_array_append_new(
                failed, json_pack("{s:O, s:s}", "id", json_object_get(e, "id"), "message",
                                  json_string_value(json_object_get(e, "msg"))
                                      ? json_string_value(json_object_get(e, "msg"))
                                      : st));
    }
    json_array_foreach(R->cross, i, e)
    {
        const char *st = json_string_value(json_object_get(e, "status"));
        const char *pvc = json_string_value(json_object_get(e, "pvc"));
        const char *msg = json_string_value(json_object_get(e, "msg"));
        if (st && strcmp(st, "drifted") == 0)
            json_array_append_new(drifted,
                                  json_pack("{s:s+, s:O?, s:O?, s:O?}", "id", "cross_layer/",
                                            pvc ? pvc : "?", "fields",
                                            json_object_get(e, "findings"), "volume",
                                            json_object_get(e, "volume"), "last_changed_by",
                                            json_object_get(e, "last_changed_by")));
        else if (st && strcmp(st, "failed") == 0)
            json_array_append_new(failed, json_pack("{s:s+, s:s}", "id", "cross_layer/",
                                                    pvc ? pvc : "?", "message", msg ? msg : st));
        else if (st && strcmp(st, "skipped") == 0)
            json_array_append_new(unchecked, json_pack("{s:s+, s:s}", "id", "cross_layer/",
                                                       pvc ? pvc : "?", "message",
                                                       msg ? msg : st));
    }
    aicp_run_id(run_id, sizeof(run_id));
    json_t *rep = json_pack("{s:s, s:s, s:s, s:s, s:[], s:{s:i, s:o, s:o, s:o}}", "kind", "drift",
                            "site", R->s->name, "run_id", R->run_id[0] ? R->run_id : run_id,
                            "aicp_version", PACKAGE_VERSION, "checks", "drift", "resources",
                            (json_int_t)nrun, "drifted", drifted, "failed", failed,
                            "not_checked", unchecked);
    int rc = rep ? aicp_report_write(dir, rep, R->o->secrets, err)
                 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    json_decref(rep);
    return rc;
}

static int write_drift_report(struct runner *R, const char *dir, struct aicp_err *err)
{
    const struct aicp_site *s = R->s;
    struct aicp_buf txt = AICP_BUF_INIT, path = AICP_BUF_INIT;
    json_t *list = json_array();
    size_t ndrift = 0, nfail = 0, nrun = 0;
    int rc = 0;
    char *text = NULL, *masked = NULL;
    json_t *rep = NULL, *mrep = NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return aicp_err_set(err, AICP_EIO, "--report %s: %s", dir, strerror(errno));
    for (size_t k = 0; k < s->nres; k++) {
        size_t i = s->order[k];
        const struct aicp_site_res *r = &s->res[i];
        const struct rstate *st = &R->st[i];
        if (!st->selected)
            continue;
        nrun++;
        json_t *fields = json_deep_copy(st->fields ? st->fields : json_array());
        if (r->secret) {
            size_t j;
            json_t *f;
            json_array_foreach(fields, j, f)
            {
                json_object_del(f, "want");
                json_object_del(f, "have");
            }
        }
        json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:o, s:b, s:s?}", "id", r->id,
                              "section", r->section, "module", r->mod->name, "name", r->name,
                              "namespace", r->ns, "status", status_word(R, st), "fields", fields,
                              "replace", st->replace, "last_changed_by", st->changed_by);
        const char *msg = json_string_value(json_object_get(st->result, "msg"));
        if (e && msg && st->st != AICP_ST_OK)
            json_object_set_new(e, "msg", json_string(msg));
        json_array_append_new(list, e);
        if (st->st == AICP_ST_CHANGED) {
            ndrift++;
            aicp_buf_printf(&txt, "drifted: %s (%s:%d)%s\n", r->label, r->loc.file, r->loc.line,
                            st->replace ? " (replacement needed)" : "");
            fields_text(&txt, st->fields, r->secret, "    ");
            changed_by_text(&txt, st->changed_by, "    ");
        } else if (st->st == AICP_ST_FAILED || st->st == AICP_ST_SKIPPED) {
            nfail++;
            aicp_buf_printf(&txt, "%s: %s: %s\n", status_word(R, st), r->label, msg ? msg : "");
        }
    }
    size_t ci;
    const json_t *ce;
    json_array_foreach(R->cross, ci, ce)
    {
        const char *cst = json_string_value(json_object_get(ce, "status"));
        if (cst && strcmp(cst, "drifted") == 0) {
            aicp_buf_puts(&txt, "cross-layer drifted: ");
            cross_head(&txt, ce);
            aicp_buf_puts(&txt, "\n");
            cross_text(&txt, ce, "    ");
            changed_by_text(&txt, json_string_value(json_object_get(ce, "last_changed_by")),
                            "    ");
        } else if (cst && (strcmp(cst, "failed") == 0 || strcmp(cst, "skipped") == 0)) {
            aicp_buf_printf(&txt, "cross-layer %s: %s: %s\n",
                            strcmp(cst, "failed") == 0 ? "failed" : "not checked",
                            json_string_value(json_object_get(ce, "pvc")),
                            json_string_value(json_object_get(ce, "msg")));
        }
    }
    aicp_buf_printf(&txt, "site %s (%s): %zu of %zu resources drifted, %zu not checked\n", s->name,
                    s->path, ndrift, nrun, nfail);
    aicp_buf_printf(&txt,
                    "cross-layer: %zu of %zu PVCs' ONTAP volumes changed behind Trident's back, "
                    "%zu not checked\n",
                    R->ncross_drift, json_array_size(R->cross), R->ncross_fail + R->ncross_skip);
    rep = json_pack("{s:s, s:s, s:s, s:b, s:i, s:i, s:i, s:o, s:o, s:i, s:i}", "site", s->name,
                    "run_id", R->run_id, "file", s->path, "drifted",
                    ndrift > 0 || R->ncross_drift > 0, "resources_checked", (int)nrun,
                    "resources_drifted", (int)ndrift, "failed", (int)(nfail + R->ncross_fail),
                    "resources", list, "cross_layer",
                    R->cross ? json_incref(R->cross) : json_array(), "cross_layer_drifted",
                    (int)R->ncross_drift, "cross_layer_not_checked",
                    (int)(R->ncross_fail + R->ncross_skip));
    list = NULL;
    mrep = rep ? aicp_secrets_mask_json(R->o->secrets, rep) : NULL;
    text = mrep ? json_dumps(mrep, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    masked = txt.data ? aicp_secrets_mask(R->o->secrets, txt.data) : NULL;
    if (text == NULL || masked == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    aicp_buf_printf(&path, "%s/drift.json", dir);
    if ((rc = write_file(path.data, text, err)) != 0)
        goto out;
    path.len = 0;
    aicp_buf_printf(&path, "%s/drift.txt", dir);
    if ((rc = write_file(path.data, masked, err)) != 0)
        goto out;
    rc = write_drift_pages(R, dir, json_object_get(rep, "resources"), nrun, err);
out:
    json_decref(list);
    json_decref(rep);
    json_decref(mrep);
    free(text);
    aicp_free_secret(masked);
    aicp_buf_free(&txt);
    aicp_buf_free(&path);
    return rc;
}

/* drift's closing summary: one line per drifted resource and field. */
static void print_drift_summary(struct runner *R)
{
    const struct aicp_site *s = R->s;
    struct aicp_buf b = AICP_BUF_INIT;
    size_t n = 0;
    for (size_t k = 0; k < s->nres; k++) {
        size_t i = s->order[k];
        if (R->st[i].selected && R->st[i].st == AICP_ST_CHANGED)
            n++;
    }
    aicp_buf_printf(&b, "DRIFT: %zu resource%s drifted", n, n == 1 ? "" : "s");
    if (R->ncross_drift > 0)
        aicp_buf_printf(&b, ", %zu PVC%s whose ONTAP volume changed behind Trident's back",
                        R->ncross_drift, R->ncross_drift == 1 ? "" : "s");
    if (R->ncross_fail + R->ncross_skip > 0)
        aicp_buf_printf(&b, ", %zu PVC%s not checked across layers",
                        R->ncross_fail + R->ncross_skip,
                        R->ncross_fail + R->ncross_skip == 1 ? "" : "s");
    aicp_buf_puts(&b, "\n");
    for (size_t k = 0; k < s->nres; k++) {
        size_t i = s->order[k];
        const struct rstate *st = &R->st[i];
        if (!st->selected || st->st != AICP_ST_CHANGED)
            continue;
        aicp_buf_printf(&b, "  %s%s\n", s->res[i].label,
                        st->replace ? " (replacement needed)" : "");
        fields_text(&b, st->fields, s->res[i].secret, "    ");
        changed_by_text(&b, st->changed_by, "    ");
    }
    size_t ci;
    const json_t *ce;
    json_array_foreach(R->cross, ci, ce)
    {
        if (json_array_size(json_object_get(ce, "findings")) == 0)
            continue;
        aicp_buf_puts(&b, "  cross-layer: ");
        cross_head(&b, ce);
        aicp_buf_puts(&b, "\n");
        cross_text(&b, ce, "    ");
        changed_by_text(&b, json_string_value(json_object_get(ce, "last_changed_by")), "    ");
    }
    json_array_foreach(R->cross, ci, ce)
    {
        const char *cst = json_string_value(json_object_get(ce, "status"));
        if (cst == NULL || (strcmp(cst, "skipped") != 0 && strcmp(cst, "failed") != 0))
            continue;
        aicp_buf_printf(&b, "  cross-layer not checked: %s: %s\n",
                        json_string_value(json_object_get(ce, "pvc")),
                        json_string_value(json_object_get(ce, "msg")));
    }
    char *m = b.data ? aicp_secrets_mask(R->o->secrets, b.data) : NULL;
    if (m)
        fputs(m, R->fp);
    fflush(R->fp);
    aicp_free_secret(m);
    aicp_buf_free(&b);
}

/* ---- the run ------------------------------------------------------------ */

/* ---- the recap per layer ------------------------------------------------- */

enum { LAYER_STORAGE, LAYER_KUBERNETES, LAYER_APPS, NLAYERS };

static int layer_of(const struct aicp_site_res *r)
{
    if (strncmp(r->mod->name, "ontap_", 6) == 0)
        return LAYER_STORAGE;
    if (strcmp(r->mod->name, "helm_release") == 0 || strcmp(r->mod->name, "k8s_wait") == 0)
        return LAYER_APPS;
    return LAYER_KUBERNETES;
}

/* One line per layer the run touched: the cluster (SSH, by the playbooks'
 * outcome; their own recap, per host, is above), then storage, Kubernetes
 * objects and applications, counted from the resources. */
static void print_layers(struct runner *R)
{
    static const char *const names[NLAYERS] = {"storage (ONTAP)", "kubernetes",
                                               "applications (helm)"};
    struct aicp_stats st[NLAYERS];
    int any[NLAYERS] = {0};
    memset(st, 0, sizeof(st));
    for (size_t i = 0; i < R->s->nres; i++) {
        const struct rstate *r = &R->st[i];
        int l = layer_of(&R->s->res[i]);
        if (!r->selected)
            continue;
        any[l] = 1;
        st[l].ok += r->st == AICP_ST_OK;
        st[l].changed += r->st == AICP_ST_CHANGED;
        st[l].failed += r->st == AICP_ST_FAILED;
        st[l].skipped += r->st == AICP_ST_SKIPPED;
    }
    fputs("LAYER RECAP ********************************************************************\n",
          R->fp);
    if (R->cluster_ran)
        fprintf(R->fp, "%-22s: %s\n", "cluster (SSH)",
                R->cluster_status == 0   ? "ok (nothing to change)"
                : R->cluster_status == 2 ? (R->check ? "would change" : "changed")
                                         : "failed");
    for (int l = 0; l < NLAYERS; l++)
        if (any[l])
            fprintf(R->fp, "%-22s: ok=%d changed=%d failed=%d skipped=%d\n", names[l], st[l].ok,
                    st[l].changed, st[l].failed, st[l].skipped);
    fputc('\n', R->fp);
}

int aicp_site_run(int *exit_status, struct aicp_site *s, const struct aicp_site_run_opts *o,
                  struct aicp_err *err)
{
    struct runner R = {.s = s, .o = o};
    unsigned char *sel = calloc(s->nres ? s->nres : 1, 1);
    pthread_t *th = NULL;
    size_t nth = 0;
    int rc;
    *exit_status = 1;
    R.fp = o->out ? o->out : stdout;
    R.check = o->check || o->mode != AICP_SITE_APPLY;
    /* Modules that read only, as in a playbook, know a check run by it
     * (k8s_wait reads once instead of waiting). */
    if (s->vars)
        json_object_set_new(s->vars, "ansible_check_mode", json_boolean(R.check));
    R.st = calloc(s->nres ? s->nres : 1, sizeof(*R.st));
    pthread_mutex_init(&R.mu, NULL);
    pthread_mutex_init(&R.out_mu, NULL);
    pthread_cond_init(&R.cv, NULL);
    if (sel == NULL || R.st == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_site_select(sel, s, o->only, o->limit, err)) != 0)
        goto out;
    for (size_t i = 0; i < s->nres; i++) {
        /* Teardown removes what has a state; gates and nodes stay. */
        if (o->teardown && (!has_arg(s->res[i].mod, "state") ||
                            strcmp(s->res[i].mod->name, "k8s_node") == 0))
            sel[i] = 0;
        R.st[i].selected = sel[i];
        /* What the run leaves out counts as there: its dependents go on. */
        R.st[i].state = sel[i] ? R_PENDING : R_DONE;
        R.left += sel[i];
    }
    int diff = o->diff || o->mode != AICP_SITE_APPLY;
    if ((rc = aicp_output_new(&R.out, R.fp, o->verbose, diff)) != 0) {
        aicp_err_set(err, rc, "out of memory");
        goto out;
    }
    aicp_output_set_secrets(R.out, o->secrets);
    int cross = o->mode == AICP_SITE_DRIFT && aicp_site_only_cross(o->only);
    /* The cluster layer first: the nodes, then what runs on them. A
     * teardown leaves the nodes as they are. */
    if (s->cluster_vars && !o->teardown && aicp_site_only_cluster(o->only) &&
        json_array_size(o->limit) == 0) {
        if ((rc = aicp_site_cluster_run(&R.cluster_status, s, o, R.check, err)) != 0)
            goto out;
        R.cluster_ran = 1;
        if (R.cluster_status == 1) {
            fprintf(R.fp, "aicp: the cluster layer failed (above): the site's other layers were "
                          "not run\n");
            *exit_status = 1;
            rc = 0;
            goto out;
        }
    }
    if (R.left > 0 || cross) {
        struct aicp_kube_config cfg = {
            .kubeconfig = o->kubeconfig ? o->kubeconfig : s->kubeconfig,
            .context = o->context ? o->context : s->context,
        };
        struct aicp_kube *k = NULL;
        if ((rc = aicp_http_new(&R.http, NULL, err)) != 0 ||
            (rc = aicp_kube_pool_new(&R.pool, R.http, &cfg)) != 0 ||
            (rc = aicp_ontap_pool_new(&R.ontap, R.http)) != 0)
            goto out;
        /* A kubeconfig that cannot be used fails the run once, up front
         * (when the run has Kubernetes to do: a storage-only run has not). */
        int kube = 0;
        for (size_t i = 0; i < s->nres; i++)
            if (sel[i] && (s->res[i].mod->flags & AICP_MOD_NEEDS_KUBE))
                kube = 1;
        if (kube && (rc = aicp_kube_pool_get(R.pool, NULL, NULL, &k, err)) != 0) {
            /* Planned on nodes with no cluster yet: nothing to ask. */
            if (!(R.check && R.cluster_ran && R.cluster_status == 2))
                goto out;
            R.no_cluster = 1;
            rc = 0;
        }
    }
    aicp_run_id(R.run_id, sizeof(R.run_id));
    char play[512];
    snprintf(play, sizeof(play), "site %s", s->name);
    aicp_output_play(R.out, play, R.check);
    int forks = o->forks > 0 ? o->forks : 10;
    nth = R.left < (size_t)forks ? R.left : (size_t)forks;
    th = calloc(nth ? nth : 1, sizeof(*th));
    if (th == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    size_t started = 0;
    for (; started < nth; started++)
        if (pthread_create(&th[started], NULL, worker, &R) != 0)
            break;
    if (started == 0 && nth > 0)
        worker(&R);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (cross)
        run_cross(&R);
    json_t *hosts = json_pack("[s]", s->name);
    aicp_output_recap(R.out, hosts, &R.stats);
    json_decref(hosts);
    print_layers(&R);
    if (o->mode == AICP_SITE_DRIFT)
        print_drift_summary(&R);
    rc = 0;
    if (o->json_path && (rc = aicp_output_write_json(R.out, o->json_path, err)) != 0)
        goto out;
    if (o->mode == AICP_SITE_DRIFT && o->report_dir &&
        (rc = write_drift_report(&R, o->report_dir, err)) != 0)
        goto out;
    *exit_status = R.stats.failed ? 1 : R.stats.changed ? 2 : 0;
    if (*exit_status == 0 && R.cluster_ran && R.cluster_status == 2)
        *exit_status = 2;
out:
    for (size_t i = 0; R.st && i < s->nres; i++) {
        json_decref(R.st[i].result);
        json_decref(R.st[i].fields);
        free(R.st[i].diff_text);
        free(R.st[i].changed_by);
    }
    free(R.st);
    free(sel);
    free(th);
    aicp_output_free(R.out);
    json_decref(R.cross);
    aicp_ontap_pool_free(R.ontap);
    aicp_kube_pool_free(R.pool);
    aicp_http_free(R.http);
    pthread_mutex_destroy(&R.mu);
    pthread_mutex_destroy(&R.out_mu);
    pthread_cond_destroy(&R.cv);
    return rc;
}

/* ---- the command line ---------------------------------------------------- */

static void usage(FILE *fp)
{
    fputs("usage: aicp apply SITE [--check] [--diff] [--only KIND] [--limit GLOB] [--json FILE]\n"
          "                 [--allow-replace] [--force-conflicts] [--forks N] [-v]\n"
          "                 [--state absent]\n"
          "                 [-i INVENTORY] [--accept-new-host-keys]\n"
          "                 [--kubeconfig FILE] [--context NAME] [-e KEY=VALUE | -e @FILE]...\n"
          "                 [--vault-password-file F | --vault-id [LABEL@]F ... | -J]\n"
          "       aicp plan SITE [same options]              (apply --check --diff)\n"
          "       aicp drift SITE [--report DIR] [same options] (read-only)\n"
          "       aicp validate SITE [--report DIR] [same options] (the benchmarks)\n",
          fp);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aicp: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return EXIT_USAGE;
}

int aicp_site_main(int argc, char **argv)
{
    enum {
        OPT_JSON = 256,
        OPT_ONLY,
        OPT_KCFG,
        OPT_CTX,
        OPT_REPLACE,
        OPT_REPORT,
        OPT_VPF,
        OPT_VID,
        OPT_STATE,
        OPT_ACCEPT,
        OPT_FORCE,
    };
    static const struct option longopts[] = {
        {"check", no_argument, NULL, 'C'},
        {"diff", no_argument, NULL, 'D'},
        {"limit", required_argument, NULL, 'l'},
        {"only", required_argument, NULL, OPT_ONLY},
        {"json", required_argument, NULL, OPT_JSON},
        {"kubeconfig", required_argument, NULL, OPT_KCFG},
        {"context", required_argument, NULL, OPT_CTX},
        {"allow-replace", no_argument, NULL, OPT_REPLACE},
        {"force-conflicts", no_argument, NULL, OPT_FORCE},
        {"report", required_argument, NULL, OPT_REPORT},
        {"forks", required_argument, NULL, 'f'},
        {"extra-vars", required_argument, NULL, 'e'},
        {"verbose", no_argument, NULL, 'v'},
        {"vault-password-file", required_argument, NULL, OPT_VPF},
        {"vault-id", required_argument, NULL, OPT_VID},
        {"ask-vault-pass", no_argument, NULL, 'J'},
        {"ask-vault-password", no_argument, NULL, 'J'},
        {"inventory", required_argument, NULL, 'i'},
        {"state", required_argument, NULL, OPT_STATE},
        {"accept-new-host-keys", no_argument, NULL, OPT_ACCEPT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct aicp_site_run_opts o = {.forks = 10};
    struct aicp_site_load_opts lo = {0};
    struct aicp_err err = {0};
    const char *cmd = argc > 0 ? argv[0] : "apply";
    const char **extras = calloc((size_t)argc + 1, sizeof(*extras));
    const char **ids = calloc((size_t)argc + 1, sizeof(*ids));
    const char **files = calloc((size_t)argc + 1, sizeof(*files));
    const char **invs = calloc((size_t)argc + 1, sizeof(*invs));
    json_t *extra = json_object(), *only = NULL, *limit = NULL;
    struct aicp_vault *vault = NULL;
    struct aicp_secrets *secrets = NULL;
    struct aicp_srcmap *emap = NULL;
    struct aicp_site *site = NULL;
    int status = EXIT_USAGE, c, rc, ask = 0;
    size_t nextra = 0, nids = 0, nfiles = 0, ninvs = 0;

    if (extras == NULL || ids == NULL || files == NULL || invs == NULL || extra == NULL ||
        aicp_vault_new(&vault) != 0 || aicp_secrets_new(&secrets) != 0 ||
        aicp_srcmap_new(&emap) != 0) {
        fputs("aicp: out of memory\n", stderr);
        status = 1;
        goto out;
    }
    /* Values templates derive from the secrets are secrets too. */
    aicp_tmpl_set_secrets(secrets);
    if (strcmp(cmd, "plan") == 0)
        o.mode = AICP_SITE_PLAN;
    else if (strcmp(cmd, "drift") == 0)
        o.mode = AICP_SITE_DRIFT;
    else if (strcmp(cmd, "validate") == 0)
        o.mode = AICP_SITE_VALIDATE;
    else if (strcmp(cmd, "apply") != 0) {
        status = usage_error("unknown site command '%s'", cmd);
        goto out;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "CDl:f:e:vhJi:", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            invs[ninvs++] = optarg;
            break;
        case OPT_STATE:
            if (strcmp(optarg, "absent") != 0 && strcmp(optarg, "present") != 0) {
                status = usage_error("--state wants present or absent, not '%s'", optarg);
                goto out;
            }
            o.teardown = strcmp(optarg, "absent") == 0;
            break;
        case OPT_ACCEPT:
            o.accept_new_host_keys = 1;
            break;
        case 'C':
            o.check = 1;
            break;
        case 'D':
            o.diff = 1;
            break;
        case 'l':
            limit = aicp_site_split_list(limit, optarg);
            break;
        case OPT_ONLY:
            only = aicp_site_split_list(only, optarg);
            break;
        case OPT_JSON:
            o.json_path = optarg;
            break;
        case OPT_KCFG:
            o.kubeconfig = optarg;
            break;
        case OPT_CTX:
            o.context = optarg;
            break;
        case OPT_REPLACE:
            o.allow_replace = 1;
            break;
        case OPT_FORCE:
            o.force_conflicts = 1;
            break;
        case OPT_REPORT:
            o.report_dir = optarg;
            break;
        case 'f': {
            char *end = NULL;
            long n = strtol(optarg, &end, 10);
            if (end == optarg || *end || n < 1 || n > 1000) {
                status = usage_error("--forks wants a number from 1 to 1000, not '%s'", optarg);
                goto out;
            }
            o.forks = (int)n;
            break;
        }
        case 'e':
            extras[nextra++] = optarg;
            break;
        case 'v':
            o.verbose++;
            break;
        case OPT_VPF:
            files[nfiles++] = optarg;
            break;
        case OPT_VID:
            ids[nids++] = optarg;
            break;
        case 'J':
            ask = 1;
            break;
        case 'h':
            usage(stdout);
            status = 0;
            goto out;
        default:
            status = usage_error("bad option for '%s'", cmd);
            goto out;
        }
    }
    if (optind != argc - 1) {
        status = usage_error("'%s' wants exactly one site file", cmd);
        goto out;
    }
    if (o.teardown && (o.mode == AICP_SITE_DRIFT || o.mode == AICP_SITE_VALIDATE)) {
        status = usage_error("--state absent is an option of 'aicp apply' and 'aicp plan'");
        goto out;
    }
    if (o.report_dir && o.mode != AICP_SITE_DRIFT && o.mode != AICP_SITE_VALIDATE) {
        status = usage_error("--report is an option of 'aicp drift' and 'aicp validate'");
        goto out;
    }
    if (o.mode != AICP_SITE_APPLY && o.allow_replace && o.mode == AICP_SITE_DRIFT) {
        status = usage_error("drift never changes anything: --allow-replace does not apply");
        goto out;
    }
    if (o.force_conflicts && (o.mode == AICP_SITE_DRIFT || o.mode == AICP_SITE_VALIDATE)) {
        status = usage_error("--force-conflicts is an option of 'aicp apply' and 'aicp plan'");
        goto out;
    }
    if ((rc = aicp_vault_add_cli(vault, ids, nids, files, nfiles, ask, &err)) != 0) {
        fprintf(stderr, "aicp: %s\n", err.msg);
        status = aicp_err_exit_status(rc);
        goto out;
    }
    aicp_srcmap_set_vault(emap, vault, secrets);
    for (size_t i = 0; i < nextra; i++) {
        if ((rc = aicp_cli_extra_vars(extra, extras[i], emap, &err)) != 0) {
            aicp_cli_print_error(secrets, "aicp: ", err.msg);
            status = aicp_err_exit_status(rc);
            goto out;
        }
    }
    lo.extra_vars = extra;
    lo.vault = vault;
    lo.secrets = secrets;
    if ((rc = aicp_site_load(&site, argv[optind], &lo, &err)) != 0) {
        aicp_cli_print_error(secrets, "ERROR! ", err.msg);
        status = aicp_err_exit_status(rc);
        goto out;
    }
    o.only = only;
    o.limit = limit;
    o.secrets = secrets;
    o.vault = vault;
    o.inventories = invs;
    o.ninventories = ninvs;
    if (o.mode == AICP_SITE_VALIDATE)
        rc = aicp_site_validate_run(&status, site, &o, &err);
    else
        rc = aicp_site_run(&status, site, &o, &err);
    if (rc != 0) {
        aicp_cli_print_error(secrets, "ERROR! ", err.msg);
        status = aicp_err_exit_status(rc);
    }
out:
    aicp_site_free(site);
    free(extras);
    free(ids);
    free(files);
    free(invs);
    json_decref(extra);
    json_decref(only);
    json_decref(limit);
    aicp_srcmap_free(emap);
    aicp_vault_free(vault);
    aicp_tmpl_set_secrets(NULL);
    aicp_secrets_free(secrets);
    return status;
}
