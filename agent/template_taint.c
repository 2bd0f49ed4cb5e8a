/* Secrets through templates: masking is by value (secret.h), so a value a
 * template derives from a secret (`pw[0:12]`, `pw | b64encode`, `pw |
 * upper`) would print in clear unless it is registered too. The evaluator
 * calls aicp_tmpl_taint after each operation that makes a new value (a
 * filter, a method, a slice, an operator, indexing a string); when one of
 * the operation's inputs holds a registered secret, the strings it made are
 * registered in turn, so that the next operation sees them as secrets and
 * the chain carries on. What is not registered, so as not to garble output:
 * numbers and booleans (`pw | length`, `pw is defined`), strings shorter
 * than AICP_SECRET_MIN, the names Python prints for constants and types,
 * strings the operation only carried over from its inputs (`[pw, host] |
 * last`), and strings that hold a secret input whole ("prefix-" ~ pw, whose
 * masking leaves the prefix readable). Derived strings too short to register are reported to the
 * caller, which registers the output that holds them whole.
 *
 * The run's secrets are process-wide: the renderers take no run context,
 * and a process runs one playbook or site at a time. */
#include "config.h"

#include <stdatomic.h>
#include <string.h>

#include "err.h"
#include "secret.h"
#include "template.h"
#include "util.h"

static struct aicp_secrets *_Atomic run_secrets;

void aicp_tmpl_set_secrets(struct aicp_secrets *s)
{
    atomic_store(&run_secrets, s);
}

struct aicp_secrets *aicp_tmpl_secrets(void)
{
    struct aicp_secrets *s = atomic_load(&run_secrets);
    return s != NULL && aicp_secrets_count(s) > 0 ? s : NULL;
}

static int holds(const struct aicp_secrets *s, const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return aicp_secrets_found(s, json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
        json_array_foreach(v, i, x) if (holds(s, x)) return 1;
        return 0;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x) {
            if (aicp_secrets_found(s, k, strlen(k)) || holds(s, x))
                return 1;
        }
        return 0;
    default:
        return 0;
    }
}

int aicp_tmpl_holds_secret(const json_t *v)
{
    const struct aicp_secrets *s = aicp_tmpl_secrets();
    return s != NULL && v != NULL && holds(s, v);
}

/* Window of a secret an error message may not hold: shorter runs are
 * single characters and quotes, not a piece worth hiding. */
#define QUOTE_WINDOW 4
/* Inputs longer than this are not searched: the message is hidden. */
#define QUOTE_SCAN_MAX (64u * 1024u)

static int quotes(const struct aicp_secrets *s, const char *msg, size_t mlen, const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *str = json_string_value(v);
        size_t len = json_string_length(v);
        if (!aicp_secrets_found(s, str, len))
            return 0;
        if (len > QUOTE_SCAN_MAX)
            return 1;
        for (i = 0; i + QUOTE_WINDOW <= len; i++)
            if (memmem(msg, mlen, str + i, QUOTE_WINDOW) != NULL)
                return 1;
        return 0;
    }
    case JSON_ARRAY:
        json_array_foreach(v, i, x) if (quotes(s, msg, mlen, x)) return 1;
        return 0;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x) if (quotes(s, msg, mlen, x)) return 1;
        return 0;
    default:
        return 0;
    }
}

int aicp_tmpl_quotes_secret(const char *msg, const json_t *const *ins, size_t nins)
{
    const struct aicp_secrets *s = aicp_tmpl_secrets();
    if (s == NULL || msg == NULL)
        return 0;
    for (size_t i = 0; i < nins; i++)
        if (ins[i] != NULL && quotes(s, msg, strlen(msg), ins[i]))
            return 1;
    return 0;
}

/* What Python prints for constants and types (`pw | type_debug`, `pw is
 * string` rendered in a string): masking these would garble every line. */
static int common_word(const char *str, size_t len)
{
    static const char *const words[] = {"True", "False", "None", "true", "false", "none",
                                        "null", "yes", "str", "int", "float", "bool",
                                        "list", "dict", "NoneType", NULL};
    for (size_t i = 0; words[i] != NULL; i++)
        if (strlen(words[i]) == len && memcmp(words[i], str, len) == 0)
            return 1;
    return 0;
}

/* The strings of an operation's inputs: all of them (values and keys) as
 * the keys of carried, and those holding a secret as the keys of secret. */
struct inputs {
    json_t *carried;
    json_t *secret;
};

static int collect_str(const struct aicp_secrets *s, struct inputs *in, const char *str,
                       size_t len)
{
    if (json_object_set(in->carried, str, json_true()) != 0)
        return -1;
    if (aicp_secrets_found(s, str, len) && json_object_set(in->secret, str, json_true()) != 0)
        return -1;
    return 0;
}

static int collect(const struct aicp_secrets *s, struct inputs *in, const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return collect_str(s, in, json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
        json_array_foreach(v, i, x) if (collect(s, in, x) != 0) return -1;
        return 0;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x) {
            if (collect_str(s, in, k, strlen(k)) != 0 || collect(s, in, x) != 0)
                return -1;
        }
        return 0;
    default:
        return 0;
    }
}

/* 1 when str holds one of the inputs' secret strings whole: masking it
 * leaves what came from elsewhere ("prefix-" ~ pw), which is no secret. */
static int holds_secret_input(const struct inputs *in, const char *str, size_t len)
{
    const char *k;
    json_t *x;
    json_object_foreach(in->secret, k, x) {
        if (memmem(str, len, k, strlen(k)) != NULL)
            return 1;
    }
    return 0;
}

/* One string the operation produced. in: the strings of its inputs, or
 * NULL for a whole output that holds short derived pieces. */
static int taint_str(struct aicp_secrets *s, const char *str, size_t len, const struct inputs *in,
                     int *short_piece)
{
    if (len == 0 || common_word(str, len))
        return 0;
    if (in != NULL && ((strlen(str) == len && json_object_get(in->carried, str) != NULL) ||
                       holds_secret_input(in, str, len)))
        return 0;
    if (len < AICP_SECRET_MIN) {
        *short_piece = 1;
        return 0;
    }
    return aicp_secrets_add(s, str, len);
}

static int taint_walk(struct aicp_secrets *s, const json_t *v, const struct inputs *in,
                      int *short_piece)
{
    size_t i;
    const char *k;
    json_t *x;
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return taint_str(s, json_string_value(v), json_string_length(v), in, short_piece);
    case JSON_ARRAY:
        json_array_foreach(v, i, x) if ((rc = taint_walk(s, x, in, short_piece)) != 0) break;
        return rc;
    case JSON_OBJECT:
        /* Keys are names (dict2items' key/value), as aicp_secrets_add_json
         * has them. */
        json_object_foreach((json_t *)v, k, x) {
            if ((rc = taint_walk(s, x, in, short_piece)) != 0)
                break;
        }
        return rc;
    default:
        return 0;
    }
}

/* A list of strings too short to register one by one (`pw | list |
 * reverse`): their concatenation is what the output masking looks for
 * (aicp_secrets_mask_json). */
static int taint_joined(struct aicp_secrets *s, const json_t *v)
{
    struct aicp_buf b = AICP_BUF_INIT;
    size_t i;
    json_t *x;
    int rc = 0;
    json_array_foreach(v, i, x) {
        if (!json_is_string(x))
            goto out;
        if (aicp_buf_append(&b, json_string_value(x), json_string_length(x)) != 0) {
            rc = AICP_ENOMEM;
            goto out;
        }
    }
    if (b.data != NULL && !aicp_secrets_found(s, b.data, b.len))
        rc = aicp_secrets_add(s, b.data, b.len);
out:
    aicp_buf_free_secret(&b);
    return rc;
}

int aicp_tmpl_taint(const json_t *res, const json_t *const *ins, size_t nins, int *short_piece)
{
    struct aicp_secrets *s = aicp_tmpl_secrets();
    struct inputs in = {NULL, NULL};
    int secret_in = 0, rc = 0, short_here = 0;

    if (s == NULL || res == NULL ||
        !(json_is_string(res) || json_is_array(res) || json_is_object(res)))
        return 0;
    for (size_t i = 0; i < nins && !secret_in; i++)
        secret_in = ins[i] != NULL && holds(s, ins[i]);
    if (!secret_in)
        return 0;
    in.carried = json_object();
    in.secret = json_object();
    if (in.carried == NULL || in.secret == NULL)
        rc = AICP_ENOMEM;
    for (size_t i = 0; i < nins && rc == 0; i++)
        if (ins[i] != NULL && collect(s, &in, ins[i]) != 0)
            rc = AICP_ENOMEM;
    if (rc == 0)
        rc = taint_walk(s, res, &in, &short_here);
    if (rc == 0 && short_here && json_is_array(res))
        rc = taint_joined(s, res);
    if (short_here)
        *short_piece = 1;
    json_decref(in.carried);
    json_decref(in.secret);
    return rc;
}

int aicp_tmpl_taint_text(const char *text, size_t len, int *short_piece)
{
    struct aicp_secrets *s = aicp_tmpl_secrets();
    int short_here = 0, rc;
    if (s == NULL)
        return 0;
    rc = taint_str(s, text, len, NULL, &short_here);
    *short_piece = short_here;
    return rc;
}

int aicp_tmpl_taint_whole(const json_t *v, int *short_piece)
{
    struct aicp_secrets *s = aicp_tmpl_secrets();
    int short_here = 0, rc;
    if (s == NULL || v == NULL)
        return 0;
    rc = taint_walk(s, v, NULL, &short_here);
    if (rc == 0 && short_here && json_is_array(v))
        rc = taint_joined(s, v);
    *short_piece = short_here;
    return rc;
}
