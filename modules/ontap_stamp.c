/* Provenance stamps in ONTAP comments (modules/ontap_stamp.h): how the
 * stamp is made from the task's provenance argument or the run, how it is
 * told apart from the user's comment when comparing, and how a result
 * says who last changed an object. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "module.h"
#include "ontap_stamp.h"
#include "ontaputil.h"

#define OPEN " [aicp "
#define LEGACY "aicp site="

void aicp_stamp_make(const struct aicp_ctx *ctx, const struct aicp_args *args, char *buf,
                     size_t cap)
{
    const char *p = aicp_args_str(args, "provenance");
    char dflt[256];

    if (buf == NULL || cap == 0)
        return;
    buf[0] = '\0';
    if (p != NULL) {
        /* "aicp site=x run=y" and "site=x run=y" both mean the same. */
        if (strncmp(p, "aicp ", 5) == 0)
            p += 5;
        while (*p == ' ')
            p++;
        if (*p != '\0')
            snprintf(buf, cap, "[aicp %.*s]", (int)strcspn(p, "[]\n"), p);
        return;
    }
    if (aicp_args_str(args, "comment") != NULL)
        return;
    aicp_ou_provenance(ctx, dflt, sizeof(dflt));
    snprintf(buf, cap, "[%s]", dflt);
}

size_t aicp_stamp_split(const char *comment, char *by, size_t by_cap)
{
    size_t n, open;
    const char *s, *last = NULL;

    if (by != NULL && by_cap > 0)
        by[0] = '\0';
    if (comment == NULL)
        return 0;
    n = strlen(comment);
    if (strncmp(comment, LEGACY, strlen(LEGACY)) == 0 && strchr(comment, '[') == NULL) {
        if (by != NULL && by_cap > 0)
            snprintf(by, by_cap, "%s", comment + 5);
        return 0;
    }
    if (n == 0 || comment[n - 1] != ']')
        return n;
    /* The last " [aicp " opens the stamp; "[aicp " at the start is a
     * comment that is only a stamp. */
    for (s = comment; (s = strstr(s, OPEN)) != NULL; s++)
        last = s;
    if (last != NULL) {
        open = (size_t)(last - comment);
        s = last + strlen(OPEN);
    } else if (strncmp(comment, &OPEN[1], strlen(OPEN) - 1) == 0) {
        open = 0;
        s = comment + strlen(OPEN) - 1;
    } else {
        return n;
    }
    if (by != NULL && by_cap > 0)
        snprintf(by, by_cap, "%.*s", (int)(comment + n - 1 - s), s);
    return open;
}

json_t *aicp_stamp_join(const char *base, size_t base_len, const char *stamp)
{
    char buf[2048];

    if (base == NULL)
        base_len = 0;
    if (stamp == NULL || stamp[0] == '\0')
        return json_stringn(base_len ? base : "", base_len);
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)base_len, base_len ? base : "", base_len ? " " : "",
             stamp);
    return json_string(buf);
}

void aicp_stamp_report(json_t *result, const char *comment)
{
    char by[AICP_STAMP_MAX];

    if (result == NULL)
        return;
    aicp_stamp_split(comment, by, sizeof(by));
    json_object_set_new(result, "last_changed_by", by[0] ? json_string(by) : json_null());
}
