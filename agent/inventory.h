/* The Ansible-compatible inventory: hosts, groups and their variables.
 *
 * Reads the INI and YAML formats as ansible-inventory does (groups,
 * [g:children], [g:vars], host ranges like dgx[01:16] and [a:c], inline host
 * variables, `all` and `ungrouped`), a directory of inventory files, and the
 * group_vars/ and host_vars/ directories beside an inventory (or beside a
 * playbook: aicp_inventory_add_vars_dir). Host order is the order hosts were
 * first seen, as Ansible keeps it.
 */
#ifndef AICP_INVENTORY_H
#define AICP_INVENTORY_H

#include <stddef.h>
#include <jansson.h>

struct aicp_err;
struct aicp_srcmap;

struct aicp_inventory;

/* map may be NULL; when given, loaded YAML nodes are recorded in it and it
 * must outlive the inventory. */
int aicp_inventory_new(struct aicp_inventory **out, struct aicp_srcmap *map);
void aicp_inventory_free(struct aicp_inventory *inv);

/* Loads one source: an INI or YAML file (detected from content, as Ansible's
 * plugins try them), or a directory whose files are loaded in sorted order.
 * A comma-separated host list ("a,b,") is accepted too. Then loads
 * group_vars/ and host_vars/ beside it. Errors name file:line. */
int aicp_inventory_load(struct aicp_inventory *inv, const char *source, struct aicp_err *err);

/* Loads group_vars/ and host_vars/ found in dir (the playbook's directory);
 * these take precedence over the inventory's own (Ansible's order). */
int aicp_inventory_add_vars_dir(struct aicp_inventory *inv, const char *dir, struct aicp_err *err);

/* Adds a host (if new) to a group (made if new), as add_host does. */
int aicp_inventory_add_host(struct aicp_inventory *inv, const char *host, const char *group,
                            struct aicp_err *err);

/* Number of hosts and their names in inventory order. Borrowed. */
size_t aicp_inventory_host_count(const struct aicp_inventory *inv);
const char *aicp_inventory_host_name(const struct aicp_inventory *inv, size_t i);
int aicp_inventory_has_host(const struct aicp_inventory *inv, const char *host);

/* Resolves a host pattern as Ansible does: `all`/`*`, group or host names,
 * wildcards (`dgx*`), `~regex`, `a:b` / `a,b` union, `a:&b` intersection,
 * `a:!b` exclusion, and subscripts `g[0]`, `g[1:3]`. Result: a new JSON array
 * of host names in inventory order. A name matching nothing gives an empty
 * list (the caller warns). */
int aicp_inventory_match(json_t **out, const struct aicp_inventory *inv, const char *pattern,
                         struct aicp_err *err);

/* The variables of a host from the inventory and the vars directories,
 * merged in Ansible's precedence (all < parent groups < child groups (by
 * depth, then ansible_group_priority, then name) < host; within one level
 * inventory file < inventory group_vars/host_vars < playbook ones), plus
 * inventory_hostname, inventory_hostname_short, group_names, groups.
 * *out is a new reference. */
int aicp_inventory_host_vars(json_t **out, const struct aicp_inventory *inv, const char *host,
                             struct aicp_err *err);

/* `ansible-inventory --list` JSON (same keys and structure). New reference. */
int aicp_inventory_list_json(json_t **out, const struct aicp_inventory *inv, struct aicp_err *err);
/* `ansible-inventory --graph [--vars]` text. *out malloc'ed. */
int aicp_inventory_graph(char **out, const struct aicp_inventory *inv, const char *group, int with_vars,
                         struct aicp_err *err);
/* `ansible-inventory --host H` JSON (the host's merged vars, without magic vars). */
int aicp_inventory_host_json(json_t **out, const struct aicp_inventory *inv, const char *host,
                             struct aicp_err *err);

/* Groups in the order they were created ("all" and "ungrouped" first). */
size_t aicp_inventory_group_count(const struct aicp_inventory *inv);
const char *aicp_inventory_group_name(const struct aicp_inventory *inv, size_t i);
/* Index of a group, or -1. */
long aicp_inventory_group_find(const struct aicp_inventory *inv, const char *name);
/* A group's direct child groups and direct hosts, as new JSON arrays of
 * names in the order they were added (NULL only when out of memory). */
json_t *aicp_inventory_group_children(const struct aicp_inventory *inv, size_t i);
json_t *aicp_inventory_group_hosts(const struct aicp_inventory *inv, size_t i);
/* A group's own variables as `ansible-inventory --graph --vars` shows them:
 * inventory vars, then group_vars/ files, plus ansible_group_priority when
 * it is not 1. New reference. */
int aicp_inventory_group_vars(json_t **out, const struct aicp_inventory *inv, const char *group,
                              struct aicp_err *err);

/* Evaluates s as Python's ast.literal_eval would (numbers, strings, True,
 * False, None, lists, tuples, dicts, sets), the way Ansible's INI plugin
 * reads values; anything else is returned as the string itself. Values
 * JSON cannot hold (inf, complex) stay strings. New reference, NULL only
 * when out of memory. */
json_t *aicp_inventory_py_literal(const char *s);

/* `aicp inventory ...` (argv[0] == "inventory"); returns the exit status:
 * 0, 64 (usage) or 65 (invalid inventory). */
int aicp_inventory_cli(int argc, char **argv);

#endif
