/* The loop keywords of a task for the playbook loader: loop, with_items
 * (flattened one level), with_list, with_dict, with_sequence (expanded at
 * load time with Ansible's start/end/stride/count/format rules) and
 * loop_control, validated and stored on the task for the executor. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "playbook.h"
#include "playbook_int.h"
#include "template.h"
#include "util.h"

/* with_sequence: "start=1 end=10 stride=1 format=%02d" or "count=3",
 * computed at load time (a templated sequence is refused). */
static int seq_format(struct aicp_buf *b, const char *fmt, long long n)
{
    const char *pct = strchr(fmt, '%');
    if (pct == NULL)
        return aicp_buf_puts(b, fmt);
    const char *p = pct + 1;
    int zero = 0, width = 0;
    if (*p == '0') {
        zero = 1;
        p++;
    }
    while (isdigit((unsigned char)*p) && width < 64)
        width = width * 10 + (*p++ - '0');
    if (*p != 'd' && *p != 'x' && *p != 'X' && *p != 'o')
        return AICP_EINVAL;
    if (strchr(p + 1, '%') != NULL)
        return AICP_EINVAL;
    char digits[80];
    int base = *p == 'd' ? 10 : *p == 'o' ? 8 : 16;
    const char *alpha = *p == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
    unsigned long long u = n < 0 ? (unsigned long long)(-(n + 1)) + 1 : (unsigned long long)n;
    int len = 0;
    do {
        digits[len++] = alpha[u % (unsigned)base];
        u /= (unsigned)base;
    } while (u > 0 && len < 70);
    if (aicp_buf_append(b, fmt, (size_t)(pct - fmt)) != 0)
        return AICP_ENOMEM;
    if (n < 0 && aicp_buf_puts(b, "-") != 0)
        return AICP_ENOMEM;
    for (int i = len + (n < 0); i < width; i++)
        if (aicp_buf_puts(b, zero ? "0" : " ") != 0)
            return AICP_ENOMEM;
    while (len > 0)
        if (aicp_buf_append(b, &digits[--len], 1) != 0)
            return AICP_ENOMEM;
    return aicp_buf_puts(b, p + 1);
}

/* with_sequence makes at most this many items. */
#define SEQ_MAX_ITEMS 100001

static int parse_sequence(struct loader *L, const json_t *v, const struct aicp_loc *loc,
                          json_t **out)
{
    json_t *kv = NULL, *list = NULL;
    long long start = 1, end = 0, stride = 1, count = -1;
    const char *fmt = "%d";
    int have_end = 0, rc;
    if (!json_is_string(v) || aicp_tmpl_is_template(json_string_value(v)))
        return aicp_playbook_fail_at(L, loc,
                                     "with_sequence needs a static string such as 'start=1 end=5'");
    if ((rc = aicp_args_parse_kv(&kv, json_string_value(v), 0, NULL, L->err)) != 0)
        return rc;
    const char *k;
    json_t *val;
    json_object_foreach(kv, k, val) {
        const char *s = json_string_value(val);
        char *end_p = NULL;
        long long n = 0;
        if (strcmp(k, "format") == 0) {
            fmt = s;
            continue;
        }
        n = strtoll(s ? s : "", &end_p, 0);
        if (s == NULL || *s == '\0' || *end_p != '\0') {
            rc = aicp_playbook_fail_at(L, loc, "with_sequence: can't parse %s=%s", k, s ? s : "");
            goto out;
        }
        if (strcmp(k, "start") == 0)
            start = n;
        else if (strcmp(k, "end") == 0) {
            end = n;
            have_end = 1;
        } else if (strcmp(k, "stride") == 0)
            stride = n;
        else if (strcmp(k, "count") == 0)
            count = n;
        else {
            rc = aicp_playbook_fail_at(
                L, loc, "with_sequence: unrecognized arguments to with_sequence: %s", k);
            goto out;
        }
    }
    if (count >= 0) {
        if (have_end) {
            rc = aicp_playbook_fail_at(
                L, loc, "with_sequence: can't specify both count and end in with_sequence");
            goto out;
        }
        if (count == 0) {
            *out = json_array();
            rc = *out ? 0 : oom(L);
            goto out;
        }
        /* end = start + (count - 1) * stride, where that fits */
        long long span = 0;
        have_end = count <= SEQ_MAX_ITEMS && !__builtin_mul_overflow(count - 1, stride, &span) &&
                   !__builtin_add_overflow(start, span, &end);
        if (!have_end) {
            rc = aicp_playbook_fail_at(L, loc, "with_sequence: bad range (start=%lld count=%lld "
                                       "stride=%lld)", start, count, stride);
            goto out;
        }
    }
    long long diff = 0;
    if (!have_end || stride == 0 || __builtin_sub_overflow(end, start, &diff) ||
        diff / stride >= SEQ_MAX_ITEMS || diff / stride < 0) {
        rc = aicp_playbook_fail_at(L, loc,
                                   "with_sequence: bad range (start=%lld end=%lld stride=%lld)",
                                   start, end, stride);
        goto out;
    }
    /* Item j is start + j * stride: within [start, end], so it fits. */
    long long items = diff / stride + 1;
    list = json_array();
    for (long long j = 0; list != NULL && j < items; j++) {
        struct aicp_buf b = AICP_BUF_INIT;
        int r = seq_format(&b, fmt, start + j * stride);
        if (r != 0) {
            aicp_buf_free(&b);
            rc = r == AICP_ENOMEM
                     ? oom(L)
                     : aicp_playbook_fail_at(L, loc, "with_sequence: bad format '%s'", fmt);
            goto out;
        }
        json_array_append_new(list, json_string(b.data ? b.data : ""));
        aicp_buf_free(&b);
    }
    *out = list;
    list = NULL;
    rc = *out ? 0 : oom(L);
out:
    json_decref(kv);
    json_decref(list);
    return rc;
}

/* The loop keywords. with_items, with_dict, with_together and with_nested
 * are stored as {"__with_items": X}, {"__with_dict": X}, ... for the
 * executor, which renders X first: with_items flattens one level what the
 * templates give (`["{{ pkgs }}", c]`), as Ansible's items lookup. */
int aicp_playbook_parse_loop(struct loader *L, struct aicp_task *t, const char *key,
                             const json_t *v, const struct aicp_loc *loc)
{
    if (t->loop != NULL)
        return aicp_playbook_fail_at(L, loc, "'%s' conflicts with another loop keyword of the task",
                                     key);
    if (strcmp(key, "with_sequence") == 0)
        return parse_sequence(L, v, loc, &t->loop);
    if (strcmp(key, "with_dict") == 0) {
        if (!json_is_object(v) && !(json_is_string(v) && aicp_tmpl_is_template(json_string_value(v))))
            return aicp_playbook_fail_at(L, loc, "with_dict expects a dict, got %s",
                                         aicp_playbook_type_word(v));
        t->loop = json_pack("{s:O}", "__with_dict", v);
        return t->loop ? 0 : oom(L);
    }
    if (strcmp(key, "with_together") == 0 || strcmp(key, "with_nested") == 0) {
        /* A list of lists (each may be a template), combined by the
         * executor: zipped (together) or crossed (nested). */
        if (!json_is_array(v) && !(json_is_string(v) && aicp_tmpl_is_template(json_string_value(v))))
            return aicp_playbook_fail_at(L, loc, "%s expects a list of lists, got %s", key,
                                         aicp_playbook_type_word(v));
        t->loop = json_pack("{s:O}", key[5] == 't' ? "__with_together" : "__with_nested", v);
        return t->loop ? 0 : oom(L);
    }
    if (strcmp(key, "with_items") == 0) {
        if (!json_is_array(v) && !json_is_string(v))
            return aicp_playbook_fail_at(
                L, loc, "Invalid data passed to 'with_items', it requires a list, got %s",
                aicp_playbook_type_word(v));
        t->loop = json_pack("{s:O}", "__with_items", v);
        return t->loop ? 0 : oom(L);
    }
    if (json_is_string(v)) {
        if (aicp_tmpl_is_template(json_string_value(v))) {
            t->loop = json_incref((json_t *)v);
            return 0;
        }
        if (strcmp(key, "loop") == 0)
            return aicp_playbook_fail_at(
                L, loc, "Invalid data passed to 'loop', it requires a list, got this instead: %s",
                json_string_value(v));
        t->loop = json_pack("[O]", v);
        return t->loop ? 0 : oom(L);
    }
    if (!json_is_array(v))
        return aicp_playbook_fail_at(L, loc,
                                     "Invalid data passed to '%s', it requires a list, got %s", key,
                                     aicp_playbook_type_word(v));
    t->loop = json_copy((json_t *)v);
    return t->loop ? 0 : oom(L);
}

int aicp_playbook_parse_loop_control(struct loader *L, struct aicp_task *t, const json_t *v,
                                     const struct aicp_loc *loc)
{
    const char *k;
    json_t *val;
    int rc;
    if (!json_is_object(v))
        return aicp_playbook_fail_at(L, loc, "'loop_control' must be a mapping, got %s",
                                     aicp_playbook_type_word(v));
    json_object_foreach((json_t *)v, k, val) {
        if (strcmp(k, "loop_var") == 0) {
            if ((rc = aicp_playbook_get_str(L, val, k, loc, &t->loop_var)) != 0)
                return rc;
        } else if (strcmp(k, "index_var") == 0) {
            if ((rc = aicp_playbook_get_str(L, val, k, loc, &t->index_var)) != 0)
                return rc;
        } else if (strcmp(k, "label") == 0) {
            json_decref(t->loop_label);
            t->loop_label = json_incref(val);
        } else if (strcmp(k, "extended") == 0 || strcmp(k, "extended_allitems") == 0) {
            continue; /* the loop variables are always there */
        } else {
            return aicp_playbook_fail_at(L, loc, "'%s' is not a valid attribute for a LoopControl",
                                         k);
        }
    }
    return 0;
}
