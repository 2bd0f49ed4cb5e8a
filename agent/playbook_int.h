/* Private to the playbook loader's own files (playbook.c,
 * playbook_roles.c, playbook_loop.c): the loader state they pass around,
 * the small helpers they share and the functions one of them calls in
 * another. Nothing else includes this; the interface for everyone else is
 * playbook.h.
 */
#ifndef AICP_PLAYBOOK_INT_H
#define AICP_PLAYBOOK_INT_H

#include <sys/stat.h>
#include <jansson.h>

#include "err.h"
#include "playbook.h"
#include "yaml.h"

/* Imports nest no deeper than this (a file importing itself loops). */
#define MAX_DEPTH 32

struct loader {
    struct aicp_playbook *pb;
    struct aicp_play *play; /* the play being loaded (roles add handlers to it) */
    struct aicp_err *err;
    json_t *handler_files; /* role handler files already added to the play */
    int depth;
};

/* Static inline so that each file gets its own copy of these one-liners. */
static inline int oom(struct loader *L)
{
    return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
}

static inline int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static inline int dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- playbook.c: helpers, tasks, plays ---- */

int aicp_playbook_fail_at(struct loader *L, const struct aicp_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct aicp_loc aicp_playbook_loc_of(struct loader *L, const json_t *node,
                                     const struct aicp_loc *fallback);
char *aicp_playbook_dir_of(const char *path);
char *aicp_playbook_path_join(const char *dir, const char *name);
int aicp_playbook_load_doc(struct loader *L, const char *path, json_t **tree);
const char *aicp_playbook_type_word(const json_t *v);
int aicp_playbook_get_str(struct loader *L, const json_t *v, const char *key,
                          const struct aicp_loc *loc, char **out);
int aicp_playbook_get_vars(struct loader *L, const json_t *v, const char *key,
                           const struct aicp_loc *loc, json_t **out);
void aicp_playbook_task_free(struct aicp_task *t);
void aicp_playbook_task_list_free(struct aicp_task_list *l);
int aicp_playbook_task_list_push(struct aicp_task_list *l, struct aicp_task *t);
int aicp_playbook_parse_task_list(struct loader *L, const json_t *node, const char *dir,
                                  int handlers, const struct aicp_loc *parent,
                                  struct aicp_task_list *out);

/* ---- playbook_roles.c: task files and roles ---- */

int aicp_playbook_load_task_file(struct loader *L, const char *path, int handlers,
                                 struct aicp_task_list *out);
int aicp_playbook_find_task_file(struct loader *L, const json_t *v, const char *key,
                                 const char *dir, const struct aicp_loc *loc, char **out);
int aicp_playbook_load_role(struct loader *L, const char *name, const json_t *opts,
                            const struct aicp_loc *loc, struct aicp_task *t);

/* ---- playbook_loop.c: the loop keywords ---- */

int aicp_playbook_parse_loop(struct loader *L, struct aicp_task *t, const char *key,
                             const json_t *v, const struct aicp_loc *loc);
int aicp_playbook_parse_loop_control(struct loader *L, struct aicp_task *t, const json_t *v,
                                     const struct aicp_loc *loc);

#endif
