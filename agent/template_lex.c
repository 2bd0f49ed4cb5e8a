/* The front half of the Jinja2 engine: a lexer that splits a template
 * into text and tag tokens (with Jinja's whitespace control, raw blocks and
 * Ansible's trim_blocks and literal backslashes in task arguments) and a
 * recursive-descent parser that follows Jinja2's grammar and operator
 * precedence and builds the node tree declared in template.h. The
 * evaluator (template.c) and the static name analysis (template_names.c)
 * both start from aicp_tmpl_compile. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h> /* classification macros only: no libm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "template.h"
#include "util.h"

/* Nesting of brackets and statements in the source. */
#define MAX_PARSE_NEST 200

/* ------------------------------------------------------------------ lexer */

static int lex_fail(struct aicp_tmpl_lexer *lx, const char *msg, const char *what)
{
    lx->errline = lx->line;
    return aicp_err_set(lx->err, AICP_EINVAL, "%s%s", msg, what ? what : "");
}

static int lex_push(struct aicp_tmpl_lexer *lx, enum aicp_tmpl_tok_type type, int line,
                    const char *s, size_t len)
{
    if (lx->ntok == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 64;
        struct aicp_tmpl_tok *t = realloc(lx->toks, cap * sizeof(*t));
        if (t == NULL)
            return aicp_err_set(lx->err, AICP_ENOMEM, "out of memory");
        lx->toks = t;
        lx->cap = cap;
    }
    struct aicp_tmpl_tok *t = &lx->toks[lx->ntok];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->line = line;
    if (s != NULL) {
        t->s = malloc(len + 1);
        if (t->s == NULL)
            return aicp_err_set(lx->err, AICP_ENOMEM, "out of memory");
        memcpy(t->s, s, len);
        t->s[len] = '\0';
        t->len = len;
    }
    lx->ntok++;
    return 0;
}

static int is_space(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
           ch == '\f';
}

static void lex_advance(struct aicp_tmpl_lexer *lx, size_t to)
{
    for (; lx->pos < to && lx->pos < lx->n; lx->pos++)
        if (lx->src[lx->pos] == '\n')
            lx->line++;
}

/* Pushes src[start,end) as text, applying pending/requested stripping and
 * Jinja's newline normalisation (\r\n and \r become \n). */
static int lex_data(struct aicp_tmpl_lexer *lx, size_t start, size_t end, int rstrip)
{
    int line = lx->line;
    if (lx->lstrip_next)
        while (start < end && is_space(lx->src[start])) {
            if (lx->src[start] == '\n')
                line++;
            start++;
        }
    lx->lstrip_next = 0;
    if (rstrip)
        while (end > start && is_space(lx->src[end - 1]))
            end--;
    if (end <= start)
        return 0;
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = 0;
    for (size_t i = start; i < end && rc == 0; i++) {
        if (lx->src[i] == '\r') {
            rc = aicp_buf_append(&b, "\n", 1);
            if (i + 1 < end && lx->src[i + 1] == '\n')
                i++;
        } else {
            rc = aicp_buf_append(&b, &lx->src[i], 1);
        }
    }
    if (rc == 0)
        rc = lex_push(lx, AICP_TOK_DATA, line, b.data, b.len);
    else
        rc = aicp_err_set(lx->err, AICP_ENOMEM, "out of memory");
    aicp_buf_free(&b);
    return rc;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A string literal: Python's unicode-escape rules, which Jinja applies;
 * unknown escapes keep their backslash (so '\d' stays a regex escape). */
static int lex_string(struct aicp_tmpl_lexer *lx, int raw)
{
    const char *s = lx->src;
    char q = s[lx->pos];
    size_t i = lx->pos + 1;
    int line = lx->line;
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = 0;
    while (rc == 0) {
        if (i >= lx->n) {
            aicp_buf_free(&b);
            return lex_fail(lx, "unexpected end of string literal", NULL);
        }
        char ch = s[i];
        if (ch == q)
            break;
        if (ch != '\\' || i + 1 >= lx->n) {
            rc = aicp_buf_append(&b, &ch, 1);
            i++;
            continue;
        }
        char e = s[i + 1];
        i += 2;
        if (raw) {
            char two[2] = {'\\', e};
            rc = aicp_buf_append(&b, two, 2);
            continue;
        }
        const char *simple = NULL;
        switch (e) {
        case '\\': simple = "\\"; break;
        case '\'': simple = "'"; break;
        case '"': simple = "\""; break;
        case 'n': simple = "\n"; break;
        case 't': simple = "\t"; break;
        case 'r': simple = "\r"; break;
        case 'a': simple = "\a"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'v': simple = "\v"; break;
        case '\n': simple = ""; break;
        default: break;
        }
        if (simple != NULL) {
            rc = aicp_buf_puts(&b, simple);
            continue;
        }
        if (e >= '0' && e <= '7') {
            unsigned long v = (unsigned long)(e - '0');
            for (int k = 0; k < 2 && i < lx->n && s[i] >= '0' && s[i] <= '7'; k++)
                v = v * 8 + (unsigned long)(s[i++] - '0');
            rc = aicp_buf_utf8(&b, v);
            continue;
        }
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            unsigned long v = 0;
            int k;
            for (k = 0; k < digits && i + (size_t)k < lx->n; k++) {
                int h = hexval((unsigned char)s[i + (size_t)k]);
                if (h < 0)
                    break;
                v = v * 16 + (unsigned long)h;
            }
            if (k != digits || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
                aicp_buf_free(&b);
                return lex_fail(lx, "invalid escape in string literal", NULL);
            }
            i += (size_t)digits;
            rc = aicp_buf_utf8(&b, v);
            continue;
        }
        char two[2] = {'\\', e};
        rc = aicp_buf_append(&b, two, 2);
    }
    if (rc == 0)
        rc = lex_push(lx, AICP_TOK_STR, line, b.data ? b.data : "", b.len);
    aicp_buf_free(&b);
    if (rc == 0)
        lex_advance(lx, i + 1);
    return rc;
}

static int lex_number(struct aicp_tmpl_lexer *lx)
{
    const char *s = lx->src;
    size_t i = lx->pos, n = lx->n;
    char digits[128];
    size_t nd = 0;
    int is_float = 0, base = 10;
    if (s[i] == '0' && i + 1 < n && strchr("xXoObB", s[i + 1]) && s[i + 1]) {
        char p = (char)tolower((unsigned char)s[i + 1]);
        base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
        i += 2;
        while (i < n && (s[i] == '_' || (hexval((unsigned char)s[i]) >= 0 &&
                                         hexval((unsigned char)s[i]) < base))) {
            if (s[i] != '_' && nd < sizeof(digits) - 1)
                digits[nd++] = s[i];
            i++;
        }
        if (nd == 0)
            return lex_fail(lx, "invalid number literal", NULL);
    } else {
        while (i < n && (isdigit((unsigned char)s[i]) || s[i] == '_')) {
            if (s[i] != '_' && nd < sizeof(digits) - 1)
                digits[nd++] = s[i];
            i++;
        }
        int after_dot = lx->pos > 0 && s[lx->pos - 1] == '.';
        if (!after_dot && i + 1 < n && s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
            is_float = 1;
            if (nd < sizeof(digits) - 1)
                digits[nd++] = '.';
            i++;
            while (i < n && (isdigit((unsigned char)s[i]) || s[i] == '_')) {
                if (s[i] != '_' && nd < sizeof(digits) - 1)
                    digits[nd++] = s[i];
                i++;
            }
        }
        if (!after_dot && i < n && (s[i] == 'e' || s[i] == 'E')) {
            size_t j = i + 1;
            if (j < n && (s[j] == '+' || s[j] == '-'))
                j++;
            if (j < n && isdigit((unsigned char)s[j])) {
                is_float = 1;
                if (nd < sizeof(digits) - 1)
                    digits[nd++] = 'e';
                for (size_t k = i + 1; k < j && nd < sizeof(digits) - 1; k++)
                    digits[nd++] = s[k];
                i = j;
                while (i < n && (isdigit((unsigned char)s[i]) || s[i] == '_')) {
                    if (s[i] != '_' && nd < sizeof(digits) - 1)
                        digits[nd++] = s[i];
                    i++;
                }
            }
        }
    }
    if (nd >= sizeof(digits) - 1)
        return lex_fail(lx, "number literal too long", NULL);
    digits[nd] = '\0';
    int rc = lex_push(lx, is_float ? AICP_TOK_FLOAT : AICP_TOK_INT, lx->line, NULL, 0);
    if (rc != 0)
        return rc;
    struct aicp_tmpl_tok *t = &lx->toks[lx->ntok - 1];
    if (is_float) {
        t->f = strtod(digits, NULL);
        if (!isfinite(t->f))
            return lex_fail(lx, "float literal out of range", NULL);
    } else {
        errno = 0;
        unsigned long long v = strtoull(digits, NULL, base);
        if (errno != 0 || v > (unsigned long long)INT64_MAX)
            return lex_fail(lx, "integer literal too large", NULL);
        t->i = (json_int_t)v;
    }
    lex_advance(lx, i);
    return 0;
}

/* Lexes the inside of a {{ }} or {% %} tag. Like Jinja, the closing
 * delimiter only counts when brackets are balanced, so `{{ {'a': {}} }}`
 * works. */
static int lex_tag(struct aicp_tmpl_lexer *lx, int kind)
{
    const char *s = lx->src;
    int block = kind == 1, bare = kind == 2;
    const char *close = block ? "%}" : "}}";
    int depth = 0, strip_after = 0, rc;
    for (;;) {
        while (lx->pos < lx->n && is_space(s[lx->pos]))
            lex_advance(lx, lx->pos + 1);
        if (lx->pos >= lx->n && bare)
            break;
        if (lx->pos >= lx->n)
            return lex_fail(lx, "unexpected end of template, expected end of ",
                            block ? "statement block" : "print statement");
        size_t p = lx->pos;
        if (depth == 0 && !bare) {
            if ((s[p] == '-' || s[p] == '+') && p + 2 < lx->n &&
                strncmp(s + p + 1, close, 2) == 0) {
                strip_after = s[p] == '-';
                lex_advance(lx, p + 3);
                break;
            }
            if (p + 1 < lx->n && strncmp(s + p, close, 2) == 0) {
                lex_advance(lx, p + 2);
                break;
            }
        }
        unsigned char ch = (unsigned char)s[p];
        if (isalpha(ch) || ch == '_') {
            size_t e = p;
            while (e < lx->n && (isalnum((unsigned char)s[e]) || s[e] == '_'))
                e++;
            if ((rc = lex_push(lx, AICP_TOK_NAME, lx->line, s + p, e - p)) != 0)
                return rc;
            lex_advance(lx, e);
        } else if (isdigit(ch)) {
            if ((rc = lex_number(lx)) != 0)
                return rc;
        } else if (ch == '\'' || ch == '"') {
            if ((rc = lex_string(lx, lx->literal_backslashes && kind == 0)) != 0)
                return rc;
        } else {
            static const char *const two[] = {"//", "**", "==", "!=", ">=", "<="};
            size_t len = 0;
            for (size_t k = 0; k < sizeof(two) / sizeof(two[0]); k++)
                if (p + 1 < lx->n && strncmp(s + p, two[k], 2) == 0)
                    len = 2;
            if (len == 0 && ch && strchr("+-/*%~[](){}><=.:|,;", ch))
                len = 1;
            if (len == 0) {
                char what[8];
                snprintf(what, sizeof(what), "'%c'", isprint(ch) ? ch : '?');
                return lex_fail(lx, "unexpected char ", what);
            }
            if (ch == '(' || ch == '[' || ch == '{')
                depth++;
            else if ((ch == ')' || ch == ']' || ch == '}') && depth > 0)
                depth--;
            if ((rc = lex_push(lx, AICP_TOK_OP, lx->line, s + p, len)) != 0)
                return rc;
            lex_advance(lx, p + len);
        }
    }
    if ((rc = lex_push(lx, block ? AICP_TOK_BEND : AICP_TOK_VEND, lx->line, NULL, 0)) != 0)
        return rc;
    /* trim_blocks: the first newline after a block tag goes. */
    if (block && !strip_after && lx->pos < lx->n && s[lx->pos] == '\n')
        lex_advance(lx, lx->pos + 1);
    lx->lstrip_next = strip_after;
    return 0;
}

/* Matches `{%[-+]? raw [-]?%}` at p; returns the length or 0. */
static size_t match_word_tag(const char *s, size_t n, size_t p, const char *word,
                             int *strip_before, int *strip_after)
{
    size_t i = p + 2, wl = strlen(word);
    if (p + 2 > n || strncmp(s + p, "{%", 2) != 0)
        return 0;
    *strip_before = i < n && s[i] == '-';
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < n && is_space(s[i]))
        i++;
    if (i + wl > n || strncmp(s + i, word, wl) != 0)
        return 0;
    i += wl;
    while (i < n && is_space(s[i]))
        i++;
    *strip_after = i < n && s[i] == '-';
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    if (i + 2 > n || strncmp(s + i, "%}", 2) != 0)
        return 0;
    return i + 2 - p;
}

static int lex_raw(struct aicp_tmpl_lexer *lx, size_t taglen, int strip_after)
{
    const char *s = lx->src;
    lex_advance(lx, lx->pos + taglen);
    for (size_t p = lx->pos; p + 1 < lx->n; p++) {
        int sb, sa;
        size_t l = match_word_tag(s, lx->n, p, "endraw", &sb, &sa);
        if (l == 0)
            continue;
        lx->lstrip_next = strip_after;
        int rc = lex_data(lx, lx->pos, p, sb);
        if (rc != 0)
            return rc;
        lex_advance(lx, p + l);
        if (!sa && lx->pos < lx->n && s[lx->pos] == '\n')
            lex_advance(lx, lx->pos + 1);
        lx->lstrip_next = sa;
        return 0;
    }
    return lex_fail(lx, "Missing end of raw directive", NULL);
}

static int lex_all(struct aicp_tmpl_lexer *lx)
{
    const char *s = lx->src;
    int rc = 0;
    while (lx->pos < lx->n) {
        size_t p = lx->pos;
        while (p + 1 < lx->n &&
               !(s[p] == '{' && (s[p + 1] == '{' || s[p + 1] == '%' || s[p + 1] == '#')))
            p++;
        if (p + 1 >= lx->n) {
            rc = lex_data(lx, lx->pos, lx->n, 0);
            lex_advance(lx, lx->n);
            break;
        }
        int strip_before = p + 2 < lx->n && s[p + 2] == '-';
        if ((rc = lex_data(lx, lx->pos, p, strip_before)) != 0)
            break;
        lex_advance(lx, p);
        char kind = s[p + 1];
        size_t body = p + 2 + ((p + 2 < lx->n && (s[p + 2] == '-' || s[p + 2] == '+')) ? 1 : 0);
        if (kind == '#') {
            const char *e = NULL;
            for (size_t k = body; k + 1 < lx->n; k++)
                if (s[k] == '#' && s[k + 1] == '}') {
                    e = s + k;
                    break;
                }
            if (e == NULL)
                return lex_fail(lx, "Missing end of comment tag", NULL);
            int strip_after = e > s + body && e[-1] == '-';
            lex_advance(lx, (size_t)(e - s) + 2);
            if (!strip_after && lx->pos < lx->n && s[lx->pos] == '\n')
                lex_advance(lx, lx->pos + 1);
            lx->lstrip_next = strip_after;
            continue;
        }
        if (kind == '%') {
            int sb, sa;
            size_t l = match_word_tag(s, lx->n, p, "raw", &sb, &sa);
            if (l != 0) {
                if ((rc = lex_raw(lx, l, sa)) != 0)
                    break;
                continue;
            }
        }
        if ((rc = lex_push(lx, kind == '%' ? AICP_TOK_BBEGIN : AICP_TOK_VBEGIN, lx->line, NULL,
                           0)) != 0)
            break;
        lex_advance(lx, body);
        if ((rc = lex_tag(lx, kind == '%')) != 0)
            break;
    }
    if (rc == 0)
        rc = lex_push(lx, AICP_TOK_EOF, lx->line, NULL, 0);
    return rc;
}

void aicp_tmpl_lex_free(struct aicp_tmpl_lexer *lx)
{
    for (size_t i = 0; i < lx->ntok; i++)
        free(lx->toks[i].s);
    free(lx->toks);
    lx->toks = NULL;
    lx->ntok = lx->cap = 0;
}

/* ----------------------------------------------------------------- parser */

static struct aicp_tmpl_tok *cur(struct aicp_tmpl_parser *p)
{
    return &p->t[p->i < p->n ? p->i : p->n - 1];
}

static const char *tok_desc(const struct aicp_tmpl_tok *t)
{
    switch (t->type) {
    case AICP_TOK_EOF: return "end of template";
    case AICP_TOK_VEND: return "end of print statement";
    case AICP_TOK_BEND: return "end of statement block";
    case AICP_TOK_INT: return "integer";
    case AICP_TOK_FLOAT: return "float";
    case AICP_TOK_STR: return "string";
    case AICP_TOK_DATA: return "template data";
    case AICP_TOK_VBEGIN: return "begin of print statement";
    case AICP_TOK_BBEGIN: return "begin of statement block";
    default: return t->s ? t->s : "?";
    }
}

enum { PF_GOT, PF_NEAR, PF_QUOTE, PF_PLAIN };

/* Fails at the current token; mode says how the message names it. */
static int parse_fail(struct aicp_tmpl_parser *p, const char *msg, int mode)
{
    const char *t = tok_desc(cur(p));
    p->errline = cur(p)->line;
    switch (mode) {
    case PF_GOT: return aicp_err_set(p->err, AICP_EINVAL, "%s, got '%s'", msg, t);
    case PF_NEAR: return aicp_err_set(p->err, AICP_EINVAL, "%s (near '%s')", msg, t);
    case PF_QUOTE: return aicp_err_set(p->err, AICP_EINVAL, "%s '%s'", msg, t);
    default: return aicp_err_set(p->err, AICP_EINVAL, "%s", msg);
    }
}

static int is_op(struct aicp_tmpl_parser *p, const char *op)
{
    struct aicp_tmpl_tok *t = cur(p);
    return t->type == AICP_TOK_OP && strcmp(t->s, op) == 0;
}

static int is_name(struct aicp_tmpl_parser *p, const char *name)
{
    struct aicp_tmpl_tok *t = cur(p);
    return t->type == AICP_TOK_NAME && strcmp(t->s, name) == 0;
}

static int expect_op(struct aicp_tmpl_parser *p, const char *op)
{
    if (!is_op(p, op)) {
        char msg[64];
        snprintf(msg, sizeof(msg), "expected token '%s'", op);
        return parse_fail(p, msg, PF_GOT);
    }
    p->i++;
    return 0;
}

static struct aicp_tmpl_node *node_new(struct aicp_tmpl_parser *p, enum aicp_tmpl_node_kind kind)
{
    if (p->nall == p->capall) {
        size_t cap = p->capall ? p->capall * 2 : 64;
        struct aicp_tmpl_node **a = realloc(p->all, cap * sizeof(*a));
        if (a == NULL)
            return NULL;
        p->all = a;
        p->capall = cap;
    }
    struct aicp_tmpl_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->line = cur(p)->line;
    p->all[p->nall++] = n;
    return n;
}

static int node_add(struct aicp_tmpl_node *n, struct aicp_tmpl_node *kid, const char *kwname)
{
    if (n->n == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 4;
        struct aicp_tmpl_node **k = realloc(n->kids, cap * sizeof(*k));
        if (k == NULL)
            return AICP_ENOMEM;
        n->kids = k;
        char **nm = realloc(n->names, cap * sizeof(*nm));
        if (nm == NULL)
            return AICP_ENOMEM;
        n->names = nm;
        n->cap = cap;
    }
    n->names[n->n] = NULL;
    if (kwname != NULL && (n->names[n->n] = aicp_strdup(kwname)) == NULL)
        return AICP_ENOMEM;
    n->kids[n->n++] = kid;
    return 0;
}

void aicp_tmpl_parser_free(struct aicp_tmpl_parser *p)
{
    for (size_t i = 0; i < p->nall; i++) {
        struct aicp_tmpl_node *n = p->all[i];
        for (size_t k = 0; k < n->n; k++)
            free(n->names[k]);
        free(n->names);
        free(n->kids);
        free(n->name);
        json_decref(n->lit);
        free(n);
    }
    free(p->all);
    p->all = NULL;
    p->nall = 0;
}

#define NEW(var, kind)                                                  \
    do {                                                                \
        if (((var) = node_new(p, (kind))) == NULL)                      \
            return aicp_err_set(p->err, AICP_ENOMEM, "out of memory"); \
    } while (0)

static int parse_expr(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out);
static int parse_or(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out);
static int parse_unary(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out, int with_filter);
static int parse_primary(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out);

/* ( args ) after the opening paren was seen. */
static int parse_args(struct aicp_tmpl_parser *p, struct aicp_tmpl_node *call)
{
    int rc;
    p->i++; /* ( */
    while (!is_op(p, ")")) {
        if (call->n > 0 && (rc = expect_op(p, ",")) != 0)
            return rc;
        if (is_op(p, ")"))
            break;
        const char *kw = NULL;
        if (cur(p)->type == AICP_TOK_NAME && p->i + 1 < p->n &&
            p->t[p->i + 1].type == AICP_TOK_OP && strcmp(p->t[p->i + 1].s, "=") == 0) {
            kw = cur(p)->s;
            p->i += 2;
        }
        struct aicp_tmpl_node *arg;
        if ((rc = parse_expr(p, &arg)) != 0)
            return rc;
        if (node_add(call, arg, kw) != 0)
            return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
    }
    p->i++;
    return 0;
}

static int parse_subscript(struct aicp_tmpl_parser *p, struct aicp_tmpl_node *obj,
                           struct aicp_tmpl_node **out)
{
    struct aicp_tmpl_node *parts[3] = {NULL, NULL, NULL};
    int rc, nparts = 0, is_slice = 0;
    p->i++; /* [ */
    for (;;) {
        if (!is_op(p, ":") && !is_op(p, "]")) {
            if ((rc = parse_expr(p, &parts[nparts])) != 0)
                return rc;
        }
        if (is_op(p, ":") && nparts < 2) {
            is_slice = 1;
            nparts++;
            p->i++;
            continue;
        }
        break;
    }
    if ((rc = expect_op(p, "]")) != 0)
        return rc;
    struct aicp_tmpl_node *n;
    if (!is_slice) {
        if (parts[0] == NULL)
            return parse_fail(p, "expected an expression", PF_GOT);
        NEW(n, AICP_TN_ITEM);
        n->a = obj;
        n->b = parts[0];
    } else {
        NEW(n, AICP_TN_SLICE);
        n->a = obj;
        n->b = parts[0];
        n->c = parts[1];
        n->d = parts[2];
    }
    *out = n;
    return 0;
}

static int parse_postfix(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **inout)
{
    int rc;
    for (;;) {
        struct aicp_tmpl_node *n = NULL;
        if (is_op(p, ".")) {
            p->i++;
            struct aicp_tmpl_tok *t = cur(p);
            if (t->type == AICP_TOK_NAME) {
                NEW(n, AICP_TN_ATTR);
                if ((n->name = aicp_strdup(t->s)) == NULL)
                    return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            } else if (t->type == AICP_TOK_INT) {
                NEW(n, AICP_TN_ITEM);
                NEW(n->b, AICP_TN_LIT);
                if ((n->b->lit = json_integer(t->i)) == NULL)
                    return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            } else {
                return parse_fail(p, "expected name or number", PF_GOT);
            }
            p->i++;
            n->a = *inout;
            *inout = n;
        } else if (is_op(p, "[")) {
            if ((rc = parse_subscript(p, *inout, &n)) != 0)
                return rc;
            *inout = n;
        } else if (is_op(p, "(")) {
            NEW(n, AICP_TN_CALL);
            n->a = *inout;
            if ((rc = parse_args(p, n)) != 0)
                return rc;
            *inout = n;
        } else {
            return 0;
        }
    }
}

static int parse_filter_expr(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **inout)
{
    int rc;
    for (;;) {
        struct aicp_tmpl_node *n;
        if (is_op(p, "|")) {
            p->i++;
            if (cur(p)->type != AICP_TOK_NAME)
                return parse_fail(p, "expected filter name", PF_GOT);
            NEW(n, AICP_TN_FILTER);
            struct aicp_buf name = AICP_BUF_INIT;
            rc = aicp_buf_puts(&name, cur(p)->s);
            p->i++;
            /* Dotted names (ansible.builtin.to_json) name the same filter. */
            while (rc == 0 && is_op(p, ".") && p->i + 1 < p->n &&
                   p->t[p->i + 1].type == AICP_TOK_NAME) {
                aicp_buf_free(&name);
                rc = aicp_buf_puts(&name, p->t[p->i + 1].s);
                p->i += 2;
            }
            n->name = aicp_buf_steal(&name);
            if (rc != 0 || n->name == NULL)
                return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            n->a = *inout;
            if (is_op(p, "(") && (rc = parse_args(p, n)) != 0)
                return rc;
            *inout = n;
        } else if (is_name(p, "is")) {
            p->i++;
            NEW(n, AICP_TN_TEST);
            if (is_name(p, "not")) {
                n->neg = 1;
                p->i++;
            }
            if (cur(p)->type != AICP_TOK_NAME)
                return parse_fail(p, "expected test name", PF_GOT);
            if ((n->name = aicp_strdup(cur(p)->s)) == NULL)
                return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            p->i++;
            n->a = *inout;
            struct aicp_tmpl_tok *t = cur(p);
            if (is_op(p, "(")) {
                if ((rc = parse_args(p, n)) != 0)
                    return rc;
            } else if ((t->type == AICP_TOK_NAME || t->type == AICP_TOK_STR ||
                        t->type == AICP_TOK_INT || t->type == AICP_TOK_FLOAT || is_op(p, "[") ||
                        is_op(p, "{")) &&
                       !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
                if (is_name(p, "is"))
                    return parse_fail(p, "You cannot chain multiple tests with is", PF_PLAIN);
                struct aicp_tmpl_node *arg;
                if ((rc = parse_primary(p, &arg)) != 0 || (rc = parse_postfix(p, &arg)) != 0)
                    return rc;
                if (node_add(n, arg, NULL) != 0)
                    return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            }
            *inout = n;
        } else if (is_op(p, "(")) {
            NEW(n, AICP_TN_CALL);
            n->a = *inout;
            if ((rc = parse_args(p, n)) != 0)
                return rc;
            *inout = n;
        } else {
            return 0;
        }
    }
}

static int parse_primary(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out)
{
    struct aicp_tmpl_tok *t = cur(p);
    struct aicp_tmpl_node *n = NULL;
    int rc;
    if (t->type == AICP_TOK_NAME) {
        json_t *lit = NULL;
        int is_lit = 1;
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
            lit = json_true();
        else if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
            lit = json_false();
        else if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
            lit = json_null();
        else
            is_lit = 0;
        if (is_lit) {
            NEW(n, AICP_TN_LIT);
            n->lit = lit;
        } else {
            NEW(n, AICP_TN_NAME);
            if ((n->name = aicp_strdup(t->s)) == NULL)
                return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
        }
        p->i++;
    } else if (t->type == AICP_TOK_STR) {
        struct aicp_buf b = AICP_BUF_INIT;
        rc = 0;
        while (rc == 0 && cur(p)->type == AICP_TOK_STR) {
            rc = aicp_buf_append(&b, cur(p)->s, cur(p)->len);
            p->i++;
        }
        NEW(n, AICP_TN_LIT);
        n->lit = rc == 0 ? json_stringn(b.data ? b.data : "", b.len) : NULL;
        aicp_buf_free(&b);
        if (n->lit == NULL)
            return aicp_err_set(p->err, AICP_EINVAL, "invalid UTF-8 in string literal");
    } else if (t->type == AICP_TOK_INT || t->type == AICP_TOK_FLOAT) {
        NEW(n, AICP_TN_LIT);
        n->lit = t->type == AICP_TOK_INT ? json_integer(t->i) : json_real(t->f);
        if (n->lit == NULL)
            return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
        p->i++;
    } else if (is_op(p, "(") || is_op(p, "[")) {
        int paren = is_op(p, "(");
        const char *close = paren ? ")" : "]";
        p->i++;
        NEW(n, AICP_TN_LIST);
        int tuple = !paren;
        while (!is_op(p, close)) {
            if (n->n > 0) {
                if ((rc = expect_op(p, ",")) != 0)
                    return rc;
                tuple = 1;
                if (is_op(p, close))
                    break;
            }
            struct aicp_tmpl_node *item;
            if ((rc = parse_expr(p, &item)) != 0)
                return rc;
            if (node_add(n, item, NULL) != 0)
                return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
        }
        p->i++;
        /* (x) is just x; (x,) and (x, y) are tuples, kept as lists. */
        if (paren && !tuple && n->n == 1)
            n = n->kids[0];
    } else if (is_op(p, "{")) {
        p->i++;
        NEW(n, AICP_TN_DICT);
        while (!is_op(p, "}")) {
            if (n->n > 0) {
                if ((rc = expect_op(p, ",")) != 0)
                    return rc;
                if (is_op(p, "}"))
                    break;
            }
            struct aicp_tmpl_node *k, *v;
            if ((rc = parse_expr(p, &k)) != 0 || (rc = expect_op(p, ":")) != 0 ||
                (rc = parse_expr(p, &v)) != 0)
                return rc;
            if (node_add(n, k, NULL) != 0 || node_add(n, v, NULL) != 0)
                return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
        }
        p->i++;
    } else if (t->type == AICP_TOK_VEND || t->type == AICP_TOK_BEND || t->type == AICP_TOK_EOF) {
        return parse_fail(p, "Expected an expression", PF_GOT);
    } else {
        return parse_fail(p, "unexpected", PF_QUOTE);
    }
    *out = n;
    return 0;
}

static int parse_unary(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out, int with_filter)
{
    int rc;
    struct aicp_tmpl_node *n;
    if (++p->nest > MAX_PARSE_NEST) {
        rc = parse_fail(p, "expression nested too deeply", PF_NEAR);
        goto out;
    }
    if (is_op(p, "-") || is_op(p, "+")) {
        NEW(n, is_op(p, "-") ? AICP_TN_NEG : AICP_TN_POS);
        p->i++;
        if ((rc = parse_unary(p, &n->a, 0)) != 0)
            goto out;
    } else if ((rc = parse_primary(p, &n)) != 0) {
        goto out;
    }
    if ((rc = parse_postfix(p, &n)) != 0)
        goto out;
    if (with_filter && (rc = parse_filter_expr(p, &n)) != 0)
        goto out;
    *out = n;
out:
    p->nest--;
    return rc;
}

static int parse_binary_level(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out, int level);

/* Levels, loosest first: compare(handled apart), + -, ~, * / // %, **. */
static int parse_binary_level(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out, int level)
{
    static const char *const ops[4][4] = {
        {"+", "-", NULL, NULL}, {"~", NULL, NULL, NULL},
        {"*", "/", "//", "%"}, {"**", NULL, NULL, NULL}};
    int rc;
    struct aicp_tmpl_node *left;
    if (level == 4)
        return parse_unary(p, out, 1);
    if ((rc = parse_binary_level(p, &left, level + 1)) != 0)
        return rc;
    for (;;) {
        const char *op = NULL;
        for (int k = 0; k < 4 && ops[level][k]; k++)
            if (is_op(p, ops[level][k]))
                op = ops[level][k];
        if (op == NULL)
            break;
        p->i++;
        struct aicp_tmpl_node *n;
        NEW(n, AICP_TN_BIN);
        snprintf(n->op, sizeof(n->op), "%s", op);
        n->a = left;
        if ((rc = parse_binary_level(p, &n->b, level + 1)) != 0)
            return rc;
        left = n;
    }
    *out = left;
    return 0;
}

static int parse_compare(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out)
{
    int rc;
    struct aicp_tmpl_node *first;
    if ((rc = parse_binary_level(p, &first, 0)) != 0)
        return rc;
    struct aicp_tmpl_node *cmp = NULL;
    for (;;) {
        const char *op = NULL;
        static const char *const cops[] = {"==", "!=", "<", "<=", ">", ">="};
        for (size_t k = 0; k < 6; k++)
            if (is_op(p, cops[k]))
                op = cops[k];
        if (op == NULL && is_name(p, "in"))
            op = "in";
        if (op == NULL && is_name(p, "not") && p->i + 1 < p->n &&
            p->t[p->i + 1].type == AICP_TOK_NAME && strcmp(p->t[p->i + 1].s, "in") == 0) {
            op = "nin";
            p->i++;
        }
        if (op == NULL)
            break;
        p->i++;
        if (cmp == NULL) {
            NEW(cmp, AICP_TN_CMP);
            cmp->a = first;
        }
        struct aicp_tmpl_node *rhs;
        if ((rc = parse_binary_level(p, &rhs, 0)) != 0)
            return rc;
        if (node_add(cmp, rhs, op) != 0)
            return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
    }
    *out = cmp ? cmp : first;
    return 0;
}

static int parse_not(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out)
{
    if (is_name(p, "not")) {
        struct aicp_tmpl_node *n;
        int rc;
        NEW(n, AICP_TN_NOT);
        p->i++;
        if (++p->nest > MAX_PARSE_NEST)
            rc = parse_fail(p, "expression nested too deeply", PF_NEAR);
        else
            rc = parse_not(p, &n->a);
        p->nest--;
        *out = n;
        return rc;
    }
    return parse_compare(p, out);
}

static int parse_andor(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out, int is_or)
{
    int rc;
    struct aicp_tmpl_node *left;
    if ((rc = is_or ? parse_andor(p, &left, 0) : parse_not(p, &left)) != 0)
        return rc;
    while (is_name(p, is_or ? "or" : "and")) {
        p->i++;
        struct aicp_tmpl_node *n;
        NEW(n, is_or ? AICP_TN_OR : AICP_TN_AND);
        n->a = left;
        if ((rc = is_or ? parse_andor(p, &n->b, 0) : parse_not(p, &n->b)) != 0)
            return rc;
        left = n;
    }
    *out = left;
    return 0;
}

static int parse_or(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out)
{
    return parse_andor(p, out, 1);
}

static int parse_expr(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out)
{
    int rc;
    struct aicp_tmpl_node *n;
    if ((rc = parse_or(p, &n)) != 0)
        return rc;
    while (is_name(p, "if")) {
        p->i++;
        struct aicp_tmpl_node *c;
        NEW(c, AICP_TN_COND);
        c->a = n;
        if ((rc = parse_or(p, &c->b)) != 0)
            return rc;
        if (is_name(p, "else")) {
            p->i++;
            if ((rc = parse_expr(p, &c->c)) != 0)
                return rc;
        }
        n = c;
    }
    *out = n;
    return 0;
}

static int expect_end(struct aicp_tmpl_parser *p, enum aicp_tmpl_tok_type type)
{
    if (cur(p)->type != type)
        return parse_fail(p,
                          type == AICP_TOK_BEND ? "expected token 'end of statement block'"
                                                : "expected token 'end of print statement'",
                          PF_GOT);
    p->i++;
    return 0;
}

static int parse_body(struct aicp_tmpl_parser *p, struct aicp_tmpl_node *body,
                      const char *const *ends, const char **endtag);

static int parse_if(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const endonly[] = {"endif", NULL};
    struct aicp_tmpl_node *n;
    const char *tag;
    int rc;
    NEW(n, AICP_TN_IF);
    if ((rc = parse_expr(p, &n->a)) != 0 || (rc = expect_end(p, AICP_TOK_BEND)) != 0)
        return rc;
    NEW(n->b, AICP_TN_BODY);
    if ((rc = parse_body(p, n->b, ends, &tag)) != 0)
        return rc;
    if (!strcmp(tag, "elif")) {
        rc = parse_if(p, &n->c);
    } else if (!strcmp(tag, "else")) {
        NEW(n->c, AICP_TN_BODY);
        if ((rc = expect_end(p, AICP_TOK_BEND)) == 0 &&
            (rc = parse_body(p, n->c, endonly, &tag)) == 0)
            rc = expect_end(p, AICP_TOK_BEND);
    } else {
        rc = expect_end(p, AICP_TOK_BEND);
    }
    *out = n;
    return rc;
}

static int parse_for(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const endonly[] = {"endfor", NULL};
    struct aicp_tmpl_node *n;
    const char *tag;
    int rc;
    NEW(n, AICP_TN_FOR);
    struct aicp_tmpl_node *targets;
    NEW(targets, AICP_TN_BODY);
    n->d = targets;
    int paren = is_op(p, "(");
    if (paren)
        p->i++;
    do {
        if (targets->n > 0)
            p->i++;
        if (cur(p)->type != AICP_TOK_NAME || is_name(p, "in"))
            return parse_fail(p, "expected loop variable name", PF_GOT);
        if (node_add(targets, NULL, cur(p)->s) != 0)
            return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
        p->i++;
    } while (is_op(p, ","));
    if (paren && (rc = expect_op(p, ")")) != 0)
        return rc;
    if (!is_name(p, "in"))
        return parse_fail(p, "expected token 'in'", PF_GOT);
    p->i++;
    if ((rc = parse_or(p, &n->a)) != 0)
        return rc;
    if (is_name(p, "if")) {
        p->i++;
        if ((rc = parse_expr(p, &targets->a)) != 0)
            return rc;
    }
    if (is_name(p, "recursive"))
        return parse_fail(p, "recursive loops are not supported", PF_NEAR);
    if ((rc = expect_end(p, AICP_TOK_BEND)) != 0)
        return rc;
    NEW(n->b, AICP_TN_BODY);
    if ((rc = parse_body(p, n->b, ends, &tag)) != 0)
        return rc;
    if (!strcmp(tag, "else")) {
        NEW(n->c, AICP_TN_BODY);
        if ((rc = expect_end(p, AICP_TOK_BEND)) != 0 ||
            (rc = parse_body(p, n->c, endonly, &tag)) != 0)
            return rc;
    }
    *out = n;
    return expect_end(p, AICP_TOK_BEND);
}

static int parse_set(struct aicp_tmpl_parser *p, struct aicp_tmpl_node **out)
{
    static const char *const ends[] = {"endset", NULL};
    struct aicp_tmpl_node *n;
    int rc;
    NEW(n, AICP_TN_SET);
    if (cur(p)->type != AICP_TOK_NAME)
        return parse_fail(p, "expected variable name", PF_GOT);
    if ((n->name = aicp_strdup(cur(p)->s)) == NULL)
        return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
    p->i++;
    *out = n;
    if (is_op(p, "=")) {
        p->i++;
        if ((rc = parse_expr(p, &n->a)) != 0)
            return rc;
        return expect_end(p, AICP_TOK_BEND);
    }
    /* {% set x %}...{% endset %} captures rendered text. */
    const char *tag;
    NEW(n->b, AICP_TN_BODY);
    if ((rc = expect_end(p, AICP_TOK_BEND)) != 0 || (rc = parse_body(p, n->b, ends, &tag)) != 0)
        return rc;
    return expect_end(p, AICP_TOK_BEND);
}

static int parse_body(struct aicp_tmpl_parser *p, struct aicp_tmpl_node *body,
                      const char *const *ends, const char **endtag)
{
    int rc = 0;
    if (++p->nest > MAX_PARSE_NEST) {
        rc = parse_fail(p, "statements nested too deeply", PF_NEAR);
        goto out;
    }
    for (;;) {
        struct aicp_tmpl_tok *t = cur(p);
        struct aicp_tmpl_node *n = NULL;
        if (t->type == AICP_TOK_EOF) {
            if (ends != NULL) {
                char want[128];
                snprintf(want, sizeof(want), "'%s'", ends[0]);
                for (size_t k = 1; ends[k]; k++) {
                    size_t l = strlen(want);
                    snprintf(want + l, sizeof(want) - l, " or '%s'", ends[k]);
                }
                char msg[256];
                const char *block = "if";
                for (size_t k = 0; ends[k]; k++)
                    if (!strncmp(ends[k], "end", 3))
                        block = ends[k] + 3;
                snprintf(msg, sizeof(msg), "Unexpected end of template. Jinja was looking "
                         "for the following tags: %s. The innermost block that needs to be "
                         "closed is '%s'.", want, block);
                rc = parse_fail(p, msg, PF_PLAIN);
            }
            goto out;
        }
        if (t->type == AICP_TOK_DATA) {
            if ((n = node_new(p, AICP_TN_TEXT)) == NULL ||
                (n->lit = json_stringn(t->s, t->len)) == NULL) {
                rc = aicp_err_set(p->err, AICP_EINVAL, "invalid UTF-8 in template text");
                p->errline = t->line;
                goto out;
            }
            p->i++;
        } else if (t->type == AICP_TOK_VBEGIN) {
            p->i++;
            if ((n = node_new(p, AICP_TN_OUT)) == NULL) {
                rc = aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
                goto out;
            }
            if ((rc = parse_expr(p, &n->a)) != 0 || (rc = expect_end(p, AICP_TOK_VEND)) != 0)
                goto out;
        } else if (t->type == AICP_TOK_BBEGIN) {
            p->i++;
            t = cur(p);
            if (t->type != AICP_TOK_NAME) {
                rc = parse_fail(p, "tag name expected", PF_GOT);
                goto out;
            }
            for (size_t k = 0; ends && ends[k]; k++)
                if (!strcmp(t->s, ends[k])) {
                    *endtag = ends[k];
                    p->i++;
                    goto out;
                }
            p->i++;
            if (!strcmp(t->s, "if"))
                rc = parse_if(p, &n);
            else if (!strcmp(t->s, "for"))
                rc = parse_for(p, &n);
            else if (!strcmp(t->s, "set"))
                rc = parse_set(p, &n);
            else {
                p->i--;
                char msg[300];
                snprintf(msg, sizeof(msg), "Encountered unknown tag '%s'.", tok_desc(cur(p)));
                rc = parse_fail(p, msg, PF_PLAIN);
            }
            if (rc != 0)
                goto out;
        } else {
            rc = parse_fail(p, "unexpected", PF_QUOTE);
            goto out;
        }
        if (node_add(body, n, NULL) != 0) {
            rc = aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    }
out:
    p->nest--;
    return rc;
}

/* Lexes and parses a whole template (or, with expr_only, one bare
 * expression) into p; lx/p keep the tokens and nodes for the caller to
 * free. *line gets the line of a failure. */
int aicp_tmpl_compile(struct aicp_tmpl_parser *p, struct aicp_tmpl_lexer *lx, const char *src,
                      size_t len, int expr_only, int literal_backslashes, struct aicp_err *err,
                      struct aicp_tmpl_node **root, int *line)
{
    int rc;
    memset(lx, 0, sizeof(*lx));
    memset(p, 0, sizeof(*p));
    lx->literal_backslashes = literal_backslashes;
    lx->src = src;
    lx->n = len;
    lx->line = 1;
    lx->err = p->err = err;
    *line = 0;
    rc = expr_only ? lex_tag(lx, 2) : lex_all(lx);
    if (rc == 0 && expr_only)
        rc = lex_push(lx, AICP_TOK_EOF, lx->line, NULL, 0);
    if (rc != 0) {
        *line = lx->errline ? lx->errline : lx->line;
        return rc;
    }
    p->t = lx->toks;
    p->n = lx->ntok;
    struct aicp_tmpl_node *n;
    if ((n = node_new(p, AICP_TN_BODY)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (expr_only) {
        if (cur(p)->type == AICP_TOK_VEND)
            rc = parse_fail(p, "Expected an expression", PF_GOT);
        else if ((rc = parse_expr(p, &n->a)) == 0)
            rc = expect_end(p, AICP_TOK_VEND);
    } else {
        rc = parse_body(p, n, NULL, NULL);
    }
    if (rc != 0)
        *line = p->errline;
    *root = n;
    return rc;
}
