/* The Jinja2 engine behind every `{{ }}` in playbooks, site files and
 * templates: a lexer that splits a template into text and tag tokens (with
 * Jinja's whitespace control and Ansible's trim_blocks), a recursive-descent
 * parser that follows Jinja2's grammar and precedence, and an evaluator over
 * jansson values. Undefined values propagate the way Ansible's
 * AnsibleUndefined does (attribute access on them stays undefined) and only
 * fail when used; variables whose values are templates are rendered lazily
 * when looked up. Filters, tests and global functions live in
 * template_filters.c. */
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
/* Depth of the expression tree walked at once (also across lazy renders);
 * long operator chains build deep trees, and each level costs stack. */
#define MAX_EVAL_NEST 1000
/* Lazy renders of variables inside variables, as Ansible bounds them. */
#define MAX_LAZY_DEPTH 50

enum tok_type { T_EOF, T_DATA, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME,
                T_INT, T_FLOAT, T_STR, T_OP };

struct tok {
    enum tok_type type;
    int line;
    char *s; /* DATA, NAME, STR, OP text (owned, NUL-terminated) */
    size_t len;
    json_int_t i;
    double f;
};

struct lexer {
    const char *src;
    size_t n, pos;
    int line;
    int lstrip_next;
    /* Ansible doubles backslashes in {{ }} string literals of task
     * arguments before Jinja sees them: there they are literal. */
    int literal_backslashes;
    struct tok *toks;
    size_t ntok, cap;
    struct aicp_err *err;
    int errline;
};

enum node_kind {
    N_BODY, N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_LIT, N_NAME, N_ATTR, N_ITEM,
    N_SLICE, N_CALL, N_FILTER, N_TEST, N_BIN, N_NEG, N_POS, N_NOT, N_AND, N_OR,
    N_COND, N_LIST, N_DICT, N_CMP
};

struct node {
    enum node_kind kind;
    int line;
    int neg;        /* N_TEST: `is not` */
    char *name;     /* NAME, ATTR, FILTER, TEST, SET target */
    char op[4];     /* BIN, CMP operator */
    json_t *lit;    /* LIT, TEXT */
    struct node *a, *b, *c, *d;
    struct node **kids; /* BODY items, call/filter args, LIST items, DICT k,v */
    char **names;       /* kwarg names parallel to kids (NULL: positional);
                           FOR targets */
    size_t n, cap, nnames;
};

struct parser {
    struct tok *t;
    size_t n, i;
    int nest;
    struct node **all; /* every node, freed in one sweep */
    size_t nall, capall;
    struct aicp_err *err;
    int errline;
};

struct ctx {
    const json_t *vars;
    json_t **scopes; /* innermost last; each a JSON object */
    size_t nscopes, capscopes;
    int lazy_depth;
    int *nest;       /* shared with lazy sub-renders */
    struct aicp_err *err;
    int line;
    char undef_msg[512];
    char undef_name[256];
};

static int eval(struct ctx *c, struct node *n, json_t **out);
static int render_value(struct ctx *c, json_t **out, const json_t *in);

/* ------------------------------------------------------------------ lexer */

static int lex_fail(struct lexer *lx, const char *msg, const char *what)
{
    lx->errline = lx->line;
    return aicp_err_set(lx->err, AICP_EINVAL, "%s%s", msg, what ? what : "");
}

static int lex_push(struct lexer *lx, enum tok_type type, int line,
                    const char *s, size_t len)
{
    if (lx->ntok == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 64;
        struct tok *t = realloc(lx->toks, cap * sizeof(*t));
        if (t == NULL)
            return aicp_err_set(lx->err, AICP_ENOMEM, "out of memory");
        lx->toks = t;
        lx->cap = cap;
    }
    struct tok *t = &lx->toks[lx->ntok];
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

static void lex_advance(struct lexer *lx, size_t to)
{
    for (; lx->pos < to && lx->pos < lx->n; lx->pos++)
        if (lx->src[lx->pos] == '\n')
            lx->line++;
}

/* Pushes src[start,end) as text, applying pending/requested stripping and
 * Jinja's newline normalisation (\r\n and \r become \n). */
static int lex_data(struct lexer *lx, size_t start, size_t end, int rstrip)
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
        rc = lex_push(lx, T_DATA, line, b.data, b.len);
    else
        rc = aicp_err_set(lx->err, AICP_ENOMEM, "out of memory");
    aicp_buf_free(&b);
    return rc;
}

static int put_utf8(struct aicp_buf *b, unsigned long cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return aicp_buf_append(b, u, n);
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
static int lex_string(struct lexer *lx, int raw)
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
            rc = put_utf8(&b, v);
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
            rc = put_utf8(&b, v);
            continue;
        }
        char two[2] = {'\\', e};
        rc = aicp_buf_append(&b, two, 2);
    }
    if (rc == 0)
        rc = lex_push(lx, T_STR, line, b.data ? b.data : "", b.len);
    aicp_buf_free(&b);
    if (rc == 0)
        lex_advance(lx, i + 1);
    return rc;
}

static int lex_number(struct lexer *lx)
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
    int rc = lex_push(lx, is_float ? T_FLOAT : T_INT, lx->line, NULL, 0);
    if (rc != 0)
        return rc;
    struct tok *t = &lx->toks[lx->ntok - 1];
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
static int lex_tag(struct lexer *lx, int kind)
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
            if ((rc = lex_push(lx, T_NAME, lx->line, s + p, e - p)) != 0)
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
            if ((rc = lex_push(lx, T_OP, lx->line, s + p, len)) != 0)
                return rc;
            lex_advance(lx, p + len);
        }
    }
    if ((rc = lex_push(lx, block ? T_BEND : T_VEND, lx->line, NULL, 0)) != 0)
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

static int lex_raw(struct lexer *lx, size_t taglen, int strip_after)
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

static int lex_all(struct lexer *lx)
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
        if ((rc = lex_push(lx, kind == '%' ? T_BBEGIN : T_VBEGIN, lx->line, NULL, 0)) != 0)
            break;
        lex_advance(lx, body);
        if ((rc = lex_tag(lx, kind == '%')) != 0)
            break;
    }
    if (rc == 0)
        rc = lex_push(lx, T_EOF, lx->line, NULL, 0);
    return rc;
}

static void lex_free(struct lexer *lx)
{
    for (size_t i = 0; i < lx->ntok; i++)
        free(lx->toks[i].s);
    free(lx->toks);
    lx->toks = NULL;
    lx->ntok = lx->cap = 0;
}

/* ----------------------------------------------------------------- parser */

static struct tok *cur(struct parser *p)
{
    return &p->t[p->i < p->n ? p->i : p->n - 1];
}

static const char *tok_desc(const struct tok *t)
{
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_VEND: return "end of print statement";
    case T_BEND: return "end of statement block";
    case T_INT: return "integer";
    case T_FLOAT: return "float";
    case T_STR: return "string";
    case T_DATA: return "template data";
    case T_VBEGIN: return "begin of print statement";
    case T_BBEGIN: return "begin of statement block";
    default: return t->s ? t->s : "?";
    }
}

enum { PF_GOT, PF_NEAR, PF_QUOTE, PF_PLAIN };

/* Fails at the current token; mode says how the message names it. */
static int parse_fail(struct parser *p, const char *msg, int mode)
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

static int is_op(struct parser *p, const char *op)
{
    struct tok *t = cur(p);
    return t->type == T_OP && strcmp(t->s, op) == 0;
}

static int is_name(struct parser *p, const char *name)
{
    struct tok *t = cur(p);
    return t->type == T_NAME && strcmp(t->s, name) == 0;
}

static int expect_op(struct parser *p, const char *op)
{
    if (!is_op(p, op)) {
        char msg[64];
        snprintf(msg, sizeof(msg), "expected token '%s'", op);
        return parse_fail(p, msg, PF_GOT);
    }
    p->i++;
    return 0;
}

static struct node *node_new(struct parser *p, enum node_kind kind)
{
    if (p->nall == p->capall) {
        size_t cap = p->capall ? p->capall * 2 : 64;
        struct node **a = realloc(p->all, cap * sizeof(*a));
        if (a == NULL)
            return NULL;
        p->all = a;
        p->capall = cap;
    }
    struct node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->line = cur(p)->line;
    p->all[p->nall++] = n;
    return n;
}

static int node_add(struct node *n, struct node *kid, const char *kwname)
{
    if (n->n == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 4;
        struct node **k = realloc(n->kids, cap * sizeof(*k));
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

static void parser_free(struct parser *p)
{
    for (size_t i = 0; i < p->nall; i++) {
        struct node *n = p->all[i];
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

static int parse_expr(struct parser *p, struct node **out);
static int parse_or(struct parser *p, struct node **out);
static int parse_unary(struct parser *p, struct node **out, int with_filter);
static int parse_primary(struct parser *p, struct node **out);

/* ( args ) after the opening paren was seen. */
static int parse_args(struct parser *p, struct node *call)
{
    int rc;
    p->i++; /* ( */
    while (!is_op(p, ")")) {
        if (call->n > 0 && (rc = expect_op(p, ",")) != 0)
            return rc;
        if (is_op(p, ")"))
            break;
        const char *kw = NULL;
        if (cur(p)->type == T_NAME && p->i + 1 < p->n && p->t[p->i + 1].type == T_OP &&
            strcmp(p->t[p->i + 1].s, "=") == 0) {
            kw = cur(p)->s;
            p->i += 2;
        }
        struct node *arg;
        if ((rc = parse_expr(p, &arg)) != 0)
            return rc;
        if (node_add(call, arg, kw) != 0)
            return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
    }
    p->i++;
    return 0;
}

static int parse_subscript(struct parser *p, struct node *obj, struct node **out)
{
    struct node *parts[3] = {NULL, NULL, NULL};
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
    struct node *n;
    if (!is_slice) {
        if (parts[0] == NULL)
            return parse_fail(p, "expected an expression", PF_GOT);
        NEW(n, N_ITEM);
        n->a = obj;
        n->b = parts[0];
    } else {
        NEW(n, N_SLICE);
        n->a = obj;
        n->b = parts[0];
        n->c = parts[1];
        n->d = parts[2];
    }
    *out = n;
    return 0;
}

static int parse_postfix(struct parser *p, struct node **inout)
{
    int rc;
    for (;;) {
        struct node *n = NULL;
        if (is_op(p, ".")) {
            p->i++;
            struct tok *t = cur(p);
            if (t->type == T_NAME) {
                NEW(n, N_ATTR);
                if ((n->name = aicp_strdup(t->s)) == NULL)
                    return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            } else if (t->type == T_INT) {
                NEW(n, N_ITEM);
                NEW(n->b, N_LIT);
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
            NEW(n, N_CALL);
            n->a = *inout;
            if ((rc = parse_args(p, n)) != 0)
                return rc;
            *inout = n;
        } else {
            return 0;
        }
    }
}

static int parse_filter_expr(struct parser *p, struct node **inout)
{
    int rc;
    for (;;) {
        struct node *n;
        if (is_op(p, "|")) {
            p->i++;
            if (cur(p)->type != T_NAME)
                return parse_fail(p, "expected filter name", PF_GOT);
            NEW(n, N_FILTER);
            struct aicp_buf name = AICP_BUF_INIT;
            rc = aicp_buf_puts(&name, cur(p)->s);
            p->i++;
            /* Dotted names (ansible.builtin.to_json) name the same filter. */
            while (rc == 0 && is_op(p, ".") && p->i + 1 < p->n &&
                   p->t[p->i + 1].type == T_NAME) {
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
            NEW(n, N_TEST);
            if (is_name(p, "not")) {
                n->neg = 1;
                p->i++;
            }
            if (cur(p)->type != T_NAME)
                return parse_fail(p, "expected test name", PF_GOT);
            if ((n->name = aicp_strdup(cur(p)->s)) == NULL)
                return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            p->i++;
            n->a = *inout;
            struct tok *t = cur(p);
            if (is_op(p, "(")) {
                if ((rc = parse_args(p, n)) != 0)
                    return rc;
            } else if ((t->type == T_NAME || t->type == T_STR || t->type == T_INT ||
                        t->type == T_FLOAT || is_op(p, "[") || is_op(p, "{")) &&
                       !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
                if (is_name(p, "is"))
                    return parse_fail(p, "You cannot chain multiple tests with is", PF_PLAIN);
                struct node *arg;
                if ((rc = parse_primary(p, &arg)) != 0 || (rc = parse_postfix(p, &arg)) != 0)
                    return rc;
                if (node_add(n, arg, NULL) != 0)
                    return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
            }
            *inout = n;
        } else if (is_op(p, "(")) {
            NEW(n, N_CALL);
            n->a = *inout;
            if ((rc = parse_args(p, n)) != 0)
                return rc;
            *inout = n;
        } else {
            return 0;
        }
    }
}

static int parse_primary(struct parser *p, struct node **out)
{
    struct tok *t = cur(p);
    struct node *n = NULL;
    int rc;
    if (t->type == T_NAME) {
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
            NEW(n, N_LIT);
            n->lit = lit;
        } else {
            NEW(n, N_NAME);
            if ((n->name = aicp_strdup(t->s)) == NULL)
                return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
        }
        p->i++;
    } else if (t->type == T_STR) {
        struct aicp_buf b = AICP_BUF_INIT;
        rc = 0;
        while (rc == 0 && cur(p)->type == T_STR) {
            rc = aicp_buf_append(&b, cur(p)->s, cur(p)->len);
            p->i++;
        }
        NEW(n, N_LIT);
        n->lit = rc == 0 ? json_stringn(b.data ? b.data : "", b.len) : NULL;
        aicp_buf_free(&b);
        if (n->lit == NULL)
            return aicp_err_set(p->err, AICP_EINVAL, "invalid UTF-8 in string literal");
    } else if (t->type == T_INT || t->type == T_FLOAT) {
        NEW(n, N_LIT);
        n->lit = t->type == T_INT ? json_integer(t->i) : json_real(t->f);
        if (n->lit == NULL)
            return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
        p->i++;
    } else if (is_op(p, "(") || is_op(p, "[")) {
        int paren = is_op(p, "(");
        const char *close = paren ? ")" : "]";
        p->i++;
        NEW(n, N_LIST);
        int tuple = !paren;
        while (!is_op(p, close)) {
            if (n->n > 0) {
                if ((rc = expect_op(p, ",")) != 0)
                    return rc;
                tuple = 1;
                if (is_op(p, close))
                    break;
            }
            struct node *item;
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
        NEW(n, N_DICT);
        while (!is_op(p, "}")) {
            if (n->n > 0) {
                if ((rc = expect_op(p, ",")) != 0)
                    return rc;
                if (is_op(p, "}"))
                    break;
            }
            struct node *k, *v;
            if ((rc = parse_expr(p, &k)) != 0 || (rc = expect_op(p, ":")) != 0 ||
                (rc = parse_expr(p, &v)) != 0)
                return rc;
            if (node_add(n, k, NULL) != 0 || node_add(n, v, NULL) != 0)
                return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
        }
        p->i++;
    } else if (t->type == T_VEND || t->type == T_BEND || t->type == T_EOF) {
        return parse_fail(p, "Expected an expression", PF_GOT);
    } else {
        return parse_fail(p, "unexpected", PF_QUOTE);
    }
    *out = n;
    return 0;
}

static int parse_unary(struct parser *p, struct node **out, int with_filter)
{
    int rc;
    struct node *n;
    if (++p->nest > MAX_PARSE_NEST) {
        rc = parse_fail(p, "expression nested too deeply", PF_NEAR);
        goto out;
    }
    if (is_op(p, "-") || is_op(p, "+")) {
        NEW(n, is_op(p, "-") ? N_NEG : N_POS);
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

static int parse_binary_level(struct parser *p, struct node **out, int level);

/* Levels, loosest first: compare(handled apart), + -, ~, * / // %, **. */
static int parse_binary_level(struct parser *p, struct node **out, int level)
{
    static const char *const ops[4][4] = {
        {"+", "-", NULL, NULL}, {"~", NULL, NULL, NULL},
        {"*", "/", "//", "%"}, {"**", NULL, NULL, NULL}};
    int rc;
    struct node *left;
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
        struct node *n;
        NEW(n, N_BIN);
        snprintf(n->op, sizeof(n->op), "%s", op);
        n->a = left;
        if ((rc = parse_binary_level(p, &n->b, level + 1)) != 0)
            return rc;
        left = n;
    }
    *out = left;
    return 0;
}

static int parse_compare(struct parser *p, struct node **out)
{
    int rc;
    struct node *first;
    if ((rc = parse_binary_level(p, &first, 0)) != 0)
        return rc;
    struct node *cmp = NULL;
    for (;;) {
        const char *op = NULL;
        static const char *const cops[] = {"==", "!=", "<", "<=", ">", ">="};
        for (size_t k = 0; k < 6; k++)
            if (is_op(p, cops[k]))
                op = cops[k];
        if (op == NULL && is_name(p, "in"))
            op = "in";
        if (op == NULL && is_name(p, "not") && p->i + 1 < p->n &&
            p->t[p->i + 1].type == T_NAME && strcmp(p->t[p->i + 1].s, "in") == 0) {
            op = "nin";
            p->i++;
        }
        if (op == NULL)
            break;
        p->i++;
        if (cmp == NULL) {
            NEW(cmp, N_CMP);
            cmp->a = first;
        }
        struct node *rhs;
        if ((rc = parse_binary_level(p, &rhs, 0)) != 0)
            return rc;
        if (node_add(cmp, rhs, op) != 0)
            return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
    }
    *out = cmp ? cmp : first;
    return 0;
}

static int parse_not(struct parser *p, struct node **out)
{
    if (is_name(p, "not")) {
        struct node *n;
        int rc;
        NEW(n, N_NOT);
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

static int parse_andor(struct parser *p, struct node **out, int is_or)
{
    int rc;
    struct node *left;
    if ((rc = is_or ? parse_andor(p, &left, 0) : parse_not(p, &left)) != 0)
        return rc;
    while (is_name(p, is_or ? "or" : "and")) {
        p->i++;
        struct node *n;
        NEW(n, is_or ? N_OR : N_AND);
        n->a = left;
        if ((rc = is_or ? parse_andor(p, &n->b, 0) : parse_not(p, &n->b)) != 0)
            return rc;
        left = n;
    }
    *out = left;
    return 0;
}

static int parse_or(struct parser *p, struct node **out)
{
    return parse_andor(p, out, 1);
}

static int parse_expr(struct parser *p, struct node **out)
{
    int rc;
    struct node *n;
    if ((rc = parse_or(p, &n)) != 0)
        return rc;
    while (is_name(p, "if")) {
        p->i++;
        struct node *c;
        NEW(c, N_COND);
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

static int expect_end(struct parser *p, enum tok_type type)
{
    if (cur(p)->type != type)
        return parse_fail(p, type == T_BEND ? "expected token 'end of statement block'"
                                            : "expected token 'end of print statement'", PF_GOT);
    p->i++;
    return 0;
}

static int parse_body(struct parser *p, struct node *body, const char *const *ends,
                      const char **endtag);

static int parse_if(struct parser *p, struct node **out)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const endonly[] = {"endif", NULL};
    struct node *n;
    const char *tag;
    int rc;
    NEW(n, N_IF);
    if ((rc = parse_expr(p, &n->a)) != 0 || (rc = expect_end(p, T_BEND)) != 0)
        return rc;
    NEW(n->b, N_BODY);
    if ((rc = parse_body(p, n->b, ends, &tag)) != 0)
        return rc;
    if (!strcmp(tag, "elif")) {
        rc = parse_if(p, &n->c);
    } else if (!strcmp(tag, "else")) {
        NEW(n->c, N_BODY);
        if ((rc = expect_end(p, T_BEND)) == 0 &&
            (rc = parse_body(p, n->c, endonly, &tag)) == 0)
            rc = expect_end(p, T_BEND);
    } else {
        rc = expect_end(p, T_BEND);
    }
    *out = n;
    return rc;
}

static int parse_for(struct parser *p, struct node **out)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const endonly[] = {"endfor", NULL};
    struct node *n;
    const char *tag;
    int rc;
    NEW(n, N_FOR);
    struct node *targets;
    NEW(targets, N_BODY);
    n->d = targets;
    int paren = is_op(p, "(");
    if (paren)
        p->i++;
    do {
        if (targets->n > 0)
            p->i++;
        if (cur(p)->type != T_NAME || is_name(p, "in"))
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
    if ((rc = expect_end(p, T_BEND)) != 0)
        return rc;
    NEW(n->b, N_BODY);
    if ((rc = parse_body(p, n->b, ends, &tag)) != 0)
        return rc;
    if (!strcmp(tag, "else")) {
        NEW(n->c, N_BODY);
        if ((rc = expect_end(p, T_BEND)) != 0 || (rc = parse_body(p, n->c, endonly, &tag)) != 0)
            return rc;
    }
    *out = n;
    return expect_end(p, T_BEND);
}

static int parse_set(struct parser *p, struct node **out)
{
    static const char *const ends[] = {"endset", NULL};
    struct node *n;
    int rc;
    NEW(n, N_SET);
    if (cur(p)->type != T_NAME)
        return parse_fail(p, "expected variable name", PF_GOT);
    if ((n->name = aicp_strdup(cur(p)->s)) == NULL)
        return aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
    p->i++;
    *out = n;
    if (is_op(p, "=")) {
        p->i++;
        if ((rc = parse_expr(p, &n->a)) != 0)
            return rc;
        return expect_end(p, T_BEND);
    }
    /* {% set x %}...{% endset %} captures rendered text. */
    const char *tag;
    NEW(n->b, N_BODY);
    if ((rc = expect_end(p, T_BEND)) != 0 || (rc = parse_body(p, n->b, ends, &tag)) != 0)
        return rc;
    return expect_end(p, T_BEND);
}

static int parse_body(struct parser *p, struct node *body, const char *const *ends,
                      const char **endtag)
{
    int rc = 0;
    if (++p->nest > MAX_PARSE_NEST) {
        rc = parse_fail(p, "statements nested too deeply", PF_NEAR);
        goto out;
    }
    for (;;) {
        struct tok *t = cur(p);
        struct node *n = NULL;
        if (t->type == T_EOF) {
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
        if (t->type == T_DATA) {
            if ((n = node_new(p, N_TEXT)) == NULL ||
                (n->lit = json_stringn(t->s, t->len)) == NULL) {
                rc = aicp_err_set(p->err, AICP_EINVAL, "invalid UTF-8 in template text");
                p->errline = t->line;
                goto out;
            }
            p->i++;
        } else if (t->type == T_VBEGIN) {
            p->i++;
            if ((n = node_new(p, N_OUT)) == NULL) {
                rc = aicp_err_set(p->err, AICP_ENOMEM, "out of memory");
                goto out;
            }
            if ((rc = parse_expr(p, &n->a)) != 0 || (rc = expect_end(p, T_VEND)) != 0)
                goto out;
        } else if (t->type == T_BBEGIN) {
            p->i++;
            t = cur(p);
            if (t->type != T_NAME) {
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
static int compile(struct parser *p, struct lexer *lx, const char *src, size_t len,
                   int expr_only, int literal_backslashes, struct aicp_err *err,
                   struct node **root, int *line)
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
        rc = lex_push(lx, T_EOF, lx->line, NULL, 0);
    if (rc != 0) {
        *line = lx->errline ? lx->errline : lx->line;
        return rc;
    }
    p->t = lx->toks;
    p->n = lx->ntok;
    struct node *n;
    if ((n = node_new(p, N_BODY)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (expr_only) {
        if (cur(p)->type == T_VEND)
            rc = parse_fail(p, "Expected an expression", PF_GOT);
        else if ((rc = parse_expr(p, &n->a)) == 0)
            rc = expect_end(p, T_VEND);
    } else {
        rc = parse_body(p, n, NULL, NULL);
    }
    if (rc != 0)
        *line = p->errline;
    *root = n;
    return rc;
}

/* -------------------------------------------------------------- evaluator */

static int fail(struct ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct ctx *c, int code, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return aicp_err_set(c->err, code, "%s", msg);
}

/* Produces an undefined value: NULL with the message kept for whoever
 * finally uses it. */
static int undef(struct ctx *c, json_t **out, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int undef(struct ctx *c, json_t **out, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->undef_msg, sizeof(c->undef_msg), fmt, ap);
    va_end(ap);
    snprintf(c->undef_name, sizeof(c->undef_name), "%s", name ? name : "");
    *out = NULL;
    return 0;
}

static int need(struct ctx *c, const json_t *v)
{
    if (v != NULL)
        return 0;
    return aicp_err_set(c->err, AICP_EUNDEF, "%s", c->undef_msg);
}

static int oom(struct ctx *c)
{
    return aicp_err_set(c->err, AICP_ENOMEM, "out of memory");
}

/* How Jinja names an object's type in undefined messages. */
static const char *obj_desc(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "dict object";
    case JSON_ARRAY: return "list object";
    case JSON_STRING: return "str object";
    case JSON_INTEGER: return "int object";
    case JSON_REAL: return "float object";
    case JSON_TRUE:
    case JSON_FALSE: return "bool object";
    default: return "None";
    }
}

static int has_template(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_STRING: return aicp_tmpl_is_template(json_string_value(v));
    case JSON_ARRAY:
        json_array_foreach(v, i, x) if (has_template(x)) return 1;
        return 0;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x) if (has_template(x)) return 1;
        return 0;
    default: return 0;
    }
}

static int scope_push(struct ctx *c)
{
    if (c->nscopes == c->capscopes) {
        size_t cap = c->capscopes ? c->capscopes * 2 : 8;
        json_t **s = realloc(c->scopes, cap * sizeof(*s));
        if (s == NULL)
            return oom(c);
        c->scopes = s;
        c->capscopes = cap;
    }
    if ((c->scopes[c->nscopes] = json_object()) == NULL)
        return oom(c);
    c->nscopes++;
    return 0;
}

static void scope_pop(struct ctx *c)
{
    json_decref(c->scopes[--c->nscopes]);
}

static int lookup(struct ctx *c, const char *name, json_t **out)
{
    json_t *v = NULL;
    for (size_t i = c->nscopes; i-- > 0 && v == NULL;)
        v = json_object_get(c->scopes[i], name);
    if (v == NULL && c->vars != NULL)
        v = json_object_get(c->vars, name);
    if (v == NULL)
        return undef(c, out, name, "'%s' is undefined", name);
    if (has_template(v))
        return render_value(c, out, v);
    *out = json_incref(v);
    return 0;
}

/* Indexes code points of a UTF-8 string: off[i] is the byte offset of the
 * i-th one, off[n] the length. */
static int utf8_offsets(const char *s, size_t len, size_t **off, size_t *n)
{
    size_t cnt = aicp_tmpl_utf8_len(s, len), k = 0;
    *off = malloc((cnt + 1) * sizeof(**off));
    if (*off == NULL)
        return AICP_ENOMEM;
    for (size_t i = 0; i < len && k < cnt; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            (*off)[k++] = i;
    (*off)[cnt] = len;
    *n = cnt;
    return 0;
}

static int getitem(struct ctx *c, json_t *obj, json_t *key, json_t **out)
{
    if (json_is_object(obj)) {
        json_t *v = NULL;
        char num[32];
        if (json_is_string(key)) {
            v = json_object_get(obj, json_string_value(key));
            if (v == NULL)
                return undef(c, out, json_string_value(key), "'dict object' has no attribute '%s'",
                             json_string_value(key));
        } else if (json_is_integer(key)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(key));
            if ((v = json_object_get(obj, num)) == NULL)
                return undef(c, out, num, "dict object has no element %s", num);
        } else {
            return undef(c, out, NULL, "dict object has no element of type %s",
                         aicp_tmpl_type_name(key));
        }
        *out = json_incref(v);
        return 0;
    }
    if (json_is_array(obj) || json_is_string(obj)) {
        if (!json_is_integer(key) && !json_is_boolean(key)) {
            if (json_is_string(key))
                return undef(c, out, json_string_value(key), "'%s' has no attribute '%s'",
                             obj_desc(obj), json_string_value(key));
            return fail(c, AICP_EINVAL, "%s indices must be integers, not %s",
                        json_is_array(obj) ? "list" : "string", aicp_tmpl_type_name(key));
        }
        json_int_t i = json_is_boolean(key) ? json_is_true(key) : json_integer_value(key);
        if (json_is_array(obj)) {
            json_int_t n = (json_int_t)json_array_size(obj);
            json_int_t j = i < 0 ? i + n : i;
            if (j < 0 || j >= n)
                return undef(c, out, NULL, "list object has no element %" JSON_INTEGER_FORMAT, i);
            *out = json_incref(json_array_get(obj, (size_t)j));
            return 0;
        }
        size_t *off, n;
        const char *s = json_string_value(obj);
        if (utf8_offsets(s, json_string_length(obj), &off, &n) != 0)
            return oom(c);
        json_int_t j = i < 0 ? i + (json_int_t)n : i;
        if (j < 0 || j >= (json_int_t)n) {
            free(off);
            return undef(c, out, NULL, "str object has no element %" JSON_INTEGER_FORMAT, i);
        }
        *out = json_stringn(s + off[j], off[j + 1] - off[j]);
        free(off);
        return *out ? 0 : oom(c);
    }
    if (json_is_string(key))
        return undef(c, out, json_string_value(key), "'%s' has no attribute '%s'", obj_desc(obj),
                     json_string_value(key));
    return undef(c, out, NULL, "%s has no element", obj_desc(obj));
}

static int slice_bound(struct ctx *c, struct node *n, json_int_t *out, int *given)
{
    *given = 0;
    if (n == NULL)
        return 0;
    json_t *v;
    int rc = eval(c, n, &v);
    if (rc == 0 && (rc = need(c, v)) == 0) {
        if (json_is_integer(v)) {
            *out = json_integer_value(v);
            *given = 1;
        } else if (!json_is_null(v)) {
            rc = fail(c, AICP_EINVAL, "slice indices must be integers or None");
        }
    }
    json_decref(v);
    return rc;
}

/* Python's obj[start:stop:step] for lists and strings. */
static int eval_slice(struct ctx *c, struct node *n, json_t **out)
{
    json_t *obj = NULL, *res = NULL;
    size_t *off = NULL, len = 0;
    json_int_t lo = 0, hi = 0, step = 1;
    int glo, ghi, gstep, rc;
    if ((rc = eval(c, n->a, &obj)) != 0 || (rc = need(c, obj)) != 0 ||
        (rc = slice_bound(c, n->b, &lo, &glo)) != 0 ||
        (rc = slice_bound(c, n->c, &hi, &ghi)) != 0 ||
        (rc = slice_bound(c, n->d, &step, &gstep)) != 0)
        goto out;
    if (step == 0) {
        rc = fail(c, AICP_EINVAL, "slice step cannot be zero");
        goto out;
    }
    if (json_is_array(obj)) {
        len = json_array_size(obj);
    } else if (json_is_string(obj)) {
        if (utf8_offsets(json_string_value(obj), json_string_length(obj), &off, &len) != 0) {
            rc = oom(c);
            goto out;
        }
    } else {
        rc = fail(c, AICP_EINVAL, "'%s' object is not subscriptable", aicp_tmpl_type_name(obj));
        goto out;
    }
    json_int_t L = (json_int_t)len;
    if (!glo)
        lo = step > 0 ? 0 : L - 1;
    else if (lo < 0)
        lo = lo + L < 0 ? (step > 0 ? 0 : -1) : lo + L;
    else if (lo >= L)
        lo = step > 0 ? L : L - 1;
    if (!ghi)
        hi = step > 0 ? L : -1;
    else if (hi < 0)
        hi = hi + L < 0 ? (step > 0 ? 0 : -1) : hi + L;
    else if (hi >= L)
        hi = step > 0 ? L : L - 1;
    struct aicp_buf b = AICP_BUF_INIT;
    res = json_is_array(obj) ? json_array() : NULL;
    for (json_int_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
        if (res != NULL)
            rc = json_array_append(res, json_array_get(obj, (size_t)i));
        else
            rc = aicp_buf_append(&b, json_string_value(obj) + off[i], off[i + 1] - off[i]);
        if (rc != 0 || (step > 0 ? i > INT64_MAX - step : i < INT64_MIN - step))
            break;
    }
    if (res == NULL && json_is_string(obj))
        res = json_stringn(b.data ? b.data : "", b.len);
    aicp_buf_free(&b);
    if (res == NULL)
        rc = oom(c);
out:
    free(off);
    json_decref(obj);
    *out = rc == 0 ? res : NULL;
    if (rc != 0)
        json_decref(res);
    return rc;
}

static int num_value(const json_t *v, double *d, json_int_t *i)
{
    if (json_is_integer(v)) {
        *i = json_integer_value(v);
        *d = (double)*i;
        return 1;
    }
    if (json_is_boolean(v)) {
        *i = json_is_true(v);
        *d = (double)*i;
        return 1;
    }
    if (json_is_real(v)) {
        *d = json_real_value(v);
        return 2;
    }
    return 0;
}

static json_t *make_real(double d)
{
    return isfinite(d) ? json_real(d) : NULL;
}

static int repeat(struct ctx *c, json_t *seq, json_int_t times, json_t **out)
{
    if (times < 0)
        times = 0;
    size_t unit = json_is_string(seq) ? json_string_length(seq) : json_array_size(seq);
    if (unit > 0 && (size_t)times > AICP_TMPL_MAX_OUTPUT / unit)
        return fail(c, AICP_EINVAL, "result of repetition exceeds %u bytes", AICP_TMPL_MAX_OUTPUT);
    if (json_is_string(seq)) {
        struct aicp_buf b = AICP_BUF_INIT;
        for (json_int_t k = 0; k < times; k++)
            if (aicp_buf_append(&b, json_string_value(seq), unit) != 0) {
                aicp_buf_free(&b);
                return oom(c);
            }
        *out = json_stringn(b.data ? b.data : "", b.len);
        aicp_buf_free(&b);
    } else {
        *out = json_array();
        for (json_int_t k = 0; k < times && *out; k++)
            json_array_extend(*out, seq);
    }
    return *out ? 0 : oom(c);
}

/* Python's `fmt % args` for the conversions playbooks use. The printf
 * spec is built at run time from validated flag, width and precision
 * characters and a known conversion, hence the local pragma. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int percent_format(struct ctx *c, json_t *fmtv, json_t *args, json_t **out)
{
    const char *f = json_string_value(fmtv);
    size_t flen = json_string_length(fmtv), argi = 0;
    size_t nspec = 0;
    for (size_t i = 0; i + 1 < flen; i++)
        if (f[i] == '%') {
            nspec += f[i + 1] != '%';
            i++;
        }
    /* A tuple literal is a list here; a list that doesn't match the
     * conversions is one argument, as a Python list would be. */
    int tuple = json_is_array(args) && json_array_size(args) == nspec;
    size_t nargs = tuple ? json_array_size(args) : 1;
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < flen && rc == 0; i++) {
        if (f[i] != '%') {
            rc = aicp_buf_append(&b, &f[i], 1);
            continue;
        }
        char spec[32];
        size_t k = 0;
        spec[k++] = '%';
        i++;
        while (i < flen && strchr("-+ #0123456789.", f[i]) && k < sizeof(spec) - 4)
            spec[k++] = f[i++];
        if (i >= flen) {
            rc = fail(c, AICP_EINVAL, "incomplete format");
            break;
        }
        char conv = f[i];
        if (conv == '%') {
            rc = aicp_buf_append(&b, "%", 1);
            continue;
        }
        if (argi >= nargs) {
            rc = fail(c, AICP_EINVAL, "not enough arguments for format string");
            break;
        }
        json_t *a = tuple ? json_array_get(args, argi) : args;
        argi++;
        double d;
        json_int_t iv = 0;
        int num = num_value(a, &d, &iv);
        if (conv == 's' || conv == 'r') {
            struct aicp_buf t = AICP_BUF_INIT;
            rc = conv == 's' ? aicp_tmpl_str(&t, a) : aicp_tmpl_repr(&t, a);
            spec[k++] = 's';
            spec[k] = '\0';
            if (rc == 0)
                rc = aicp_buf_printf(&b, spec, t.data ? t.data : "");
            aicp_buf_free(&t);
        } else if (strchr("dixXo", conv) && num) {
            if (num == 2)
                iv = (json_int_t)d;
            spec[k++] = 'l';
            spec[k++] = 'l';
            spec[k++] = conv == 'i' ? 'd' : conv;
            spec[k] = '\0';
            rc = aicp_buf_printf(&b, spec, (long long)iv);
        } else if (strchr("feEgG", conv) && num) {
            spec[k++] = conv;
            spec[k] = '\0';
            rc = aicp_buf_printf(&b, spec, d);
        } else {
            rc = fail(c, AICP_EINVAL, "%%%c format: a number is required, not %s", conv,
                      aicp_tmpl_type_name(a));
        }
    }
    if (rc == 0 && argi < nargs && tuple)
        rc = fail(c, AICP_EINVAL, "not all arguments converted during string formatting");
    if (rc == 0 && (*out = json_stringn(b.data ? b.data : "", b.len)) == NULL)
        rc = oom(c);
    aicp_buf_free(&b);
    return rc;
}

#pragma GCC diagnostic pop

static int binop(struct ctx *c, const char *op, json_t *l, json_t *r, json_t **out)
{
    double dl, dr;
    json_int_t il = 0, ir = 0, res;
    int nl = num_value(l, &dl, &il), nr = num_value(r, &dr, &ir);
    int both_int = nl == 1 && nr == 1;
    *out = NULL;
    if (!strcmp(op, "~")) {
        struct aicp_buf b = AICP_BUF_INIT;
        int rc = aicp_tmpl_str(&b, l);
        if (rc == 0)
            rc = aicp_tmpl_str(&b, r);
        if (rc == 0)
            *out = json_stringn(b.data ? b.data : "", b.len);
        aicp_buf_free(&b);
        return *out ? 0 : oom(c);
    }
    if (!strcmp(op, "+")) {
        if (both_int)
            *out = __builtin_add_overflow(il, ir, &res) ? NULL : json_integer(res);
        else if (nl && nr)
            *out = make_real(dl + dr);
        else if (json_is_string(l) && json_is_string(r)) {
            struct aicp_buf b = AICP_BUF_INIT;
            if (aicp_buf_append(&b, json_string_value(l), json_string_length(l)) == 0 &&
                aicp_buf_append(&b, json_string_value(r), json_string_length(r)) == 0)
                *out = json_stringn(b.data ? b.data : "", b.len);
            aicp_buf_free(&b);
        } else if (json_is_array(l) && json_is_array(r)) {
            if ((*out = json_copy(l)) != NULL)
                json_array_extend(*out, r);
        } else if (json_is_string(l) || json_is_array(l)) {
            return fail(c, AICP_EINVAL, "can only concatenate %s (not \"%s\") to %s",
                        aicp_tmpl_type_name(l), aicp_tmpl_type_name(r), aicp_tmpl_type_name(l));
        } else {
            goto unsupported;
        }
        return *out ? 0 : fail(c, AICP_EINVAL, "numeric overflow in +");
    }
    if (!strcmp(op, "*")) {
        if (both_int)
            *out = __builtin_mul_overflow(il, ir, &res) ? NULL : json_integer(res);
        else if (nl && nr)
            *out = make_real(dl * dr);
        else if ((json_is_string(l) || json_is_array(l)) && nr == 1)
            return repeat(c, l, ir, out);
        else if ((json_is_string(r) || json_is_array(r)) && nl == 1)
            return repeat(c, r, il, out);
        else
            goto unsupported;
        return *out ? 0 : fail(c, AICP_EINVAL, "numeric overflow in *");
    }
    if (!strcmp(op, "%") && json_is_string(l))
        return percent_format(c, l, r, out);
    if (!nl || !nr)
        goto unsupported;
    if (!strcmp(op, "-")) {
        if (both_int)
            *out = __builtin_sub_overflow(il, ir, &res) ? NULL : json_integer(res);
        else
            *out = make_real(dl - dr);
    } else if (!strcmp(op, "/")) {
        if (dr == 0)
            return fail(c, AICP_EINVAL, "division by zero");
        *out = make_real(dl / dr);
    } else if (!strcmp(op, "//") || !strcmp(op, "%")) {
        int is_div = op[0] == '/';
        if (dr == 0)
            return fail(c, AICP_EINVAL, both_int ? "integer division or modulo by zero"
                                                 : "float divmod()");
        if (both_int) {
            if (il == INT64_MIN && ir == -1)
                return fail(c, AICP_EINVAL, "numeric overflow in %s", op);
            json_int_t q = il / ir, m = il % ir;
            if (m != 0 && ((m < 0) != (ir < 0))) {
                q--;
                m += ir;
            }
            *out = json_integer(is_div ? q : m);
        } else {
            double q = aicp_tmpl_floor(dl / dr), m = dl - q * dr;
            *out = make_real(is_div ? q : m);
        }
    } else if (!strcmp(op, "**")) {
        if (both_int && ir >= 0) {
            json_int_t acc = 1, base = il;
            for (json_int_t e = ir; e > 0; e >>= 1) {
                if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                    return fail(c, AICP_EINVAL, "numeric overflow in **");
                if (e > 1 && __builtin_mul_overflow(base, base, &base))
                    return fail(c, AICP_EINVAL, "numeric overflow in **");
            }
            *out = json_integer(acc);
        } else {
            if (dl == 0 && dr < 0)
                return fail(c, AICP_EINVAL, "0.0 cannot be raised to a negative power");
            double pr;
            if (aicp_tmpl_pow(&pr, dl, dr) != 0)
                return fail(c, AICP_EINVAL, "** with a non-integral exponent is not supported");
            *out = make_real(pr);
        }
    }
    return *out ? 0 : fail(c, AICP_EINVAL, "numeric overflow in %s", op);
unsupported:
    return fail(c, AICP_EINVAL, "unsupported operand type(s) for %s: '%s' and '%s'", op,
                aicp_tmpl_type_name(l), aicp_tmpl_type_name(r));
}

static int contains(struct ctx *c, json_t *needle, json_t *hay, int *out)
{
    size_t i;
    json_t *x;
    if (json_is_string(hay)) {
        if (!json_is_string(needle))
            return fail(c, AICP_EINVAL, "'in <string>' requires string as left operand, not %s",
                        aicp_tmpl_type_name(needle));
        *out = strstr(json_string_value(hay), json_string_value(needle)) != NULL;
        return 0;
    }
    if (json_is_array(hay)) {
        *out = 0;
        json_array_foreach(hay, i, x) if (aicp_tmpl_equal(needle, x)) *out = 1;
        return 0;
    }
    if (json_is_object(hay)) {
        *out = json_is_string(needle) && json_object_get(hay, json_string_value(needle));
        return 0;
    }
    return fail(c, AICP_EINVAL, "argument of type '%s' is not iterable", aicp_tmpl_type_name(hay));
}

static int compare_op(struct ctx *c, const char *op, json_t *l, json_t *r, int *out)
{
    if (!strcmp(op, "==") || !strcmp(op, "!=")) {
        *out = aicp_tmpl_equal(l, r) == (op[0] == '=');
        return 0;
    }
    if (!strcmp(op, "in") || !strcmp(op, "nin")) {
        int rc = contains(c, l, r, out);
        if (op[0] == 'n')
            *out = !*out;
        return rc;
    }
    int cmp;
    if (aicp_tmpl_compare(&cmp, l, r, 0, NULL) != 0)
        return fail(c, AICP_EINVAL, "'%s' not supported between instances of '%s' and '%s'", op,
                    aicp_tmpl_type_name(l), aicp_tmpl_type_name(r));
    *out = op[0] == '<' ? (op[1] ? cmp <= 0 : cmp < 0) : (op[1] ? cmp >= 0 : cmp > 0);
    return 0;
}

/* Evaluates call arguments into a (with storage owned by the vectors). */
struct argvec {
    json_t *vals[16];
    const char *names[16];
    json_t *pos[16];
    json_t *kw[16];
    const char *kwname[16];
    size_t n;
};

static void args_free(struct argvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        json_decref(v->vals[i]);
    v->n = 0;
}

static int eval_args(struct ctx *c, struct node *call, struct argvec *v, struct aicp_tmpl_args *a)
{
    memset(a, 0, sizeof(*a));
    v->n = 0;
    if (call->n > 16)
        return fail(c, AICP_EINVAL, "too many arguments");
    for (size_t i = 0; i < call->n; i++) {
        json_t *x;
        int rc = eval(c, call->kids[i], &x);
        if (rc == 0)
            rc = need(c, x);
        if (rc != 0)
            return rc;
        v->vals[v->n] = x;
        v->names[v->n++] = call->names[i];
        if (call->names[i]) {
            v->kw[a->nkw] = x;
            v->kwname[a->nkw++] = call->names[i];
        } else {
            v->pos[a->npos++] = x;
        }
    }
    a->pos = v->pos;
    a->kw = v->kw;
    a->kwname = v->kwname;
    return 0;
}

static json_t *arg_get(const struct aicp_tmpl_args *a, size_t i, const char *kw)
{
    if (i < a->npos)
        return a->pos[i];
    for (size_t k = 0; k < a->nkw; k++)
        if (!strcmp(a->kwname[k], kw))
            return a->kw[k];
    return NULL;
}

static int eval_filter(struct ctx *c, struct node *n, json_t **out)
{
    struct argvec v = {.n = 0};
    struct aicp_tmpl_args a;
    json_t *in = NULL;
    int rc;
    if ((rc = eval(c, n->a, &in)) != 0)
        return rc;
    if (!strcmp(n->name, "default") || !strcmp(n->name, "d")) {
        if ((rc = eval_args(c, n, &v, &a)) != 0)
            goto out;
        json_t *dflt = arg_get(&a, 0, "default_value");
        json_t *boolean = arg_get(&a, 1, "boolean");
        if (in == NULL || (boolean && aicp_tmpl_truthy(boolean) && !aicp_tmpl_truthy(in))) {
            json_decref(in);
            in = dflt ? json_incref(dflt) : json_string("");
        }
        *out = in;
        in = NULL;
        goto out;
    }
    if (!strcmp(n->name, "mandatory") && in == NULL) {
        if ((rc = eval_args(c, n, &v, &a)) != 0)
            goto out;
        json_t *msg = arg_get(&a, 0, "msg");
        if (msg && json_is_string(msg))
            rc = fail(c, AICP_EUNDEF, "%s", json_string_value(msg));
        else if (c->undef_name[0])
            rc = fail(c, AICP_EUNDEF, "Mandatory variable '%s'  not defined.", c->undef_name);
        else
            rc = fail(c, AICP_EUNDEF, "Mandatory variable  not defined.");
        goto out;
    }
    if ((rc = need(c, in)) != 0 || (rc = eval_args(c, n, &v, &a)) != 0)
        goto out;
    rc = aicp_tmpl_filter_call(out, n->name, in, &a, c->err);
out:
    args_free(&v);
    json_decref(in);
    return rc;
}

static int eval_test(struct ctx *c, struct node *n, json_t **out)
{
    struct argvec v = {.n = 0};
    struct aicp_tmpl_args a;
    json_t *in = NULL;
    int rc, res = 0;
    if ((rc = eval(c, n->a, &in)) != 0)
        return rc;
    if (!strcmp(n->name, "defined") || !strcmp(n->name, "undefined")) {
        res = (in != NULL) == (n->name[0] == 'd');
    } else {
        if ((rc = need(c, in)) != 0 || (rc = eval_args(c, n, &v, &a)) != 0 ||
            (rc = aicp_tmpl_test_call(&res, n->name, in, &a, c->err)) != 0)
            goto out;
    }
    *out = json_boolean(n->neg ? !res : res);
out:
    args_free(&v);
    json_decref(in);
    return rc;
}

static int eval_call(struct ctx *c, struct node *n, json_t **out)
{
    struct argvec v = {.n = 0};
    struct aicp_tmpl_args a;
    json_t *obj = NULL;
    int rc;
    if (n->a->kind == N_NAME) {
        static const char *const globals[] = {"range", "lookup", "query", "q", "dict", NULL};
        int known = 0;
        for (size_t k = 0; globals[k]; k++)
            known |= !strcmp(globals[k], n->a->name);
        if (!known)
            return fail(c, AICP_EUNDEF, "'%s' is undefined", n->a->name);
        if ((rc = eval_args(c, n, &v, &a)) == 0)
            rc = aicp_tmpl_global_call(out, n->a->name, &a, c->err);
    } else if (n->a->kind == N_ATTR) {
        if ((rc = eval(c, n->a->a, &obj)) == 0 && (rc = need(c, obj)) == 0 &&
            (rc = eval_args(c, n, &v, &a)) == 0)
            rc = aicp_tmpl_method_call(out, obj, n->a->name, &a, c->err);
    } else {
        rc = fail(c, AICP_EINVAL, "object is not callable");
    }
    args_free(&v);
    json_decref(obj);
    return rc;
}

static int eval_inner(struct ctx *c, struct node *n, json_t **out)
{
    json_t *l = NULL, *r = NULL;
    int rc = 0, b;
    *out = NULL;
    switch (n->kind) {
    case N_LIT:
        *out = json_incref(n->lit);
        return 0;
    case N_NAME:
        return lookup(c, n->name, out);
    case N_ATTR:
        if ((rc = eval(c, n->a, &l)) != 0 || l == NULL)
            return rc; /* undefined stays undefined, as in Ansible */
        if (json_is_object(l)) {
            json_t *x = json_object_get(l, n->name);
            if (x != NULL)
                *out = json_incref(x);
            else
                rc = undef(c, out, n->name, "'dict object' has no attribute '%s'", n->name);
        } else {
            rc = undef(c, out, n->name, "'%s' has no attribute '%s'", obj_desc(l), n->name);
        }
        break;
    case N_ITEM:
        if ((rc = eval(c, n->a, &l)) != 0 || l == NULL)
            return rc;
        if ((rc = eval(c, n->b, &r)) == 0 && (rc = need(c, r)) == 0)
            rc = getitem(c, l, r, out);
        break;
    case N_SLICE:
        return eval_slice(c, n, out);
    case N_CALL:
        return eval_call(c, n, out);
    case N_FILTER:
        return eval_filter(c, n, out);
    case N_TEST:
        return eval_test(c, n, out);
    case N_BIN:
        if ((rc = eval(c, n->a, &l)) == 0 && (rc = need(c, l)) == 0 &&
            (rc = eval(c, n->b, &r)) == 0 && (rc = need(c, r)) == 0)
            rc = binop(c, n->op, l, r, out);
        break;
    case N_NEG:
    case N_POS: {
        double d;
        json_int_t i;
        if ((rc = eval(c, n->a, &l)) != 0 || (rc = need(c, l)) != 0)
            break;
        int num = num_value(l, &d, &i);
        if (!num)
            rc = fail(c, AICP_EINVAL, "bad operand type for unary %s: '%s'",
                      n->kind == N_NEG ? "-" : "+", aicp_tmpl_type_name(l));
        else if (n->kind == N_POS)
            *out = num == 1 ? json_integer(i) : json_real(d);
        else if (num == 1 && i == INT64_MIN)
            rc = fail(c, AICP_EINVAL, "numeric overflow in unary -");
        else
            *out = num == 1 ? json_integer(-i) : json_real(-d);
        break;
    }
    case N_NOT:
        if ((rc = eval(c, n->a, &l)) == 0 && (rc = need(c, l)) == 0)
            *out = json_boolean(!aicp_tmpl_truthy(l));
        break;
    case N_AND:
    case N_OR:
        if ((rc = eval(c, n->a, &l)) != 0 || (rc = need(c, l)) != 0)
            break;
        b = aicp_tmpl_truthy(l);
        if ((n->kind == N_AND) != b) {
            *out = l;
            return 0;
        }
        if ((rc = eval(c, n->b, &r)) == 0 && (rc = need(c, r)) == 0) {
            *out = r;
            r = NULL;
        }
        break;
    case N_COND:
        if ((rc = eval(c, n->b, &l)) != 0 || (rc = need(c, l)) != 0)
            break;
        if (aicp_tmpl_truthy(l))
            rc = eval(c, n->a, out);
        else if (n->c != NULL)
            rc = eval(c, n->c, out);
        else if ((*out = json_string("")) == NULL)
            rc = oom(c); /* what Ansible prints for a false if without else */
        break;
    case N_LIST:
        if ((*out = json_array()) == NULL)
            return oom(c);
        for (size_t i = 0; i < n->n && rc == 0; i++) {
            if ((rc = eval(c, n->kids[i], &l)) == 0 && (rc = need(c, l)) == 0)
                rc = json_array_append_new(*out, l) ? oom(c) : 0;
            else
                json_decref(l);
            l = NULL;
        }
        break;
    case N_DICT:
        if ((*out = json_object()) == NULL)
            return oom(c);
        for (size_t i = 0; i + 1 < n->n && rc == 0; i += 2) {
            if ((rc = eval(c, n->kids[i], &l)) != 0 || (rc = need(c, l)) != 0 ||
                (rc = eval(c, n->kids[i + 1], &r)) != 0 || (rc = need(c, r)) != 0)
                break;
            struct aicp_buf k = AICP_BUF_INIT;
            if ((rc = aicp_tmpl_str(&k, l)) == 0)
                rc = json_object_set(*out, k.data ? k.data : "", r) ? oom(c) : 0;
            aicp_buf_free(&k);
            json_decref(l);
            json_decref(r);
            l = r = NULL;
        }
        break;
    case N_CMP:
        if ((rc = eval(c, n->a, &l)) != 0 || (rc = need(c, l)) != 0)
            break;
        b = 1;
        for (size_t i = 0; i < n->n && b && rc == 0; i++) {
            if ((rc = eval(c, n->kids[i], &r)) != 0 || (rc = need(c, r)) != 0)
                break;
            rc = compare_op(c, n->names[i], l, r, &b);
            json_decref(l);
            l = r;
            r = NULL;
        }
        if (rc == 0)
            *out = json_boolean(b);
        break;
    default:
        rc = fail(c, AICP_EINVAL, "statement used as an expression");
    }
    json_decref(l);
    json_decref(r);
    if (rc != 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static int eval(struct ctx *c, struct node *n, json_t **out)
{
    *out = NULL;
    if (++*c->nest > MAX_EVAL_NEST) {
        --*c->nest;
        return fail(c, AICP_EINVAL, "expression nested too deeply");
    }
    int rc = eval_inner(c, n, out);
    --*c->nest;
    return rc;
}

/* ------------------------------------------------------------ statements */

static int exec_body(struct ctx *c, struct node *body, struct aicp_buf *out);

static int set_var(struct ctx *c, const char *name, json_t *v)
{
    return json_object_set(c->scopes[c->nscopes - 1], name, v) ? oom(c) : 0;
}

static int loop_item(struct ctx *c, struct node *n, json_t *items, size_t i, json_t *prev,
                     struct aicp_buf *out)
{
    struct node *targets = n->d;
    size_t len = json_array_size(items);
    json_t *item = json_array_get(items, i);
    int rc;
    if ((rc = scope_push(c)) != 0)
        return rc;
    json_t *loop = json_pack("{s:I,s:I,s:I,s:I,s:b,s:b,s:I,s:i,s:i}", "index", (json_int_t)i + 1,
                             "index0", (json_int_t)i, "revindex", (json_int_t)(len - i),
                             "revindex0", (json_int_t)(len - i - 1), "first", i == 0,
                             "last", i + 1 == len, "length", (json_int_t)len, "depth", 1,
                             "depth0", 0);
    if (loop == NULL) {
        rc = oom(c);
        goto out;
    }
    if (prev)
        json_object_set(loop, "previtem", prev);
    if (i + 1 < len)
        json_object_set(loop, "nextitem", json_array_get(items, i + 1));
    rc = json_object_set_new(c->scopes[c->nscopes - 1], "loop", loop) ? oom(c) : 0;
    if (rc == 0 && targets->n == 1) {
        rc = set_var(c, targets->names[0], item);
    } else if (rc == 0) {
        size_t got = json_is_array(item) ? json_array_size(item)
                     : json_is_string(item) ? aicp_tmpl_utf8_len(json_string_value(item),
                                                                 json_string_length(item)) : 0;
        if (!json_is_array(item) || got != targets->n) {
            rc = fail(c, AICP_EINVAL, got > targets->n ? "too many values to unpack (expected %zu)"
                                                       : "not enough values to unpack (expected %zu)",
                      targets->n);
            goto out;
        }
        for (size_t k = 0; k < targets->n && rc == 0; k++)
            rc = set_var(c, targets->names[k], json_array_get(item, k));
    }
    if (rc == 0)
        rc = exec_body(c, n->b, out);
out:
    scope_pop(c);
    return rc;
}

/* What a for loop walks: a list's items, a dict's keys, a string's
 * characters. */
static int iter_items(struct ctx *c, json_t *v, json_t **out)
{
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        *out = json_incref(v);
        return 0;
    }
    if ((*out = json_array()) == NULL)
        return oom(c);
    if (json_is_object(v)) {
        json_object_foreach(v, k, x) json_array_append_new(*out, json_string(k));
        return 0;
    }
    if (json_is_string(v)) {
        size_t *off, n;
        if (utf8_offsets(json_string_value(v), json_string_length(v), &off, &n) != 0)
            return oom(c);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(*out, json_stringn(json_string_value(v) + off[i],
                                                     off[i + 1] - off[i]));
        free(off);
        return 0;
    }
    json_decref(*out);
    *out = NULL;
    return fail(c, AICP_EINVAL, "'%s' object is not iterable", aicp_tmpl_type_name(v));
}

static int exec_for(struct ctx *c, struct node *n, struct aicp_buf *out)
{
    json_t *v = NULL, *items = NULL, *kept = NULL;
    int rc;
    if ((rc = eval(c, n->a, &v)) != 0 || (rc = need(c, v)) != 0 ||
        (rc = iter_items(c, v, &items)) != 0)
        goto out;
    if (n->d->a != NULL) {
        /* `for x in xs if cond`: filter first, so loop.length counts kept. */
        if ((kept = json_array()) == NULL) {
            rc = oom(c);
            goto out;
        }
        for (size_t i = 0; i < json_array_size(items) && rc == 0; i++) {
            json_t *t = NULL, *item = json_array_get(items, i);
            if ((rc = scope_push(c)) != 0)
                break;
            if (n->d->n == 1)
                rc = set_var(c, n->d->names[0], item);
            else
                for (size_t k = 0; k < n->d->n && rc == 0; k++)
                    rc = set_var(c, n->d->names[k], json_is_array(item) ? json_array_get(item, k)
                                                                        : json_null());
            if (rc == 0 && (rc = eval(c, n->d->a, &t)) == 0 && (rc = need(c, t)) == 0 &&
                aicp_tmpl_truthy(t))
                json_array_append(kept, item);
            json_decref(t);
            scope_pop(c);
        }
        json_decref(items);
        items = kept;
        kept = NULL;
        if (rc != 0)
            goto out;
    }
    for (size_t i = 0; i < json_array_size(items) && rc == 0; i++)
        rc = loop_item(c, n, items, i, i ? json_array_get(items, i - 1) : NULL, out);
    if (rc == 0 && json_array_size(items) == 0 && n->c != NULL)
        rc = exec_body(c, n->c, out);
out:
    json_decref(v);
    json_decref(items);
    json_decref(kept);
    return rc;
}

static int exec_node(struct ctx *c, struct node *n, struct aicp_buf *out)
{
    json_t *v = NULL;
    int rc = 0;
    c->line = n->line;
    switch (n->kind) {
    case N_TEXT:
        return aicp_buf_append(out, json_string_value(n->lit), json_string_length(n->lit))
                   ? oom(c) : 0;
    case N_OUT:
        /* Ansible's finalize prints none as nothing. */
        if ((rc = eval(c, n->a, &v)) == 0 && (rc = need(c, v)) == 0 && !json_is_null(v))
            rc = aicp_tmpl_str(out, v) ? oom(c) : 0;
        if (rc == 0 && out->len > AICP_TMPL_MAX_OUTPUT)
            rc = fail(c, AICP_EINVAL, "template output exceeds %u bytes", AICP_TMPL_MAX_OUTPUT);
        break;
    case N_IF:
        for (; n != NULL && n->kind == N_IF; n = n->c) {
            c->line = n->line;
            if ((rc = eval(c, n->a, &v)) != 0 || (rc = need(c, v)) != 0)
                break;
            int t = aicp_tmpl_truthy(v);
            json_decref(v);
            v = NULL;
            if (t)
                return exec_body(c, n->b, out);
        }
        if (rc == 0 && n != NULL)
            rc = exec_body(c, n, out);
        break;
    case N_FOR:
        return exec_for(c, n, out);
    case N_SET:
        if (n->a != NULL) {
            if ((rc = eval(c, n->a, &v)) == 0 && (rc = need(c, v)) == 0)
                rc = set_var(c, n->name, v);
        } else {
            struct aicp_buf b = AICP_BUF_INIT;
            if ((rc = exec_body(c, n->b, &b)) == 0)
                rc = (v = json_stringn(b.data ? b.data : "", b.len)) ? set_var(c, n->name, v)
                                                                     : oom(c);
            aicp_buf_free(&b);
        }
        break;
    default:
        rc = fail(c, AICP_EINVAL, "unexpected node");
    }
    json_decref(v);
    return rc;
}

static int exec_body(struct ctx *c, struct node *body, struct aicp_buf *out)
{
    int rc = 0;
    if (++*c->nest > MAX_EVAL_NEST) {
        --*c->nest;
        return fail(c, AICP_EINVAL, "statements nested too deeply");
    }
    for (size_t i = 0; i < body->n && rc == 0; i++)
        rc = exec_node(c, body->kids[i], out);
    --*c->nest;
    return rc;
}

/* ------------------------------------------------------------ entry points */

static int ctx_init(struct ctx *c, const json_t *vars, int *nest, struct aicp_err *err)
{
    memset(c, 0, sizeof(*c));
    c->vars = vars;
    c->nest = nest;
    c->err = err;
    return scope_push(c);
}

static void ctx_free(struct ctx *c)
{
    while (c->nscopes > 0)
        scope_pop(c);
    free(c->scopes);
}

/* A sub-context for rendering a variable's value: same variables and
 * locals (shared, borrowed), one level deeper. */
static int ctx_child(struct ctx *child, struct ctx *parent)
{
    memset(child, 0, sizeof(*child));
    child->vars = parent->vars;
    child->nest = parent->nest;
    child->err = parent->err;
    child->lazy_depth = parent->lazy_depth + 1;
    child->scopes = malloc((parent->nscopes + 1) * sizeof(json_t *));
    if (child->scopes == NULL)
        return oom(parent);
    for (size_t i = 0; i < parent->nscopes; i++)
        child->scopes[i] = json_incref(parent->scopes[i]);
    child->nscopes = child->capscopes = parent->nscopes;
    return scope_push(child);
}

/* Renders src in context c: native value for a lone {{ expr }}, else a
 * string. text_mode: errors carry the template line. */
static int render_src(struct ctx *c, const char *src, size_t len, int text_mode,
                      json_t **out, char **text)
{
    struct lexer lx;
    struct parser p;
    struct node *root = NULL;
    struct aicp_buf b = AICP_BUF_INIT;
    int line = 0, rc;
    if ((rc = compile(&p, &lx, src, len, 0, !text_mode, c->err, &root, &line)) != 0) {
        if (text_mode)
            aicp_err_prefix(c->err, "template line %d", line);
        else if (rc == AICP_EINVAL) {
            char msg[sizeof(c->err->msg)];
            snprintf(msg, sizeof(msg), "%s", c->err ? c->err->msg : "");
            aicp_err_set(c->err, rc, "template error while templating string: %s. String: %.200s",
                         msg, src);
        }
        goto out;
    }
    if (!text_mode && out != NULL && root->n == 1 && root->kids[0]->kind == N_OUT) {
        json_t *v;
        c->line = root->kids[0]->line;
        if ((rc = eval(c, root->kids[0]->a, &v)) == 0 && (rc = need(c, v)) == 0)
            *out = v;
        goto out;
    }
    if ((rc = exec_body(c, root, &b)) != 0) {
        if (text_mode)
            aicp_err_prefix(c->err, "template line %d", c->line);
        goto out;
    }
    /* Ansible keeps the source's trailing newlines (trim_blocks may have
     * eaten one after a final block tag). */
    size_t want = 0, have = 0;
    while (want < len && src[len - 1 - want] == '\n')
        want++;
    while (have < b.len && b.data[b.len - 1 - have] == '\n')
        have++;
    for (; have < want && rc == 0; have++)
        rc = aicp_buf_puts(&b, "\n") ? oom(c) : 0;
    if (rc != 0)
        goto out;
    if (text != NULL) {
        *text = aicp_buf_steal(&b);
        rc = *text ? 0 : oom(c);
    } else if ((*out = json_stringn(b.data ? b.data : "", b.len)) == NULL) {
        rc = fail(c, AICP_EINVAL, "template output is not valid UTF-8");
    }
out:
    aicp_buf_free(&b);
    parser_free(&p);
    lex_free(&lx);
    return rc;
}

static int render_value(struct ctx *c, json_t **out, const json_t *in)
{
    int rc = 0;
    *out = NULL;
    if (json_is_string(in)) {
        const char *s = json_string_value(in);
        if (!aicp_tmpl_is_template(s)) {
            *out = json_incref((json_t *)in);
            return 0;
        }
        if (c->lazy_depth >= MAX_LAZY_DEPTH)
            return fail(c, AICP_EINVAL, "recursive loop detected in template string: %.300s", s);
        struct ctx child;
        if ((rc = ctx_child(&child, c)) == 0)
            rc = render_src(&child, s, json_string_length(in), 0, out, NULL);
        ctx_free(&child);
        return rc;
    }
    if (json_is_array(in)) {
        size_t i;
        json_t *x, *r;
        if ((*out = json_array()) == NULL)
            return oom(c);
        json_array_foreach(in, i, x) {
            if ((rc = render_value(c, &r, x)) != 0)
                break;
            if (json_array_append_new(*out, r) != 0) {
                rc = oom(c);
                break;
            }
        }
    } else if (json_is_object(in)) {
        const char *k;
        json_t *x, *r, *kr;
        if ((*out = json_object()) == NULL)
            return oom(c);
        json_object_foreach((json_t *)in, k, x) {
            json_t *kin = json_string(k);
            if (kin == NULL) {
                rc = oom(c);
                break;
            }
            rc = render_value(c, &kr, kin);
            json_decref(kin);
            if (rc != 0)
                break;
            if ((rc = render_value(c, &r, x)) != 0) {
                json_decref(kr);
                break;
            }
            struct aicp_buf kb = AICP_BUF_INIT;
            if ((rc = aicp_tmpl_str(&kb, kr)) == 0 &&
                json_object_set_new(*out, kb.data ? kb.data : "", r) != 0)
                rc = oom(c);
            else if (rc != 0)
                json_decref(r);
            aicp_buf_free(&kb);
            json_decref(kr);
            if (rc != 0)
                break;
        }
    } else {
        *out = json_incref((json_t *)in);
    }
    if (rc != 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int aicp_tmpl_is_template(const char *s)
{
    return s != NULL && (strstr(s, "{{") != NULL || strstr(s, "{%") != NULL);
}

int aicp_tmpl_render(json_t **out, const json_t *in, const json_t *vars, struct aicp_err *err)
{
    struct ctx c;
    int nest = 0;
    int rc = ctx_init(&c, vars, &nest, err);
    /* Depth 0 here renders `in` itself; only variables are lazy. */
    c.lazy_depth = -1;
    if (rc == 0)
        rc = render_value(&c, out, in);
    ctx_free(&c);
    return rc;
}

int aicp_tmpl_render_str(json_t **out, const char *src, const json_t *vars,
                         struct aicp_err *err)
{
    json_t *s = json_string(src);
    if (s == NULL)
        return aicp_err_set(err, AICP_EINVAL, "template is not valid UTF-8");
    int rc = aicp_tmpl_render(out, s, vars, err);
    json_decref(s);
    return rc;
}

int aicp_tmpl_render_text(char **out, const char *src, const json_t *vars,
                          struct aicp_err *err)
{
    struct ctx c;
    int nest = 0;
    *out = NULL;
    int rc = ctx_init(&c, vars, &nest, err);
    if (rc == 0)
        rc = render_src(&c, src, strlen(src), 1, NULL, out);
    ctx_free(&c);
    return rc;
}

int aicp_tmpl_eval(json_t **out, const char *expr, const json_t *vars, struct aicp_err *err)
{
    struct lexer lx;
    struct parser p;
    struct node *root = NULL;
    struct ctx c;
    int nest = 0, line, rc;
    *out = NULL;
    if (aicp_tmpl_is_template(expr))
        return aicp_tmpl_render_str(out, expr, vars, err);
    if ((rc = ctx_init(&c, vars, &nest, err)) != 0)
        return rc;
    if ((rc = compile(&p, &lx, expr, strlen(expr), 1, 0, err, &root, &line)) != 0) {
        if (rc == AICP_EINVAL) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
            aicp_err_set(err, rc, "template error while templating string: %s. String: %.200s",
                         msg, expr);
        }
    } else if ((rc = eval(&c, root->a, out)) == 0 && (rc = need(&c, *out)) != 0) {
        json_decref(*out);
        *out = NULL;
    }
    parser_free(&p);
    lex_free(&lx);
    ctx_free(&c);
    return rc;
}

int aicp_tmpl_eval_bool(int *out, const char *expr, const json_t *vars, struct aicp_err *err)
{
    json_t *v = NULL;
    *out = 0;
    int rc = aicp_tmpl_eval(&v, expr, vars, err);
    if (rc == 0)
        *out = aicp_tmpl_truthy(v);
    json_decref(v);
    return rc;
}

int aicp_tmpl_to_string(char **out, const json_t *v)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = aicp_tmpl_str(&b, v);
    *out = rc == 0 ? aicp_buf_steal(&b) : NULL;
    aicp_buf_free(&b);
    return rc != 0 ? rc : *out ? 0 : AICP_ENOMEM;
}
