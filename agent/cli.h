/* Helpers the command-line front ends share (`aicp run`, `apply`/`plan`/
 * `drift`/`validate`, `trace`): -e values and masked error messages. */
#ifndef AICP_CLI_H
#define AICP_CLI_H

#include <jansson.h>

struct aicp_err;
struct aicp_secrets;
struct aicp_srcmap;

/* One -e: KEY=VALUE pairs, inline YAML/JSON, or @FILE (possibly vaulted:
 * map carries the vault), merged into acc (an object); later ones win. A
 * missing or unreadable file is AICP_EINVAL (bad input). */
int aicp_cli_extra_vars(json_t *acc, const char *arg, struct aicp_srcmap *map,
                        struct aicp_err *err);

/* Prints prefix and msg to stderr with every secret masked. */
void aicp_cli_print_error(const struct aicp_secrets *secrets, const char *prefix, const char *msg);

#endif
