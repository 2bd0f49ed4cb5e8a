/* Helpers the command-line front ends share (`aicp run`, `apply`/`plan`/
 * `drift`/`validate`, `trace`): -e values and masked error messages. */
#ifndef AICP_CLI_H
#define AICP_CLI_H

#include <stddef.h>

#include <jansson.h>

struct aicp_err;
struct aicp_secrets;
struct aicp_srcmap;

/* One -e: KEY=VALUE pairs, inline YAML/JSON, or @FILE (possibly vaulted:
 * map carries the vault), merged into acc (an object); later ones win. A
 * missing or unreadable file, or one that is not a mapping, is AICP_EINVAL
 * (bad input); a value that is not a mapping (`-e bad`, `-e '[1]'`) or a
 * path without its '@' is AICP_EUSAGE. An empty value adds nothing. */
int aicp_cli_extra_vars(json_t *acc, const char *arg, struct aicp_srcmap *map,
                        struct aicp_err *err);

/* As ansible-playbook before it starts: a playbook that does not exist, is
 * not a file or cannot be read is AICP_EINVAL (invalid input, as a missing
 * inventory). */
int aicp_cli_check_playbook(const char *path, struct aicp_err *err);

/* Loads the inventories (map carries the vault) and fails, as
 * ansible-playbook does, with AICP_EFAILED ("Specified inventory, host
 * pattern and/or --limit leaves us with no hosts to target.") when limit
 * matches no host of a non-empty inventory. limit NULL: nothing to check.
 * Inventory errors are returned as the run would return them. */
int aicp_cli_check_limit(const char *const *inventories, size_t n, const char *limit,
                         struct aicp_srcmap *map, struct aicp_err *err);

/* Prints prefix and msg to stderr with every secret masked. */
void aicp_cli_print_error(const struct aicp_secrets *secrets, const char *prefix, const char *msg);

#endif
