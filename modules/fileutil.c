/* Shared helpers for the file modules. The modules' check() builds one sh
 * script out of the fragments here, runs it in one round trip and parses
 * the records it prints; diff() compares that with the arguments using the
 * mode/owner helpers and the unified diff; apply() uses the attribute
 * script builder. Keeping the record format in one place keeps every
 * module's reading of the host consistent. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "conn.h"
#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

static const struct aicp_arg_spec *spec_find(const struct aicp_args *a, const char *name)
{
    if (a->mod == NULL || a->mod->args == NULL)
        return NULL;
    for (const struct aicp_arg_spec *s = a->mod->args; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

const json_t *aicp_fu_get(const struct aicp_args *a, const char *name)
{
    const json_t *v = a->v ? json_object_get(a->v, name) : NULL;
    return json_is_null(v) ? NULL : v;
}

const char *aicp_fu_str(const struct aicp_args *a, const char *name)
{
    const json_t *v = a->v ? json_object_get(a->v, name) : NULL;
    if (json_is_string(v))
        return json_string_value(v);
    if (v != NULL && !json_is_null(v))
        return NULL;
    const struct aicp_arg_spec *s = spec_find(a, name);
    return s ? s->def : NULL;
}

static int parse_bool_str(const char *s)
{
    static const char *const yes[] = {"yes", "true", "on", "1", "y", "t"};
    static const char *const no[] = {"no", "false", "off", "0", "n", "f"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

int aicp_fu_bool(const struct aicp_args *a, const char *name, int dflt)
{
    const json_t *v = a->v ? json_object_get(a->v, name) : NULL;
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    if (json_is_string(v)) {
        int b = parse_bool_str(json_string_value(v));
        return b < 0 ? dflt : b;
    }
    const struct aicp_arg_spec *s = spec_find(a, name);
    if (s && s->def) {
        int b = parse_bool_str(s->def);
        return b < 0 ? dflt : b;
    }
    return dflt;
}

/* Ansible's symbolic modes (module_utils/common/file.py): clauses split by
 * commas, each [ugoa]* then one or more [-+=][rwxXstugo]*. */
static int mode_symbolic(int *out, const char *s, int base, int isdir)
{
    int mode = base;
    const char *p = s;
    while (*p) {
        int who = 0; /* bits: 1 u, 2 g, 4 o */
        while (*p && strchr("ugoa", *p)) {
            who |= *p == 'u' ? 1 : *p == 'g' ? 2 : *p == 'o' ? 4 : 7;
            p++;
        }
        if (who == 0)
            who = 7;
        if (*p == '\0' || !strchr("+-=", *p))
            return -1;
        while (*p && strchr("+-=", *p)) {
            char op = *p++;
            int r = 0, w = 0, x = 0, X = 0, st = 0, t = 0, cu = -1, cg = -1, co = -1;
            for (; *p && strchr("rwxXstugo", *p); p++) {
                switch (*p) {
                case 'r':
                    r = 1;
                    break;
                case 'w':
                    w = 1;
                    break;
                case 'x':
                    x = 1;
                    break;
                case 'X':
                    X = 1;
                    break;
                case 's':
                    st = 1;
                    break;
                case 't':
                    t = 1;
                    break;
                case 'u':
                    cu = (mode >> 6) & 7;
                    break;
                case 'g':
                    cg = (mode >> 3) & 7;
                    break;
                default:
                    co = mode & 7;
                    break;
                }
            }
            if (X && (isdir || (mode & 0111)))
                x = 1;
            int trip = (r ? 4 : 0) | (w ? 2 : 0) | (x ? 1 : 0);
            if (cu >= 0)
                trip |= cu;
            if (cg >= 0)
                trip |= cg;
            if (co >= 0)
                trip |= co;
            int bits = 0, mask = 0;
            if (who & 1) {
                bits |= trip << 6 | (st ? 04000 : 0);
                mask |= 0700 | 04000;
            }
            if (who & 2) {
                bits |= trip << 3 | (st ? 02000 : 0);
                mask |= 0070 | 02000;
            }
            if (who & 4) {
                bits |= trip | (t ? 01000 : 0);
                mask |= 0007 | 01000;
            }
            if (op == '+')
                mode |= bits;
            else if (op == '-')
                mode &= ~bits;
            else
                mode = (mode & ~mask) | bits;
        }
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    *out = mode & 07777;
    return 0;
}

int aicp_fu_mode_parse(int *out, const json_t *v, int base, int isdir, struct aicp_err *err)
{
    *out = -1;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        json_int_t m = json_integer_value(v);
        if (m < 0 || m > 07777)
            return aicp_err_set(err, AICP_EINVAL, "mode %lld is out of range", (long long)m);
        *out = (int)m;
        return 0;
    }
    if (!json_is_string(v))
        return aicp_err_set(err, AICP_EINVAL, "mode must be a string or an integer");
    const char *s = json_string_value(v);
    if (*s && strspn(s, "01234567") == strlen(s)) {
        long m = strtol(s, NULL, 8);
        if (m > 07777)
            return aicp_err_set(err, AICP_EINVAL, "mode '%s' is out of range", s);
        *out = (int)m;
        return 0;
    }
    if (base < 0)
        base = isdir ? 0755 : 0644;
    if (*s == '\0' || mode_symbolic(out, s, base & 07777, isdir) != 0) {
        *out = -1;
        return aicp_err_set(err, AICP_EINVAL,
                            "mode must be in octal or symbolic form: '%s' is neither", s);
    }
    return 0;
}

void aicp_fu_mode_fmt(char *out, int mode)
{
    snprintf(out, 8, "%04o", (unsigned)(mode & 07777));
}

int aicp_fu_exec(struct aicp_ctx *ctx, const char *script, const void *in, size_t inlen,
                 struct aicp_exec_result *res, struct aicp_err *err)
{
    memset(res, 0, sizeof(*res));
    if (ctx->conn == NULL)
        return aicp_err_set(err, AICP_EINVAL, "%s: no connection to run on",
                            ctx->host ? ctx->host : "?");
    return aicp_conn_exec(ctx->conn, script, in, inlen, ctx->become, res, err);
}

/* Sets $_p to path (quoted); a NULL path keeps the $_p already set, so that
 * callers can point the builders at a path the script computed. */
static int set_p(struct aicp_buf *b, const char *path)
{
    if (path == NULL)
        return 0;
    int rc = aicp_buf_puts(b, "_p=");
    rc = rc ? rc : aicp_buf_shquote(b, path);
    rc = rc ? rc : aicp_buf_puts(b, "\n");
    return rc;
}

int aicp_fu_sh_stat(struct aicp_buf *b, const char *key, const char *path, int follow)
{
    int rc = set_p(b, path);
    rc = rc ? rc
            : aicp_buf_printf(b,
                              /* no $(...): a subshell per stat is a process start */
                              "stat %s-c '%s S %%f %%u %%g %%s %%Y %%h %%i %%d %%U %%G %%X %%Z' -- "
                              "\"$_p\" 2>/dev/null || printf '%s S -\\n'\n",
                              follow ? "-L " : "", key, key);
    if (!follow)
        rc = rc ? rc
                : aicp_buf_printf(b,
                                  "if [ -L \"$_p\" ]; then printf '%s L %%s\\n' "
                                  "\"$(readlink -- \"$_p\")\"; fi\n",
                                  key);
    return rc;
}

int aicp_fu_sh_hash(struct aicp_buf *b, const char *key, const char *path, const char *algo)
{
    if (strspn(algo, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(algo))
        return AICP_EINVAL;
    int rc = set_p(b, path);
    rc = rc ? rc
            : aicp_buf_printf(b,
                              "if [ -f \"$_p\" ] && [ -r \"$_p\" ] && "
                              "_h=$(%ssum < \"$_p\"); then printf '%s H %%s\\n' "
                              "\"${_h%%%% *}\"; fi\n",
                              algo, key);
    return rc;
}

int aicp_fu_sh_content(struct aicp_buf *b, const char *key, const char *path, long max)
{
    int rc = set_p(b, path);
    rc = rc ? rc
            : aicp_buf_puts(b, "if [ -f \"$_p\" ] && [ -r \"$_p\" ]; then "
                               "_n=$(($(wc -c < \"$_p\"))); ");
    if (max >= 0)
        rc = rc ? rc : aicp_buf_printf(b, "if [ \"$_n\" -le %ld ]; then ", max);
    rc = rc ? rc
            : aicp_buf_printf(b,
                              "printf '%s C %%s\\n' \"$_n\"; cat -- \"$_p\"; "
                              "printf '\\n'; ",
                              key);
    if (max >= 0)
        rc = rc ? rc : aicp_buf_puts(b, "fi; ");
    rc = rc ? rc : aicp_buf_puts(b, "fi\n");
    return rc;
}

int aicp_fu_sh_glob(struct aicp_buf *b, const char *pattern)
{
    int rc = 0;
    for (const char *p = pattern; rc == 0 && *p; p++) {
        if (strchr("*?[]", *p)) {
            rc = aicp_buf_append(b, p, 1);
        } else {
            char one[2] = {*p, '\0'};
            rc = aicp_buf_shquote(b, one);
        }
    }
    if (rc == 0 && *pattern == '\0')
        rc = aicp_buf_puts(b, "''");
    return rc;
}

int aicp_fu_is_text(const char *s, size_t len)
{
    if (memchr(s, '\0', len) != NULL)
        return 0;
    json_t *j = json_stringn(s, len);
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

static const char *type_name(unsigned long m)
{
    switch (m & 0170000) {
    case 0100000:
        return "file";
    case 0040000:
        return "directory";
    case 0120000:
        return "link";
    case 0010000:
        return "fifo";
    case 0140000:
        return "socket";
    case 0060000:
        return "block";
    case 0020000:
        return "char";
    default:
        return "other";
    }
}

static json_t *rec_obj(json_t *all, const char *key)
{
    json_t *o = json_object_get(all, key);
    if (o == NULL) {
        o = json_object();
        if (o == NULL || json_object_set_new(all, key, o) != 0)
            return NULL;
    }
    return o;
}

static int parse_stat(json_t *o, const char *s)
{
    if (strcmp(s, "-") == 0)
        return json_object_set_new(o, "exists", json_false());
    unsigned long m = 0, uid = 0, gid = 0, nlink = 0, ino = 0, dev = 0;
    long long size = 0, mtime = 0, atime = 0, ctime = 0;
    char user[256] = "", group[256] = "";
    if (sscanf(s, "%lx %lu %lu %lld %lld %lu %lu %lu %255s %255s %lld %lld", &m, &uid, &gid, &size,
               &mtime, &nlink, &ino, &dev, user, group, &atime, &ctime) < 8)
        return -1;
    char mode[8];
    aicp_fu_mode_fmt(mode, (int)(m & 07777));
    int rc = json_object_set_new(o, "exists", json_true());
    rc |= json_object_set_new(o, "type", json_string(type_name(m)));
    rc |= json_object_set_new(o, "mode", json_string(mode));
    rc |= json_object_set_new(o, "mode_int", json_integer((json_int_t)(m & 07777)));
    rc |= json_object_set_new(o, "uid", json_integer((json_int_t)uid));
    rc |= json_object_set_new(o, "gid", json_integer((json_int_t)gid));
    rc |= json_object_set_new(o, "size", json_integer(size));
    rc |= json_object_set_new(o, "mtime", json_integer(mtime));
    rc |= json_object_set_new(o, "atime", json_integer(atime));
    rc |= json_object_set_new(o, "ctime", json_integer(ctime));
    rc |= json_object_set_new(o, "nlink", json_integer((json_int_t)nlink));
    rc |= json_object_set_new(o, "ino", json_integer((json_int_t)ino));
    rc |= json_object_set_new(o, "dev", json_integer((json_int_t)dev));
    rc |= json_object_set_new(o, "owner", json_string(user));
    rc |= json_object_set_new(o, "group", json_string(group));
    return rc ? -1 : 0;
}

int aicp_fu_parse(json_t **out, const char *data, size_t len, struct aicp_err *err)
{
    json_t *all = json_object();
    const char *p = data, *end = data + len;
    int rc = 0;
    if (all == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *sp1 = memchr(p, ' ', (size_t)(le - p));
        if (sp1 == NULL || le - sp1 < 3 || sp1[2] != ' ') {
            p = le + 1; /* not a record (stray output): skip */
            continue;
        }
        char key[64];
        size_t kl = (size_t)(sp1 - p);
        if (kl >= sizeof(key)) {
            p = le + 1;
            continue;
        }
        memcpy(key, p, kl);
        key[kl] = '\0';
        char kind = sp1[1];
        char *rest = aicp_strndup(sp1 + 3, (size_t)(le - sp1 - 3));
        json_t *o = rec_obj(all, key);
        if (rest == NULL || o == NULL) {
            free(rest);
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        p = le + 1;
        if (kind == 'S') {
            if (parse_stat(o, rest) != 0)
                rc = aicp_err_set(err, AICP_EREMOTE, "unexpected stat output: %s", rest);
        } else if (kind == 'L') {
            json_object_set_new(o, "lnk_source", json_string(rest));
        } else if (kind == 'V') {
            /* "NAME VALUE": a value the module's own script computed. */
            char *sp = strchr(rest, ' ');
            if (sp) {
                *sp = '\0';
                json_object_set_new(o, rest, json_string(sp + 1));
            }
        } else if (kind == 'H') {
            json_object_set_new(o, "checksum", json_string(rest));
        } else if (kind == 'C') {
            char *e = NULL;
            unsigned long long n = strtoull(rest, &e, 10);
            if (e == rest || n > (unsigned long long)(end - p) || p > end) {
                rc = aicp_err_set(err, AICP_EREMOTE, "truncated file content from the host");
            } else {
                if (aicp_fu_is_text(p, (size_t)n)) {
                    json_object_set_new(o, "content", json_stringn(p, (size_t)n));
                } else {
                    char *b64 = NULL;
                    if (aicp_fu_b64(&b64, p, (size_t)n) == 0)
                        json_object_set_new(o, "content_b64", json_string(b64));
                    free(b64);
                    json_object_set_new(o, "binary", json_true());
                }
                p += n;
                if (p < end && *p == '\n')
                    p++;
            }
        }
        free(rest);
        if (rc != 0)
            goto out;
    }
out:
    if (rc != 0) {
        json_decref(all);
        all = NULL;
    }
    *out = all;
    return rc;
}

/* owner/group wanted as name or number; equal when either matches. */
static int id_matches(const char *want, const json_t *st, const char *namekey, const char *idkey)
{
    const char *name = json_string_value(json_object_get(st, namekey));
    if (name && strcmp(name, want) == 0)
        return 1;
    char *e = NULL;
    unsigned long long n = strtoull(want, &e, 10);
    return *want && *e == '\0' && (json_int_t)n == json_integer_value(json_object_get(st, idkey));
}

int aicp_fu_attrs_diff(const json_t *st, const struct aicp_args *a, const json_t *modev, int isdir,
                       json_t *before, json_t *after, int *mode_out, struct aicp_err *err)
{
    int count = 0, exists = json_is_true(json_object_get(st, "exists"));
    int cur = exists ? (int)json_integer_value(json_object_get(st, "mode_int")) : -1;
    int want = -1;
    *mode_out = -1;
    int rc = aicp_fu_mode_parse(&want, modev, cur, isdir, err);
    if (rc != 0)
        return rc;
    if (want >= 0 && want != cur) {
        char m[8];
        if (exists) {
            aicp_fu_mode_fmt(m, cur);
            json_object_set_new(before, "mode", json_string(m));
        }
        aicp_fu_mode_fmt(m, want);
        json_object_set_new(after, "mode", json_string(m));
        *mode_out = want;
        count++;
    }
    static const char *const keys[][3] = {{"owner", "owner", "uid"}, {"group", "group", "gid"}};
    for (size_t i = 0; i < 2; i++) {
        const char *w = aicp_fu_str(a, keys[i][0]);
        if (w == NULL || *w == '\0')
            continue;
        if (exists && id_matches(w, st, keys[i][1], keys[i][2]))
            continue;
        if (exists)
            json_object_set(before, keys[i][0], json_object_get(st, keys[i][1]));
        json_object_set_new(after, keys[i][0], json_string(w));
        count++;
    }
    return count;
}

int aicp_fu_sh_attrs(struct aicp_buf *b, const char *path, int mode, const char *owner,
                     const char *group, int recurse, int nofollow)
{
    int rc = 0;
    if ((owner && *owner) || (group && *group)) {
        rc = aicp_buf_printf(b, "chown %s%s", recurse ? "-R " : "", nofollow ? "-h " : "");
        if (owner && *owner)
            rc = rc ? rc : aicp_buf_shquote(b, owner);
        if (group && *group) {
            rc = rc ? rc : aicp_buf_puts(b, ":");
            rc = rc ? rc : aicp_buf_shquote(b, group);
        }
        rc = rc ? rc : aicp_buf_puts(b, " -- ");
        rc = rc ? rc : aicp_buf_shquote(b, path);
        rc = rc ? rc : aicp_buf_puts(b, " || exit 1\n");
    }
    if (mode >= 0 && !nofollow) {
        rc = rc ? rc : aicp_buf_printf(b, "chmod %s%04o -- ", recurse ? "-R " : "", (unsigned)mode);
        rc = rc ? rc : aicp_buf_shquote(b, path);
        rc = rc ? rc : aicp_buf_puts(b, " || exit 1\n");
    }
    return rc;
}

int aicp_fu_result_stat(json_t *result, const char *path_key, const char *path, const json_t *st)
{
    int rc = 0;
    if (result == NULL)
        return 0;
    if (path_key)
        rc |= json_object_set_new(result, path_key, json_string(path));
    static const char *const keys[] = {"mode", "owner", "group", "uid", "gid", "size"};
    if (!json_is_true(json_object_get(st, "exists"))) {
        /* As Ansible: a path that is gone has no attributes (the verify
         * re-check after state=absent drops those read before). */
        rc |= json_object_set_new(result, "state", json_string("absent"));
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            json_object_del(result, keys[i]);
        return rc ? AICP_ENOMEM : 0;
    }
    const char *t = json_string_value(json_object_get(st, "type"));
    const char *state = t;
    if (t && strcmp(t, "file") == 0 && json_integer_value(json_object_get(st, "nlink")) > 1)
        state = "hard";
    rc |= json_object_set_new(result, "state", json_string(state ? state : "file"));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        rc |= json_object_set(result, keys[i], json_object_get(st, keys[i]));
    return rc ? AICP_ENOMEM : 0;
}

int aicp_fu_digest_hex(char *out, size_t outsz, const char *algo, const void *data, size_t len)
{
    const EVP_MD *md = EVP_get_digestbyname(algo);
    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (md == NULL || (size_t)EVP_MD_size(md) * 2 + 1 > outsz)
        return AICP_EINVAL;
    if (EVP_Digest(data, len, dg, &n, md, NULL) != 1)
        return AICP_EINVAL;
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", dg[i]);
    out[2 * n] = '\0';
    return 0;
}

int aicp_fu_b64(char **out, const void *data, size_t len)
{
    if (len > (size_t)INT_MAX / 2) {
        *out = NULL;
        return AICP_ENOMEM;
    }
    *out = malloc(4 * ((len + 2) / 3) + 1);
    if (*out == NULL)
        return AICP_ENOMEM;
    EVP_EncodeBlock((unsigned char *)*out, data, (int)len);
    return 0;
}

int aicp_fu_unb64(char **out, size_t *outlen, const char *s)
{
    size_t n = strlen(s);
    *out = NULL;
    if (n % 4 != 0 || n > (size_t)INT_MAX)
        return AICP_EINVAL;
    unsigned char *d = malloc(n / 4 * 3 + 1);
    if (d == NULL)
        return AICP_ENOMEM;
    int m = EVP_DecodeBlock(d, (const unsigned char *)s, (int)n);
    if (m < 0) {
        free(d);
        return AICP_EINVAL;
    }
    /* DecodeBlock counts the padding as data. */
    if (n >= 1 && s[n - 1] == '=')
        m--;
    if (n >= 2 && s[n - 2] == '=')
        m--;
    d[m] = '\0';
    *out = (char *)d;
    *outlen = (size_t)m;
    return 0;
}

static int try_path(char **out, const char *dir, const char *sub, const char *path)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = 0;
    if (dir && *dir)
        rc = aicp_buf_printf(&b, "%s/", dir);
    if (sub)
        rc = rc ? rc : aicp_buf_printf(&b, "%s/", sub);
    rc = rc ? rc : aicp_buf_puts(&b, path);
    if (rc != 0) {
        aicp_buf_free(&b);
        return AICP_ENOMEM;
    }
    if (access(b.data, F_OK) == 0) {
        *out = aicp_buf_steal(&b);
        return 0;
    }
    aicp_buf_free(&b);
    return AICP_ENOTFOUND;
}

int aicp_fu_local_path(char **out, const char *search_dir, const char *sub, const char *path,
                       struct aicp_err *err)
{
    *out = NULL;
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
        const char *home = getenv("HOME");
        struct aicp_buf b = AICP_BUF_INIT;
        if (aicp_buf_printf(&b, "%s%s", home ? home : "", path + 1) != 0)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        *out = aicp_buf_steal(&b);
        return 0;
    }
    if (path[0] == '/') {
        *out = aicp_strdup(path);
        return *out ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    char up[PATH_MAX];
    snprintf(up, sizeof(up), "%s/..", search_dir ? search_dir : ".");
    int rc;
    if ((rc = try_path(out, search_dir, NULL, path)) != AICP_ENOTFOUND ||
        (rc = try_path(out, search_dir, sub, path)) != AICP_ENOTFOUND ||
        (rc = try_path(out, up, sub, path)) != AICP_ENOTFOUND ||
        (rc = try_path(out, NULL, NULL, path)) != AICP_ENOTFOUND)
        return rc == 0 ? 0 : aicp_err_set(err, rc, "out of memory");
    const char *d = search_dir ? search_dir : ".";
    return aicp_err_set(err, AICP_ENOTFOUND,
                        "Could not find or access '%s' (searched %s/%s, %s/%s/%s, %s/%s/%s and "
                        "the working directory)",
                        path, d, path, d, sub ? sub : "", path, up, sub ? sub : "", path);
}

/* Lines of a text, each keeping its '\n' (the last may lack one). */
struct lines {
    const char **p;
    size_t *len;
    size_t n;
};

static int split_lines(struct lines *l, const char *s)
{
    size_t cap = 16;
    l->n = 0;
    l->p = malloc(cap * sizeof(*l->p));
    l->len = malloc(cap * sizeof(*l->len));
    if (l->p == NULL || l->len == NULL)
        return AICP_ENOMEM;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) + 1 : strlen(s);
        if (l->n == cap) {
            cap *= 2;
            const char **np = realloc(l->p, cap * sizeof(*l->p));
            if (np == NULL)
                return AICP_ENOMEM;
            l->p = np;
            size_t *nlen = realloc(l->len, cap * sizeof(*l->len));
            if (nlen == NULL)
                return AICP_ENOMEM;
            l->len = nlen;
        }
        l->p[l->n] = s;
        l->len[l->n++] = n;
        s += n;
    }
    return 0;
}

static int line_eq(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
    return a->len[i] == b->len[j] && memcmp(a->p[i], b->p[j], a->len[i]) == 0;
}

/* Edit script entry: ' ' keep, '-' delete a[i], '+' insert b[j]. */
struct edit {
    char op;
    size_t i, j;
};

static int emit_line(struct aicp_buf *o, char op, const char *p, size_t n)
{
    int rc = aicp_buf_append(o, &op, 1);
    rc = rc ? rc : aicp_buf_append(o, p, n);
    if (rc == 0 && (n == 0 || p[n - 1] != '\n'))
        rc = aicp_buf_puts(o, "\n\\ No newline at end of file\n");
    return rc;
}

static int emit_hunks(struct aicp_buf *o, const struct edit *e, size_t ne, const struct lines *a,
                      const struct lines *b)
{
    const size_t ctx = 3;
    size_t k = 0;
    int rc = 0;
    while (rc == 0 && k < ne) {
        while (k < ne && e[k].op == ' ')
            k++;
        if (k == ne)
            break;
        size_t start = k > ctx ? k - ctx : 0;
        /* Extend the hunk while the next change is within 2*ctx lines. */
        size_t last = k;
        for (size_t x = k + 1; x < ne; x++) {
            if (e[x].op == ' ')
                continue;
            if (x - last - 1 > 2 * ctx)
                break;
            last = x;
        }
        size_t end = last + 1 + ctx < ne ? last + 1 + ctx : ne;
        size_t ai = 0, an = 0, bi = 0, bn = 0;
        /* Starting line numbers: position of the first entry. */
        ai = e[start].i;
        bi = e[start].j;
        for (size_t x = start; x < end; x++) {
            if (e[x].op != '+')
                an++;
            if (e[x].op != '-')
                bn++;
        }
        /* Ranges as diff and Python's difflib write them: a one-line
         * range is just its line number. */
        char ra[48], rb[48];
        if (an == 1)
            snprintf(ra, sizeof(ra), "%zu", ai + 1);
        else
            snprintf(ra, sizeof(ra), "%zu,%zu", an ? ai + 1 : ai, an);
        if (bn == 1)
            snprintf(rb, sizeof(rb), "%zu", bi + 1);
        else
            snprintf(rb, sizeof(rb), "%zu,%zu", bn ? bi + 1 : bi, bn);
        rc = aicp_buf_printf(o, "@@ -%s +%s @@\n", ra, rb);
        for (size_t x = start; rc == 0 && x < end; x++) {
            if (e[x].op == '+')
                rc = emit_line(o, '+', b->p[e[x].j], b->len[e[x].j]);
            else
                rc = emit_line(o, e[x].op, a->p[e[x].i], a->len[e[x].i]);
        }
        k = end;
    }
    return rc;
}

int aicp_fu_unified_diff(char **out, const char *a, const char *b, const char *label_a,
                         const char *label_b)
{
    struct lines la = {0}, lb = {0};
    struct edit *e = NULL;
    unsigned short *dp = NULL;
    struct aicp_buf o = AICP_BUF_INIT;
    int rc;
    *out = NULL;
    if ((rc = split_lines(&la, a)) != 0 || (rc = split_lines(&lb, b)) != 0)
        goto out;
    size_t pre = 0, suf = 0;
    while (pre < la.n && pre < lb.n && line_eq(&la, pre, &lb, pre))
        pre++;
    while (suf < la.n - pre && suf < lb.n - pre &&
           line_eq(&la, la.n - 1 - suf, &lb, lb.n - 1 - suf))
        suf++;
    size_t n = la.n - pre - suf, m = lb.n - pre - suf;
    e = malloc((la.n + lb.n + 1) * sizeof(*e));
    if (e == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    size_t ne = 0;
    for (size_t x = 0; x < pre; x++)
        e[ne++] = (struct edit){' ', x, x};
    /* LCS table on the changed middle; when it would be too big the whole
     * middle is shown as replaced, which is still a correct diff. */
    if (n && m && n * m <= 4000000u && n < 65535 && m < 65535) {
        dp = calloc((n + 1) * (m + 1), sizeof(*dp));
        if (dp == NULL) {
            rc = AICP_ENOMEM;
            goto out;
        }
#define DP(i, j) dp[(i) * (m + 1) + (j)]
        for (size_t i = n; i-- > 0;)
            for (size_t j = m; j-- > 0;)
                DP(i, j) = line_eq(&la, pre + i, &lb, pre + j)
                               ? (unsigned short)(DP(i + 1, j + 1) + 1)
                               : (DP(i + 1, j) >= DP(i, j + 1) ? DP(i + 1, j) : DP(i, j + 1));
        size_t i = 0, j = 0;
        while (i < n || j < m) {
            if (i < n && j < m && line_eq(&la, pre + i, &lb, pre + j)) {
                e[ne++] = (struct edit){' ', pre + i, pre + j};
                i++, j++;
            } else if (i < n && (j == m || DP(i + 1, j) >= DP(i, j + 1))) {
                e[ne++] = (struct edit){'-', pre + i, pre + j};
                i++;
            } else {
                e[ne++] = (struct edit){'+', pre + i, pre + j};
                j++;
            }
        }
#undef DP
    } else {
        for (size_t i = 0; i < n; i++)
            e[ne++] = (struct edit){'-', pre + i, pre};
        for (size_t j = 0; j < m; j++)
            e[ne++] = (struct edit){'+', pre + n, pre + j};
    }
    for (size_t x = 0; x < suf; x++)
        e[ne++] = (struct edit){' ', pre + n + x, pre + m + x};
    if (n == 0 && m == 0) {
        *out = aicp_strdup("");
        rc = *out ? 0 : AICP_ENOMEM;
        goto out;
    }
    rc = aicp_buf_printf(&o, "--- %s\n+++ %s\n", label_a, label_b);
    rc = rc ? rc : emit_hunks(&o, e, ne, &la, &lb);
    if (rc == 0)
        *out = aicp_buf_steal(&o);
out:
    aicp_buf_free(&o);
    free(dp);
    free(e);
    free(la.p);
    free(la.len);
    free(lb.p);
    free(lb.len);
    return rc;
}

int aicp_fu_change_new(struct aicp_change **out, struct aicp_err *err)
{
    int rc = aicp_change_new(out);
    if (rc != 0)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    (*out)->before = json_object();
    (*out)->after = json_object();
    (*out)->plan = json_object();
    if (!(*out)->before || !(*out)->after || !(*out)->plan) {
        aicp_change_free(*out);
        *out = NULL;
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    return 0;
}

char *aicp_fu_dirname(const char *path)
{
    const char *s = strrchr(path, '/');
    if (s == NULL)
        return aicp_strdup(".");
    while (s > path && s[-1] == '/')
        s--;
    if (s == path)
        return aicp_strdup("/");
    return aicp_strndup(path, (size_t)(s - path));
}

const char *aicp_fu_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int aicp_fu_check_run(struct aicp_ctx *ctx, const char *script, json_t **out, struct aicp_err *err)
{
    struct aicp_exec_result res;
    *out = NULL;
    int rc = aicp_fu_exec(ctx, script, NULL, 0, &res, err);
    if (rc == 0 && res.rc != 0)
        rc = aicp_err_set(err, AICP_EREMOTE, "%s: reading the current state failed (rc %d): %s",
                          ctx->host ? ctx->host : "?", res.rc, res.err ? res.err : "");
    if (rc == 0)
        rc = aicp_fu_parse(out, res.out ? res.out : "", res.out_len, err);
    aicp_exec_result_clear(&res);
    return rc;
}

int aicp_fu_content_check(struct aicp_ctx *ctx, const char *dest, const char *dir_base,
                          const char *remote_src, int whole, json_t **out, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    size_t dl = strlen(dest);
    int slash = dl > 1 && dest[dl - 1] == '/';
    int rc = aicp_buf_puts(&b, "_d=");
    rc = rc ? rc : aicp_buf_shquote(&b, dest);
    rc = rc ? rc : aicp_buf_puts(&b, "\n_t=\"$_d\"\n");
    if (dir_base) {
        rc = rc ? rc
                : aicp_buf_printf(&b, "if %s[ -d \"$_d\" ]; then _t=\"${_d%%/}/\"",
                                  slash ? "true || " : "");
        rc = rc ? rc : aicp_buf_shquote(&b, dir_base);
        rc = rc ? rc : aicp_buf_puts(&b, "; fi\n");
    }
    rc = rc ? rc : aicp_buf_puts(&b, "printf 'x V path %s\\n' \"$_t\"\n_p=\"$_t\"\n");
    rc = rc ? rc : aicp_fu_sh_stat(&b, "t", NULL, 0);
    rc = rc ? rc : aicp_fu_sh_hash(&b, "t", NULL, "sha1");
    rc = rc ? rc : aicp_fu_sh_content(&b, "t", NULL, whole ? -1 : AICP_FU_DIFF_MAX);
    rc = rc ? rc : aicp_buf_puts(&b, "_p=$(dirname -- \"$_t\")\n");
    rc = rc ? rc : aicp_fu_sh_stat(&b, "pd", NULL, 1);
    if (remote_src) {
        rc = rc ? rc : aicp_fu_sh_stat(&b, "s", remote_src, 1);
        rc = rc ? rc : aicp_fu_sh_hash(&b, "s", NULL, "sha1");
        /* Ansible's md5sum result; absent where md5 is not allowed (FIPS). */
        rc = rc ? rc : aicp_fu_sh_hash(&b, "s_md5", NULL, "md5");
    }
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    json_t *cur = NULL;
    rc = aicp_fu_check_run(ctx, b.data, &cur, err);
    aicp_buf_free(&b);
    if (rc != 0)
        return rc;
    const char *path = json_string_value(json_object_get(json_object_get(cur, "x"), "path"));
    json_object_set_new(cur, "path", json_string(path ? path : dest));
    json_object_set_new(cur, "dest_slash", json_boolean(slash));
    json_object_del(cur, "x");
    *out = cur;
    return 0;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return v ? json_object_set_new(o, k, json_string(v)) : 0;
}

int aicp_fu_content_diff(struct aicp_change **out, const json_t *current, const struct aicp_args *a,
                         const struct aicp_fu_want *w, struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    const json_t *t = json_object_get(current, "t"), *pd = json_object_get(current, "pd");
    const char *path = json_string_value(json_object_get(current, "path"));
    int exists = json_is_true(json_object_get(t, "exists"));
    const char *type = json_string_value(json_object_get(t, "type"));
    int rc = aicp_fu_change_new(&c, err);
    if (rc != 0)
        return rc;
    if (path == NULL)
        path = "?";
    if (exists && type && strcmp(type, "directory") == 0) {
        rc = aicp_err_set(err, AICP_EFAILED, "Destination %s is a directory", path);
        goto out;
    }
    const char *cur_sum = json_string_value(json_object_get(t, "checksum"));
    int content = !exists || (type && strcmp(type, "file") != 0) || cur_sum == NULL ||
                  w->checksum == NULL || strcmp(cur_sum, w->checksum) != 0;
    if (exists && !w->force)
        content = 0;
    json_t *plan = c->plan;
    if (content && !json_is_true(json_object_get(pd, "exists"))) {
        char *dir = aicp_fu_dirname(path);
        if (w->create_dirs) {
            json_object_set_new(plan, "mkdir", json_string(dir ? dir : "."));
        } else {
            rc = aicp_err_set(err, AICP_EFAILED, "Destination directory %s does not exist",
                              dir ? dir : path);
            free(dir);
            goto out;
        }
        free(dir);
    }
    int mode = -1;
    rc = aicp_fu_attrs_diff(t, a, w->mode, 0, c->before, c->after, &mode, err);
    if (rc < 0)
        goto out;
    c->needed = content || rc > 0;
    rc = 0;
    json_object_set_new(c->before, "path", json_string(path));
    json_object_set_new(c->after, "path", json_string(path));
    json_object_set_new(c->before, "state", json_string(exists ? "file" : "absent"));
    json_object_set_new(c->after, "state", json_string("file"));
    set_str(plan, "path", path);
    json_object_set_new(plan, "mode", json_integer(mode));
    if (content && mode < 0 && exists)
        json_object_set(plan, "cur_mode", json_object_get(t, "mode_int"));
    set_str(plan, "owner", aicp_fu_str(a, "owner"));
    set_str(plan, "group", aicp_fu_str(a, "group"));
    set_str(plan, "backup_key", w->backup_key ? w->backup_key : "backup_file");
    json_object_set_new(plan, "content", json_boolean(content));
    if (content) {
        if (cur_sum)
            json_object_set_new(c->before, "checksum", json_string(cur_sum));
        set_str(c->after, "checksum", w->checksum);
        if (w->remote_src)
            set_str(plan, "remote_src", w->remote_src);
        else if (w->local_src)
            set_str(plan, "local_src", w->local_src);
        else if (w->text && aicp_fu_is_text(w->text, w->len))
            json_object_set_new(plan, "text", json_stringn(w->text, w->len));
        else if (w->text) {
            char *b64 = NULL;
            if (aicp_fu_b64(&b64, w->text, w->len) != 0) {
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
            json_object_set_new(plan, "text_b64", json_string(b64));
            free(b64);
        }
        if (exists && aicp_fu_bool(a, "backup", 0))
            json_object_set_new(plan, "backup", json_true());
        set_str(plan, "validate", aicp_fu_str(a, "validate"));
        /* The unified diff, when both sides are small text. */
        const char *before = exists ? json_string_value(json_object_get(t, "content")) : "";
        const char *after = w->text && aicp_fu_is_text(w->text, w->len) ? w->text : w->local_text;
        if (before && after && strlen(after) <= (size_t)AICP_FU_DIFF_MAX) {
            char la[4200], lb[4200];
            /* Ansible's headers: no name for a file that is not there yet. */
            if (w->content_labels) {
                snprintf(la, sizeof(la), "before: %s (content)", path);
                snprintf(lb, sizeof(lb), "after: %s (content)", path);
            } else {
                snprintf(la, sizeof(la), exists ? "before: %s" : "before", path);
                snprintf(lb, sizeof(lb), "after: %s", w->label ? w->label : path);
            }
            if (aicp_fu_unified_diff(&c->diff_text, before, after, la, lb) != 0) {
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
        }
    }
out:
    if (rc != 0) {
        aicp_change_free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

static int run_script(struct aicp_ctx *ctx, const char *script, const char *what, char **outp,
                      struct aicp_err *err)
{
    struct aicp_exec_result res;
    int rc = aicp_fu_exec(ctx, script, NULL, 0, &res, err);
    if (rc == 0 && res.rc != 0) {
        size_t n = res.err ? strlen(res.err) : 0;
        while (n && (res.err[n - 1] == '\n' || res.err[n - 1] == ' '))
            res.err[--n] = '\0';
        rc = aicp_err_set(err, AICP_EFAILED, "%s failed (rc %d): %s", what, res.rc,
                          n ? res.err : (res.out ? res.out : ""));
    }
    if (rc == 0 && outp) {
        *outp = res.out;
        res.out = NULL;
    }
    aicp_exec_result_clear(&res);
    return rc;
}

static int merge_result(struct aicp_ctx *ctx, const json_t *plan)
{
    const json_t *r = json_object_get(plan, "result");
    if (ctx->result && json_is_object(r))
        return json_object_update(ctx->result, (json_t *)r) ? AICP_ENOMEM : 0;
    return 0;
}

/* The bytes to write, from the plan. *data malloc'ed. */
static int plan_data(char **data, size_t *len, const json_t *plan, struct aicp_err *err)
{
    const char *s;
    *data = NULL;
    *len = 0;
    if ((s = json_string_value(json_object_get(plan, "text"))) != NULL) {
        *len = json_string_length(json_object_get(plan, "text"));
        *data = aicp_strndup(s, *len);
        return *data ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    if ((s = json_string_value(json_object_get(plan, "text_b64"))) != NULL)
        return aicp_fu_unb64(data, len, s) == 0
                   ? 0
                   : aicp_err_set(err, AICP_EINVAL, "bad content in the plan");
    if ((s = json_string_value(json_object_get(plan, "local_src"))) != NULL)
        return aicp_read_file(data, len, s, err);
    *data = aicp_strdup("");
    return *data ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

/* Shell that copies the remote file src to a fresh mktemp file "$_t" next
 * to path, the way aicp_conn_put writes one: created 0600, given its final
 * mode, owner and ACL while still empty, filled, fsync'ed. The caller
 * renames it into place. Without a mode, an existing file's mode is kept
 * and a new one gets src's, less the umask (as cp does). */
static int remote_copy_sh(struct aicp_buf *b, const char *src, const char *path, int mode,
                          const char *owner, const char *group)
{
    char *dir = aicp_fu_dirname(path);
    int rc = dir ? 0 : AICP_ENOMEM;
    rc = rc ? rc : aicp_buf_puts(b, "_s=");
    rc = rc ? rc : aicp_buf_shquote(b, src);
    rc = rc ? rc : aicp_buf_puts(b, "\n_p=");
    rc = rc ? rc : aicp_buf_shquote(b, path);
    rc = rc ? rc : aicp_buf_puts(b, "\n_t=$(mktemp ");
    rc = rc ? rc : aicp_buf_shquote(b, dir ? dir : ".");
    rc = rc ? rc : aicp_buf_puts(b, "\"/.aicp-tmp.XXXXXX\") || exit 1\n_k() {\n"
                                  "  if [ -e \"$_p\" ] && command -v getfacl >/dev/null 2>&1; then "
                                  "getfacl -p -- \"$_p\" 2>/dev/null | setfacl --set-file=- -- "
                                  "\"$_t\" 2>/dev/null; fi\n");
    if (mode >= 0)
        rc = rc ? rc : aicp_buf_printf(b, "  chmod %04o \"$_t\" || return 1\n", (unsigned)mode);
    else
        rc = rc ? rc : aicp_buf_puts(b, "  chmod \"$(printf %o $((0$(stat -L -c %a -- \"$_s\") & "
                                      "0777 & ~0$(umask))))\" \"$_t\" || return 1\n");
    rc = rc ? rc : aicp_buf_puts(b, "  if [ -e \"$_p\" ]; then chown \"$(stat -L -c %u:%g \"$_p\")\" "
                                  "\"$_t\" 2>/dev/null; fi\n");
    if (owner && *owner) {
        rc = rc ? rc : aicp_buf_puts(b, "  chown ");
        rc = rc ? rc : aicp_buf_shquote(b, owner);
        rc = rc ? rc : aicp_buf_puts(b, " \"$_t\" || return 1\n");
    }
    if (group && *group) {
        rc = rc ? rc : aicp_buf_puts(b, "  chgrp ");
        rc = rc ? rc : aicp_buf_shquote(b, group);
        rc = rc ? rc : aicp_buf_puts(b, " \"$_t\" || return 1\n");
    }
    /* fd 3 is opened before the chmod, so a read-only mode cannot stop
     * the write. */
    rc = rc ? rc : aicp_buf_puts(b, "  cat -- \"$_s\" >&3\n}\n"
                                  "_k 3>\"$_t\" && { sync \"$_t\" 2>/dev/null || :; } || "
                                  "{ rm -f -- \"$_t\"; exit 1; }\n");
    free(dir);
    return rc ? AICP_ENOMEM : 0;
}

int aicp_fu_content_apply(struct aicp_ctx *ctx, const struct aicp_change *c, struct aicp_err *err)
{
    const json_t *plan = c->plan;
    struct aicp_buf b = AICP_BUF_INIT, tref = AICP_BUF_INIT;
    char *out = NULL, *data = NULL, *tmp = NULL;
    size_t len = 0;
    int rc = 0;
    const char *script = json_string_value(json_object_get(plan, "script"));
    if (script != NULL) {
        rc = run_script(ctx, script, "the change", NULL, err);
        goto out;
    }
    const char *path = json_string_value(json_object_get(plan, "path"));
    const char *owner = json_string_value(json_object_get(plan, "owner"));
    const char *group = json_string_value(json_object_get(plan, "group"));
    const char *mkdir = json_string_value(json_object_get(plan, "mkdir"));
    const char *validate = json_string_value(json_object_get(plan, "validate"));
    const char *remote = json_string_value(json_object_get(plan, "remote_src"));
    int mode = (int)json_integer_value(json_object_get(plan, "mode"));
    int content = json_is_true(json_object_get(plan, "content"));
    if (path == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "plan without a path");
        goto out;
    }
    if (!content) {
        if ((rc = aicp_fu_sh_attrs(&b, path, mode, owner, group, 0, 0)) != 0 ||
            (rc = run_script(ctx, b.data ? b.data : ":", path, NULL, err)) != 0)
            goto out;
        goto done;
    }
    int put_mode = mode >= 0 ? mode : -1;
    if (put_mode < 0 && json_is_integer(json_object_get(plan, "cur_mode")))
        put_mode = (int)json_integer_value(json_object_get(plan, "cur_mode"));
    /* Step 1 (when needed): parent directories and the backup. */
    if (mkdir) {
        rc = aicp_buf_puts(&b, "mkdir -p -- ");
        rc = rc ? rc : aicp_buf_shquote(&b, mkdir);
        rc = rc ? rc : aicp_buf_puts(&b, " || exit 1\n");
    }
    if (json_is_true(json_object_get(plan, "backup"))) {
        rc = rc ? rc : aicp_buf_puts(&b, "_p=");
        rc = rc ? rc : aicp_buf_shquote(&b, path);
        /* Ansible's backup name: PATH.PID.YYYY-MM-DD@HH:MM:SS~ */
        rc = rc ? rc
                : aicp_buf_puts(&b, "\n_b=\"$_p.$$.$(date +%Y-%m-%d@%H:%M:%S)~\"\n"
                                    "cp -p -- \"$_p\" \"$_b\" || exit 1\n"
                                    "printf '%s' \"$_b\"\n");
    }
    if (rc != 0)
        goto oom;
    if (b.len) {
        if ((rc = run_script(ctx, b.data, path, &out, err)) != 0)
            goto out;
        if (out && *out && ctx->result) {
            const char *key = json_string_value(json_object_get(plan, "backup_key"));
            json_object_set_new(ctx->result, key ? key : "backup_file", json_string(out));
        }
        aicp_buf_free(&b);
    }
    /* Step 2: the content, straight to its place, or to a temp file that
     * validate checks before it is renamed over the destination. tref is
     * that file as a shell word: "$_t", a mktemp name, for a remote source. */
    if (remote) {
        if (remote_copy_sh(&b, remote, path, put_mode, owner, group) != 0 ||
            aicp_buf_puts(&tref, "\"$_t\"") != 0)
            goto oom;
    } else if (validate) {
        struct aicp_buf tb = AICP_BUF_INIT;
        char *dir = aicp_fu_dirname(path);
        if (dir == NULL || aicp_buf_printf(&tb, "%s/.%s.aicp.%ld.tmp", dir, aicp_fu_basename(path),
                                           (long)getpid()) != 0) {
            free(dir);
            aicp_buf_free(&tb);
            goto oom;
        }
        free(dir);
        tmp = aicp_buf_steal(&tb);
        if (aicp_buf_shquote(&tref, tmp) != 0)
            goto oom;
    }
    if (!remote) {
        if ((rc = plan_data(&data, &len, plan, err)) != 0)
            goto out;
        rc = aicp_conn_put(ctx->conn, tmp ? tmp : path, data, len, put_mode, owner, group,
                           ctx->become, err);
        if (rc != 0)
            goto out;
    }
    if (validate) {
        const char *pct = strstr(validate, "%s");
        if (pct == NULL) {
            rc = aicp_err_set(err, AICP_EFAILED, "validate must contain %%s: %s", validate);
            goto out;
        }
        rc = aicp_buf_append(&b, validate, (size_t)(pct - validate));
        rc = rc ? rc : aicp_buf_puts(&b, tref.data);
        rc = rc ? rc : aicp_buf_puts(&b, pct + 2);
        rc = rc ? rc : aicp_buf_puts(&b, " 1>&2 || { _r=$?; rm -f -- ");
        rc = rc ? rc : aicp_buf_puts(&b, tref.data);
        rc = rc ? rc : aicp_buf_puts(&b, "; exit $_r; }\n");
    }
    if (tref.len) {
        rc = rc ? rc : aicp_buf_puts(&b, "mv -f -- ");
        rc = rc ? rc : aicp_buf_puts(&b, tref.data);
        rc = rc ? rc : aicp_buf_puts(&b, " ");
        rc = rc ? rc : aicp_buf_shquote(&b, path);
        rc = rc ? rc : aicp_buf_puts(&b, " || exit 1\n");
        if (remote) {
            /* The rename itself is made durable, as aicp_conn_put does. */
            rc = rc ? rc : aicp_buf_puts(&b, "sync \"${_t%/*}\" 2>/dev/null\nexit 0\n");
        }
        if (rc != 0)
            goto oom;
        if ((rc = run_script(ctx, b.data, validate ? "failed to validate" : path, NULL, err)) != 0)
            goto out;
    }
done:
    rc = merge_result(ctx, plan);
    goto out;
oom:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    if (rc == 0 && script != NULL)
        rc = merge_result(ctx, plan);
    aicp_buf_free(&b);
    aicp_buf_free(&tref);
    free(out);
    if (data != NULL)
        explicit_bzero(data, len); /* file contents: may be a key or a password file */
    free(data);
    free(tmp);
    return rc;
}

/* Python's shlex.split (posix mode): quotes and backslashes. */
static int shlex_split(json_t *out, const char *s)
{
    struct aicp_buf w = AICP_BUF_INIT;
    int inword = 0, rc = 0;
    for (const char *p = s; rc == 0; p++) {
        if (*p == '\0' || strchr(" \t\n\r", *p)) {
            if (inword) {
                rc =
                    json_array_append_new(out, json_string(w.data ? w.data : "")) ? AICP_ENOMEM : 0;
                aicp_buf_free(&w);
                inword = 0;
            }
            if (*p == '\0')
                break;
            continue;
        }
        inword = 1;
        if (*p == '\'') {
            const char *e = strchr(p + 1, '\'');
            if (e == NULL) {
                rc = AICP_EINVAL;
                break;
            }
            rc = aicp_buf_append(&w, p + 1, (size_t)(e - p - 1));
            p = e;
        } else if (*p == '"') {
            for (p++; rc == 0 && *p && *p != '"'; p++) {
                if (*p == '\\' && p[1] && strchr("\\\"$`\n", p[1]))
                    p++;
                rc = aicp_buf_append(&w, p, 1);
            }
            if (*p != '"') {
                rc = AICP_EINVAL;
                break;
            }
        } else if (*p == '\\' && p[1]) {
            rc = aicp_buf_append(&w, ++p, 1);
        } else {
            rc = aicp_buf_append(&w, p, 1);
        }
    }
    aicp_buf_free(&w);
    return rc;
}

int aicp_fu_cmd_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const char *creates = aicp_fu_str(args, "creates"), *removes = aicp_fu_str(args, "removes");
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *cur = NULL;
    int rc = 0;
    *current = NULL;
    const char *raw = aicp_fu_str(args, "_raw_params"), *cmd = aicp_fu_str(args, "cmd");
    const json_t *argv = aicp_fu_get(args, "argv");
    if ((raw == NULL || *raw == '\0') && (cmd == NULL || *cmd == '\0') &&
        json_array_size(argv) == 0) {
        /* Ansible's answer, rc included. */
        if (ctx->result)
            json_object_set_new(ctx->result, "rc", json_integer(256));
        return aicp_err_set(err, AICP_EFAILED, "no command given");
    }
    if (((raw && *raw) || (cmd && *cmd)) && json_array_size(argv)) {
        if (ctx->result)
            json_object_set_new(ctx->result, "rc", json_integer(256));
        return aicp_err_set(err, AICP_EFAILED, "only command or argv can be given, not both");
    }
    if (creates == NULL && removes == NULL) {
        *current = json_object();
        return *current ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    if (creates) {
        rc = aicp_buf_puts(&b, "for _f in ");
        rc = rc ? rc : aicp_fu_sh_glob(&b, creates);
        rc = rc ? rc
                : aicp_buf_puts(&b, "; do if [ -e \"$_f\" ] || [ -L \"$_f\" ]; then "
                                    "printf 'x V creates 1\\n'; break; fi; done\n");
    }
    if (removes) {
        rc = rc ? rc : aicp_buf_puts(&b, "for _f in ");
        rc = rc ? rc : aicp_fu_sh_glob(&b, removes);
        rc = rc ? rc
                : aicp_buf_puts(&b, "; do if [ -e \"$_f\" ] || [ -L \"$_f\" ]; then "
                                    "printf 'x V removes 1\\n'; break; fi; done\n");
    }
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_fu_check_run(ctx, b.data, &cur, err);
    aicp_buf_free(&b);
    if (rc != 0)
        return rc;
    const json_t *x = json_object_get(cur, "x");
    struct aicp_buf m = AICP_BUF_INIT, o = AICP_BUF_INIT;
    if (creates && json_object_get(x, "creates")) {
        rc = aicp_buf_printf(&m, "Did not run command since '%s' exists", creates);
        rc = rc ? rc : aicp_buf_printf(&o, "skipped, since %s exists", creates);
        json_object_set_new(cur, "skip", json_true());
    } else if (removes && !json_object_get(x, "removes")) {
        rc = aicp_buf_printf(&m, "Did not run command since '%s' does not exist", removes);
        rc = rc ? rc : aicp_buf_printf(&o, "skipped, since %s does not exist", removes);
        json_object_set_new(cur, "skip", json_true());
    }
    if (rc == 0 && m.data && ctx->result) {
        json_object_set_new(ctx->result, "msg", json_string(m.data));
        json_object_set_new(ctx->result, "stdout", json_string(o.data));
        json_object_set_new(ctx->result, "stdout_lines", json_pack("[s]", o.data));
        json_object_set_new(ctx->result, "stderr", json_string(""));
        json_object_set_new(ctx->result, "stderr_lines", json_array());
        json_object_set_new(ctx->result, "rc", json_integer(0));
    }
    aicp_buf_free(&m);
    aicp_buf_free(&o);
    *current = cur;
    return rc ? aicp_err_set(err, AICP_ENOMEM, "out of memory") : 0;
}

int aicp_fu_cmd_diff(const json_t *current, const struct aicp_args *args, int shell,
                     struct aicp_change **change, struct aicp_err *err)
{
    const char *raw = aicp_fu_str(args, "_raw_params"), *cmd = aicp_fu_str(args, "cmd");
    const json_t *argv = aicp_fu_get(args, "argv");
    const char *chdir = aicp_fu_str(args, "chdir");
    /* command takes executable only to warn that it ignores it, as Ansible. */
    const char *exe = shell ? aicp_fu_str(args, "executable") : NULL;
    const char *in = aicp_fu_str(args, "stdin");
    struct aicp_change *c = NULL;
    struct aicp_buf sh = AICP_BUF_INIT;
    json_t *words = NULL;
    int rc;
    *change = NULL;
    if (raw && *raw == '\0')
        raw = NULL;
    if (cmd == NULL)
        cmd = raw;
    if (cmd && argv && json_array_size(argv))
        return aicp_err_set(err, AICP_EFAILED, "only command or argv can be given, not both");
    if ((cmd == NULL || *cmd == '\0') && !(argv && json_array_size(argv)))
        return aicp_err_set(err, AICP_EFAILED, "no command given");
    if ((rc = aicp_fu_change_new(&c, err)) != 0)
        return rc;
    if (chdir) {
        rc = aicp_buf_puts(&sh, "cd -- ");
        rc = rc ? rc : aicp_buf_shquote(&sh, chdir);
        rc = rc ? rc
                : aicp_buf_puts(&sh, " 2>/dev/null || { printf 'Unable to change directory "
                                     "before execution: %s\\n' ");
        rc = rc ? rc : aicp_buf_shquote(&sh, chdir);
        rc = rc ? rc : aicp_buf_puts(&sh, " >&2; exit 1; }\n");
    }
    if (shell) {
        rc = rc ? rc : aicp_buf_puts(&sh, "exec ");
        rc = rc ? rc : aicp_buf_shquote(&sh, exe && *exe ? exe : "/bin/sh");
        rc = rc ? rc : aicp_buf_puts(&sh, " -c ");
        rc = rc ? rc : aicp_buf_shquote(&sh, cmd);
        json_object_set_new(c->plan, "cmd", json_string(cmd));
    } else {
        if (argv && json_array_size(argv)) {
            words = json_deep_copy(argv);
        } else {
            words = json_array();
            if (words && shlex_split(words, cmd) != 0) {
                rc = aicp_err_set(err, AICP_EFAILED,
                                  "cannot split the command: unbalanced quotes "
                                  "in '%s'",
                                  cmd);
                goto out;
            }
        }
        if (words == NULL || json_array_size(words) == 0) {
            rc = aicp_err_set(err, AICP_EFAILED, "no command given");
            goto out;
        }
        rc = rc ? rc : aicp_buf_puts(&sh, "exec");
        size_t i;
        json_t *wv;
        json_array_foreach(words, i, wv)
        {
            char num[32];
            const char *ws = json_string_value(wv);
            if (ws == NULL && json_is_integer(wv)) {
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(wv));
                ws = num;
            }
            rc = rc ? rc : aicp_buf_puts(&sh, " ");
            rc = rc ? rc : aicp_buf_shquote(&sh, ws ? ws : "");
        }
        json_object_set(c->plan, "cmd", words);
    }
    if (in == NULL)
        rc = rc ? rc : aicp_buf_puts(&sh, " </dev/null");
    rc = rc ? rc : aicp_buf_puts(&sh, "\n");
    if (rc != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    json_object_set_new(c->plan, "script", json_string(sh.data));
    if (in) {
        struct aicp_buf ib = AICP_BUF_INIT;
        if (aicp_buf_puts(&ib, in) != 0 ||
            (aicp_fu_bool(args, "stdin_add_newline", 1) && aicp_buf_puts(&ib, "\n") != 0)) {
            aicp_buf_free(&ib);
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        json_object_set_new(c->plan, "stdin", json_string(ib.data ? ib.data : ""));
        aicp_buf_free(&ib);
    }
    json_object_set_new(c->plan, "strip", json_boolean(aicp_fu_bool(args, "strip_empty_ends", 1)));
    /* creates/removes given: check mode reports the run as a change, not
     * a skip (Ansible's command_shell tests). */
    if (aicp_fu_str(args, "creates") || aicp_fu_str(args, "removes"))
        json_object_set_new(c->plan, "check_mode_changed", json_true());
    c->needed = !json_is_true(json_object_get(current, "skip"));
    /* Nothing for --diff: a command has no before and after. */
    if (!shell && aicp_fu_str(args, "executable")) {
        struct aicp_buf w = AICP_BUF_INIT;
        aicp_buf_printf(&w, "As of Ansible 2.4, the parameter 'executable' is no longer supported "
                            "with the 'command' module. Not using '%s'.",
                        aicp_fu_str(args, "executable"));
        json_object_set_new(c->plan, "result", json_pack("{s:[s]}", "warnings", w.data ? w.data : ""));
        aicp_buf_free(&w);
    }
out:
    json_decref(words);
    aicp_buf_free(&sh);
    if (rc != 0) {
        aicp_change_free(c);
        c = NULL;
    }
    *change = c;
    return rc;
}

static void timestamp(char *out, size_t n, const struct timespec *ts)
{
    struct tm tm;
    char base[32];
    localtime_r(&ts->tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, n, "%s.%06ld", base, ts->tv_nsec / 1000);
}

/* Output as a JSON string; bytes that are not UTF-8 become U+FFFD. */
static json_t *text_value(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v)
        return v;
    struct aicp_buf b = AICP_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && c != 0)
            aicp_buf_append(&b, s + i, 1);
        else
            aicp_buf_puts(&b, "\xef\xbf\xbd");
    }
    v = json_string(b.data ? b.data : "");
    aicp_buf_free(&b);
    return v;
}

static json_t *split_out(char *s, size_t *len, int strip)
{
    if (strip) {
        while (*len && (s[*len - 1] == '\n' || s[*len - 1] == '\r'))
            s[--*len] = '\0';
        size_t lead = 0;
        while (lead < *len && (s[lead] == '\n' || s[lead] == '\r'))
            lead++;
        memmove(s, s + lead, *len - lead + 1);
        *len -= lead;
    }
    json_t *lines = json_array();
    for (const char *p = s; lines && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        size_t m = n && p[n - 1] == '\r' ? n - 1 : n;
        json_array_append_new(lines, text_value(p, m));
        p += n + (e ? 1 : 0);
    }
    return lines;
}

int aicp_fu_cmd_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const json_t *plan = change->plan;
    const char *script = json_string_value(json_object_get(plan, "script"));
    const json_t *in = json_object_get(plan, "stdin");
    int strip = !json_is_false(json_object_get(plan, "strip"));
    struct aicp_exec_result res;
    struct timespec t0, t1;
    char s0[64], s1[64], delta[64];
    if (script == NULL)
        return aicp_err_set(err, AICP_EINVAL, "command: nothing to run");
    clock_gettime(CLOCK_REALTIME, &t0);
    int rc = aicp_fu_exec(ctx, script, json_string_value(in), json_string_length(in), &res, err);
    clock_gettime(CLOCK_REALTIME, &t1);
    if (rc != 0)
        return rc;
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    if (ns < 0)
        ns = 0;
    timestamp(s0, sizeof(s0), &t0);
    timestamp(s1, sizeof(s1), &t1);
    snprintf(delta, sizeof(delta), "%lld:%02lld:%02lld.%06lld", ns / 3600000000000LL,
             ns / 60000000000LL % 60, ns / 1000000000LL % 60, ns / 1000 % 1000000);
    size_t ol = res.out ? res.out_len : 0, el = res.err ? res.err_len : 0;
    char empty1[1] = "", empty2[1] = "";
    char *out = res.out ? res.out : empty1, *errs = res.err ? res.err : empty2;
    json_t *ol_lines = split_out(out, &ol, strip), *el_lines = split_out(errs, &el, strip);
    json_t *r = ctx->result;
    if (r) {
        json_object_set(r, "cmd", json_object_get(plan, "cmd"));
        json_object_set_new(r, "rc", json_integer(res.rc));
        json_object_set_new(r, "stdout", text_value(out, ol));
        json_object_set_new(r, "stderr", text_value(errs, el));
        json_object_set_new(r, "stdout_lines", ol_lines);
        json_object_set_new(r, "stderr_lines", el_lines);
        json_object_set_new(r, "start", json_string(s0));
        json_object_set_new(r, "end", json_string(s1));
        json_object_set_new(r, "delta", json_string(delta));
        json_object_set_new(r, "msg", json_string(res.rc ? "non-zero return code" : ""));
    } else {
        json_decref(ol_lines);
        json_decref(el_lines);
    }
    if (res.rc != 0) {
        if (strstr(errs, "Unable to change directory before execution"))
            rc = aicp_err_set(err, AICP_EFAILED, "%s", errs);
        else
            rc = aicp_err_set(err, AICP_EFAILED, "non-zero return code");
    }
    aicp_exec_result_clear(&res);
    return rc;
}
