/* Helpers the command-line front ends share: reading -e values the way
 * ansible-playbook does, and printing an error with the run's secrets
 * masked. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "module.h"
#include "secret.h"
#include "util.h"
#include "yaml.h"

int aicp_cli_extra_vars(json_t *acc, const char *arg, struct aicp_srcmap *map,
                        struct aicp_err *err)
{
    json_t *v = NULL;
    int rc;
    if (arg[0] == '@') {
        rc = aicp_yaml_load_file(&v, arg + 1, map, err);
        if (rc == AICP_EIO)
            rc = AICP_EINVAL; /* a missing vars file is bad input, as a missing playbook */
    } else if (arg[0] == '{' || arg[0] == '[') {
        rc = aicp_yaml_load_string(&v, arg, strlen(arg), "extra vars", map, err);
    } else {
        rc = aicp_args_parse_kv(&v, arg, 0, NULL, err);
    }
    if (rc != 0)
        return rc;
    if (!json_is_object(v)) {
        json_decref(v);
        return aicp_err_set(err, AICP_EINVAL,
                            "extra vars '%s' must be KEY=VALUE, a mapping or @FILE", arg);
    }
    json_object_update(acc, v);
    json_decref(v);
    return 0;
}

void aicp_cli_print_error(const struct aicp_secrets *secrets, const char *prefix, const char *msg)
{
    char *m = aicp_secrets_mask(secrets, msg);
    fprintf(stderr, "%s%s\n", prefix, m ? m : "(error message withheld: out of memory)");
    aicp_free_secret(m);
}
