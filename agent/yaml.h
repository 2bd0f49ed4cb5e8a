/* YAML documents as jansson values, with the source position of every node.
 *
 * Scalars are typed as Ansible's YAML loader types them (YAML 1.1 core:
 * true/false/yes/no/on/off, ints incl. 0x/0o, floats, null/~); quoted
 * scalars always stay strings. Anchors, aliases and `<<` merge keys are
 * resolved. Duplicate mapping keys: the later one wins (as Ansible, which
 * warns). Tags: `!unsafe` keeps the string verbatim (marked in the srcmap so
 * the templater leaves it alone); `!vault` values are decrypted with the
 * srcmap's vault, and so are whole vaulted files; their plaintext is
 * registered in the srcmap's secrets so that output masks it.
 */
#ifndef AICP_YAML_H
#define AICP_YAML_H

#include <stddef.h>
#include <jansson.h>

struct aicp_err;
struct aicp_secrets;
struct aicp_vault;

struct aicp_loc {
    const char *file; /* interned; owned by the srcmap */
    int line;         /* 1-based */
    int col;          /* 1-based */
};

/* Maps json_t nodes (by address) to where they were in the source. One map
 * can hold the positions of many loaded files. It does not hold references:
 * keep the map alive at least as long as the trees you query it with. */
struct aicp_srcmap;

int aicp_srcmap_new(struct aicp_srcmap **out);
void aicp_srcmap_free(struct aicp_srcmap *map);
/* NULL when the node is unknown (e.g. built in code). */
const struct aicp_loc *aicp_srcmap_get(const struct aicp_srcmap *map, const json_t *node);
/* Records a position for a node made elsewhere (file is copied). */
int aicp_srcmap_put(struct aicp_srcmap *map, const json_t *node, const char *file, int line, int col);
/* The vault that opens vaulted files and `!vault` values loaded with this
 * map, and where their plaintext is registered. Both borrowed, may be NULL
 * (a vaulted input is then an error saying no vault password was given). */
void aicp_srcmap_set_vault(struct aicp_srcmap *map, const struct aicp_vault *vault,
                           struct aicp_secrets *secrets);
const struct aicp_vault *aicp_srcmap_vault(const struct aicp_srcmap *map);
struct aicp_secrets *aicp_srcmap_secrets(const struct aicp_srcmap *map);
/* 1 when the string node was tagged !unsafe. */
int aicp_srcmap_unsafe(const struct aicp_srcmap *map, const json_t *node);

/* Loads the first document of a YAML file. An empty document yields JSON
 * null. Errors are AICP_EINVAL with "file:line:col: message". map may be
 * NULL. *out is a new reference. */
int aicp_yaml_load_file(json_t **out, const char *path, struct aicp_srcmap *map,
                        struct aicp_err *err);
int aicp_yaml_load_string(json_t **out, const char *text, size_t len, const char *name,
                          struct aicp_srcmap *map, struct aicp_err *err);
/* aicp_yaml_load_string for text that came out of a vault: errors give
 * file:line:col and what is wrong but never quote the text (no alias or
 * tag name), and libyaml's buffers and events are wiped before they are
 * freed. Registers nothing in the map's secrets: the caller knows which
 * values are secrets. aicp_yaml_load_file does all this by itself for a
 * vaulted file, and registers every value. */
int aicp_yaml_load_secret_string(json_t **out, const char *text, size_t len, const char *name,
                                 struct aicp_srcmap *map, struct aicp_err *err);

#endif
