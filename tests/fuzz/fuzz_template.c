/* Fuzz target for the template engine: the input is rendered as a whole
 * text template, as a task-argument string and as a bare expression, all
 * against a small fixed set of variables (including lazy and
 * self-referencing ones). Errors are fine; crashes, leaks and sanitizer
 * reports are not. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char vars_src[] =
    "{\"s\": \"abc\", \"n\": 5, \"f\": 1.5, \"t\": true, \"z\": null,"
    " \"l\": [1, \"x\", [2, 3]], \"d\": {\"k\": \"v\", \"e\": {\"x\": 1}},"
    " \"lazy\": \"{{ s | upper }}\", \"self\": \"{{ self }}\","
    " \"users\": [{\"name\": \"a\", \"on\": true}, {\"name\": \"b\", \"on\": false}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *src = malloc(size + 1);
    if (src == NULL)
        return 0;
    memcpy(src, data, size);
    src[size] = '\0';
    json_t *vars = json_loads(vars_src, 0, NULL);
    struct aicp_err err = {0};
    char *text = NULL;
    json_t *out = NULL;
    if (aicp_tmpl_render_text(&text, src, vars, &err) == 0)
        free(text);
    if (aicp_tmpl_render_str(&out, src, vars, &err) == 0) {
        char *s = NULL;
        if (aicp_tmpl_to_string(&s, out) == 0)
            free(s);
        json_decref(out);
    }
    out = NULL;
    if (aicp_tmpl_eval(&out, src, vars, &err) == 0)
        json_decref(out);
    json_decref(vars);
    free(src);
    return 0;
}
