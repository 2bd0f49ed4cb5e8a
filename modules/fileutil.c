/* Shared helpers for the file modules. The modules' check() builds one sh
 * script out of the fragments here, runs it in one round trip and parses
 * the records it prints; diff() compares that with the arguments using the
 * mode/owner helpers and the unified diff; apply() uses the attribute
 * script builder. Keeping the record format in one place keeps every
 * module's reading of the host consistent. The whole-file writers'
 * engine is in fileutil_content.c and the command/shell engine in
 * fileutil_cmd.c; all three share fileutil.h. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
