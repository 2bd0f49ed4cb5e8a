/* The module contract: every module in modules/ exports one const
 * struct aicp_module. The executor validates arguments against the
 * module's arg table, then runs check -> diff -> (apply) -> verify.
 * Check mode is the executor's business: it stops after diff. */
#ifndef AICP_MODULE_H
#define AICP_MODULE_H

#include <jansson.h>

struct aicp_err;
struct aicp_conn;
struct aicp_kube_pool;
struct aicp_ontap_pool;

enum aicp_arg_type {
    AICP_ARG_STR = 1, /* scalars are coerced to strings (as Ansible's 'str') */
    AICP_ARG_BOOL,    /* yes/no/true/false/on/off/1/0 */
    AICP_ARG_INT,
    AICP_ARG_FLOAT,
    AICP_ARG_LIST,    /* a string "a,b" becomes ["a","b"] as in Ansible */
    AICP_ARG_DICT,
    AICP_ARG_PATH,    /* string with ~ expanded by the module where it matters */
    AICP_ARG_MODE,    /* octal string "0644", int 420 or symbolic "u+rw"; kept as given */
    AICP_ARG_RAW,     /* anything */
};

struct aicp_arg_spec {
    const char *name;
    enum aicp_arg_type type;
    int required;
    const char *def;      /* default as written in YAML ("yes", "0644", "present"), or NULL */
    int secret;           /* never shown anywhere */
    const char *choices;  /* "present|absent" or NULL */
    const char *aliases;  /* "dest|destfile" or NULL */
    const char *help;
    int local;            /* AICP_ARG_PATH on the jump host (copy's src); others are on the
                           * managed host, where a leading ~ is that user's home */
    int credential;       /* a secret that authenticates the call (an API password): masked
                           * everywhere, but the task's diff is still shown */
};

/* Validated arguments: v holds every given argument under its canonical
 * name, coerced to its type, plus defaults. Borrowed by modules. */
struct aicp_args {
    json_t *v;
    const struct aicp_module *mod;
};

/* What a module knows about the host it works on. One per task per host. */
struct aicp_ctx {
    struct aicp_conn *conn;   /* NULL for modules that run on the jump host only */
    const char *host;         /* inventory_hostname */
    int become;               /* run remote commands under sudo */
    const json_t *vars;       /* every variable visible to the task; borrowed */
    const char *search_dir;   /* the task file's directory: relative src/template paths start here */
    json_t *result;           /* result keys the module reports (rc, stdout, stat, ansible_facts...) */
    struct aicp_kube_pool *kube; /* Kubernetes clients of the run (AICP_MOD_NEEDS_KUBE); borrowed */
    struct aicp_ontap_pool *ontap; /* ONTAP clients of the run (AICP_MOD_NEEDS_ONTAP); borrowed */
    const char *run_id;       /* this run's id and site name, for the provenance of what */
    const char *site;         /* aicp creates (ONTAP comment, Kubernetes annotation); may be NULL */
};

/* A planned change. before/after are field-level state for --diff;
 * diff_text is a unified diff for file content; plan is the module's own
 * data for apply. The executor sets args before calling apply. */
struct aicp_change {
    int needed;
    json_t *before;
    json_t *after;
    char *diff_text;
    json_t *plan;
    const struct aicp_args *args;
};

struct aicp_module_ops {
    unsigned version; /* AICP_MODULE_OPS_VERSION; new ops are appended */
    /* Read current state; no side effects. May add result keys (stat, slurp). */
    int (*check)(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                 struct aicp_err *err);
    /* Compute the change from current to desired; no side effects, no I/O. */
    int (*diff)(const json_t *current, const struct aicp_args *args, struct aicp_change **change,
                struct aicp_err *err);
    /* Make the change. */
    int (*apply)(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err);
};

#define AICP_MODULE_OPS_VERSION 1u

enum aicp_module_flags {
    AICP_MOD_NEEDS_SSH = 1u << 0,  /* works on the managed host through ctx->conn */
    AICP_MOD_NEEDS_KUBE = 1u << 1,
    AICP_MOD_FREEFORM = 1u << 2,   /* `command: ls -l` -> _raw_params, with k=v options split off */
    AICP_MOD_NO_VERIFY = 1u << 3,  /* runs something every time (command, shell): no re-check */
    AICP_MOD_CHECK_SKIPS = 1u << 4,/* in check mode, a needed change is reported skipped (command) */
    AICP_MOD_ACTION = 1u << 5,     /* runs in the executor only (debug, set_fact, assert, fail) */
    AICP_MOD_ANY_ARGS = 1u << 6,   /* accepts arguments not in its table, kept as given (set_fact) */
    AICP_MOD_NEEDS_ONTAP = 1u << 7,/* runs on the jump host against the ONTAP REST API */
};

struct aicp_module {
    const char *name;
    const char *summary;
    const struct aicp_arg_spec *args; /* ends with an entry whose name is NULL */
    unsigned flags;
    const struct aicp_module_ops *ops;
    /* Rules the table cannot say (Ansible's required_if, required_one_of,
     * mutually_exclusive), run by aicp_args_validate after the table's
     * checks, so that a playbook breaking them is refused when it is loaded
     * rather than when the task runs. given holds the arguments the task
     * wrote (canonical names, before defaults); with static_only, a value
     * that is still a template must not be judged. NULL when none. */
    int (*validate)(const struct aicp_args *args, const json_t *given, int static_only,
                    struct aicp_err *err);
};

/* For validate hooks: 1 when the value is a string still holding a template
 * (its rendered value is not known before the run). */
int aicp_args_is_template(const json_t *v);

/* Argument validation. raw is the task's argument object as written (free
 * form already split into _raw_params). With static_only, values that are
 * still templates are not type-checked (they are checked after rendering).
 * The module's validate hook, if any, runs last.
 * Errors (AICP_EINVAL) name the argument: "unsupported parameter 'x' for
 * module 'file'", "missing required argument 'path'", "argument 'mode' ...".
 * out->v is a new reference; free with aicp_args_clear. */
int aicp_args_validate(struct aicp_args *out, const struct aicp_module *mod, const json_t *raw,
                       int static_only, struct aicp_err *err);
void aicp_args_clear(struct aicp_args *a);

/* Typed access to validated arguments; absent arguments give NULL/dflt. */
const json_t *aicp_args_get(const struct aicp_args *a, const char *name);
const char *aicp_args_str(const struct aicp_args *a, const char *name);
int aicp_args_bool(const struct aicp_args *a, const char *name, int dflt);
long long aicp_args_int(const struct aicp_args *a, const char *name, long long dflt);
/* Octal or symbolic mode resolved against base (the current mode, or -1
 * for a new file); returns -1 when the argument is absent; AICP_EINVAL-ish
 * -2 when unparsable. */
int aicp_args_mode(const struct aicp_args *a, const char *name, int base);

/* 1 when the named argument is marked secret in the module's table. */
int aicp_arg_is_secret(const struct aicp_module *mod, const char *name);
/* 1 when it is marked credential (see struct aicp_arg_spec). */
int aicp_arg_is_credential(const struct aicp_module *mod, const char *name);

/* Parses "k=v k2='v 2' free words" as Ansible splits free-form arguments:
 * recognized k=v pairs go to keys, the rest (joined) to _raw_params when
 * freeform. New reference. */
int aicp_args_parse_kv(json_t **out, const char *s, int freeform, const struct aicp_module *mod,
                       struct aicp_err *err);

/* diff and apply of modules that only read (stat, slurp, debug...): no
 * change is ever needed. */
int aicp_module_diff_none(const json_t *current, const struct aicp_args *args,
                          struct aicp_change **change, struct aicp_err *err);
int aicp_module_apply_none(struct aicp_ctx *ctx, const struct aicp_change *change,
                           struct aicp_err *err);

/* A change with needed=0 and nothing else. */
int aicp_change_new(struct aicp_change **out);
void aicp_change_free(struct aicp_change *c);

/* Parses a Python/YAML-style boolean ("yes", "True", "on", "1"); -1 if not one. */
int aicp_parse_bool(const char *s);

#endif
