/* Shared helpers for the file modules (file, copy, template, lineinfile,
 * stat, slurp, fetch, command, shell): argument access with the arg
 * table's defaults, Ansible mode parsing (octal and symbolic), builders for
 * the one-round-trip remote check scripts and a parser for what they print,
 * owner/group/mode comparison, sha1, base64, local source lookup and a
 * unified diff of two texts. */
#ifndef AICP_FILEUTIL_H
#define AICP_FILEUTIL_H

#include <stddef.h>

#include <jansson.h>

#include "conn.h"
#include "module.h"
#include "util.h"

struct aicp_err;

/* Files up to this size are read by check() so that --diff can show them. */
#define AICP_FU_DIFF_MAX 65536L

/* The argument's value, NULL when absent or null. Borrowed. */
const json_t *aicp_fu_get(const struct aicp_args *a, const char *name);
/* The argument's string value (validation has coerced scalars to strings),
 * else the arg table's default, else NULL. Borrowed from the args or the
 * table. */
const char *aicp_fu_str(const struct aicp_args *a, const char *name);
/* Boolean argument with the table's default, else dflt. */
int aicp_fu_bool(const struct aicp_args *a, const char *name, int dflt);

/* Parses an Ansible mode value: a JSON integer is the mode itself (YAML
 * 0644 is 420), a string of octal digits is octal ("644", "0644"), anything
 * else is symbolic ("u+rwx,g-w,o=r", "a+X") applied to base (the current
 * mode; -1 for a new file, taken as 0644 or 0755 for a directory). *out is
 * -1 when v is NULL or JSON null. AICP_EINVAL when unparsable. */
int aicp_fu_mode_parse(int *out, const json_t *v, int base, int isdir, struct aicp_err *err);
/* "0644" style, always four digits. out must hold 8 bytes. */
void aicp_fu_mode_fmt(char *out, int mode);

/* aicp_conn_exec on ctx's connection with ctx->become. */
int aicp_fu_exec(struct aicp_ctx *ctx, const char *script, const void *in, size_t inlen,
                 struct aicp_exec_result *res, struct aicp_err *err);

/* Check-script builders. Each appends a sh fragment printing records
 * "KEY KIND DATA" that aicp_fu_parse reads back; key must be a word. A
 * NULL path means the path already in the script's $_p (set by the
 * caller's own sh, e.g. a destination computed on the host). Modules' own
 * records "KEY V NAME VALUE" set KEY.NAME to the string VALUE. */
/* KEY S MODEHEX UID GID SIZE MTIME NLINK INO DEV USER GROUP, or KEY S -;
 * plus KEY L TARGET for symlinks (when not following). */
int aicp_fu_sh_stat(struct aicp_buf *b, const char *key, const char *path, int follow);
/* KEY H HEX when path is a readable regular file (after links). algo is
 * sha1, sha256, md5, ... (the coreutils NAMEsum program). */
int aicp_fu_sh_hash(struct aicp_buf *b, const char *key, const char *path, const char *algo);
/* KEY C LEN\n<bytes>\n when path is a readable regular file of at most max
 * bytes (max < 0: any size). */
int aicp_fu_sh_content(struct aicp_buf *b, const char *key, const char *path, long max);
/* Appends pattern for sh so that * ? [ ] still glob but nothing else is
 * special. */
int aicp_fu_sh_glob(struct aicp_buf *b, const char *pattern);

/* Parses the records above into {KEY: {exists, type, mode, mode_int, uid,
 * gid, size, mtime, nlink, ino, dev, owner, group, lnk_source, checksum,
 * content, binary}}. type is file, directory, link, fifo, socket, block,
 * char. content is a string when valid UTF-8, else binary=true and content
 * is held base64-encoded under content_b64. New reference. */
int aicp_fu_parse(json_t **out, const char *data, size_t len, struct aicp_err *err);

/* Compares a parsed stat object with the mode (modev, usually the "mode"
 * argument) and the owner/group arguments. For
 * each differing field puts the current value in before and the wanted one
 * in after (Ansible's diff keys: mode as "0644", owner, group) and counts
 * it. *mode_out gets the wanted mode (-1 when not asked or unchanged).
 * A missing file (exists false) compares as new. Returns the count >= 0 or
 * AICP_EINVAL for a bad mode. */
int aicp_fu_attrs_diff(const json_t *st, const struct aicp_args *a, const json_t *modev, int isdir,
                       json_t *before, json_t *after, int *mode_out, struct aicp_err *err);
/* Appends chown/chmod commands for path (each followed by || exit). mode<0
 * and NULL owner/group are skipped. recurse uses -R; nofollow uses -h for
 * chown and skips chmod (symlinks have no mode of their own on Linux). */
int aicp_fu_sh_attrs(struct aicp_buf *b, const char *path, int mode, const char *owner,
                     const char *group, int recurse, int nofollow);

/* Result keys Ansible's file-ish modules report from a stat object: state,
 * mode, owner, group, uid, gid, size (and path under path_key when not
 * NULL). */
int aicp_fu_result_stat(json_t *result, const char *path_key, const char *path, const json_t *st);

/* Hex digest of data. out holds 2*digest+1 bytes (41 for sha1, 65 for
 * sha256). algo "sha1", "sha256", "md5" ... AICP_EINVAL for an unknown one. */
int aicp_fu_digest_hex(char *out, size_t outsz, const char *algo, const void *data, size_t len);
/* Base64 without newlines. *out malloc'ed. */
int aicp_fu_b64(char **out, const void *data, size_t len);
int aicp_fu_unb64(char **out, size_t *outlen, const char *s);

/* Finds a local source file: absolute paths (and ~/) as given, relative ones
 * in search_dir, search_dir/SUB, search_dir/../SUB (a role's tasks/ next to
 * its files/ or templates/), then the working directory. *out malloc'ed.
 * AICP_ENOTFOUND with the places tried in the message. */
int aicp_fu_local_path(char **out, const char *search_dir, const char *sub, const char *path,
                       struct aicp_err *err);

/* Unified diff of two texts (3 lines of context) with headers
 * "--- LABEL_A" / "+++ LABEL_B". Empty string when equal. *out malloc'ed. */
int aicp_fu_unified_diff(char **out, const char *a, const char *b, const char *label_a,
                         const char *label_b);

/* Sets change->needed/before/after... helper: a new change with needed set
 * and before/after objects created empty. */
int aicp_fu_change_new(struct aicp_change **out, struct aicp_err *err);

/* 1 when the string is valid UTF-8 with no NUL within len bytes. */
int aicp_fu_is_text(const char *s, size_t len);

/* dirname/basename of a remote path as malloc'ed strings ("." / "/"). */
char *aicp_fu_dirname(const char *path);
const char *aicp_fu_basename(const char *path);

/* Runs a check script and parses its records. A non-zero exit status is
 * a failure carrying the script's stderr. */
int aicp_fu_check_run(struct aicp_ctx *ctx, const char *script, json_t **out, struct aicp_err *err);

/* Whole-file writers (copy, template, lineinfile) share one engine.
 * aicp_fu_content_check reads, in one round trip, the target (dest, or
 * dest/dir_base when dest is a directory or ends with '/') with its stat,
 * sha1 and content (up to AICP_FU_DIFF_MAX bytes, or all of it when
 * whole), its parent directory, and the remote source when remote_src is
 * not NULL. *out: {"path": TARGET, "dest_is_dir_slash": bool, "t": stat,
 * "pd": parent stat, "s": remote source stat}. */
int aicp_fu_content_check(struct aicp_ctx *ctx, const char *dest, const char *dir_base,
                          const char *remote_src, int whole, json_t **out, struct aicp_err *err);

/* The content a writer wants: in memory (text/len), or a local file read
 * at apply time (local_src), or a remote file (remote_src). checksum is
 * the sha1 (remote_src: taken from the check). */
struct aicp_fu_want {
    const char *text;
    size_t len;
    const char *checksum;
    const char *local_src;
    const char *local_text; /* local_src's content when small text, for --diff */
    const char *remote_src;
    const char *label; /* the "after" side's name in the diff */
    int content_labels; /* both sides named "PATH (content)", as lineinfile's */
    const json_t *mode;
    const char *backup_key; /* result key for the backup's name */
    int force;              /* replace a different existing file */
    int create_dirs;        /* create a missing parent directory */
};

/* Plans the write: content (when the checksum differs and force allows),
 * mode/owner/group, backup, validate (the "validate" argument), with
 * before/after and a unified diff_text. */
int aicp_fu_content_diff(struct aicp_change **out, const json_t *current, const struct aicp_args *a,
                         const struct aicp_fu_want *w, struct aicp_err *err);
/* Carries out a plan from aicp_fu_content_diff (or one that only has a
 * "script" to run): backup, write (atomic put, or validate-then-rename),
 * attributes; merges plan.result into ctx->result. */
int aicp_fu_content_apply(struct aicp_ctx *ctx, const struct aicp_change *c, struct aicp_err *err);

/* command and shell share their engine. shell=1 runs the text with
 * /bin/sh -c (or the executable argument); otherwise the free-form text is
 * split as Python's shlex does (or argv is used) and each word quoted, so
 * no shell expansion happens. check() tests creates/removes (one round
 * trip, none without them); diff() needs the run unless they say skip;
 * apply() runs and fills cmd, rc, stdout, stderr, *_lines, start, end,
 * delta, msg; a non-zero rc fails with "non-zero return code". */
int aicp_fu_cmd_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err);
int aicp_fu_cmd_diff(const json_t *current, const struct aicp_args *args, int shell,
                     struct aicp_change **change, struct aicp_err *err);
int aicp_fu_cmd_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err);

#endif
