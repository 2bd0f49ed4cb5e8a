/* Helpers the command-line front ends share: reading -e values the way
 * ansible-playbook does, the checks it makes on the playbook and --limit
 * before it starts, and printing an error with the run's secrets masked. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "inventory.h"
#include "module.h"
#include "secret.h"
#include "util.h"
#include "yaml.h"

int aicp_cli_extra_vars(json_t *acc, const char *arg, struct aicp_srcmap *map,
                        struct aicp_err *err)
{
    json_t *v = NULL;
    int rc, from_file = arg[0] == '@';
    if (arg[0] == '\0')
        return 0; /* ansible-playbook skips an empty -e */
    if (from_file) {
        rc = aicp_yaml_load_file(&v, arg + 1, map, err);
        if (rc == AICP_EIO)
            rc = AICP_EINVAL; /* a missing vars file is bad input, as a missing playbook */
    } else if (arg[0] == '/' || arg[0] == '.') {
        return aicp_err_set(err, AICP_EUSAGE, "Please prepend extra_vars filename '%s' with '@'",
                            arg);
    } else if (arg[0] == '{' || arg[0] == '[') {
        rc = aicp_yaml_load_string(&v, arg, strlen(arg), "extra vars", map, err);
    } else {
        rc = aicp_args_parse_kv(&v, arg, 0, NULL, err);
    }
    if (rc != 0)
        return rc;
    /* Words without '=' (`-e bad`) would land in _raw_params and be
     * dropped without a word: refuse them, as anything else that is not a
     * mapping. A file's content is input (65); the option itself is usage
     * (64). */
    if (!json_is_object(v) || (!from_file && json_object_get(v, "_raw_params") != NULL)) {
        json_decref(v);
        return aicp_err_set(err, from_file ? AICP_EINVAL : AICP_EUSAGE,
                            "Invalid extra vars data supplied. '%s' could not be made into a "
                            "dictionary",
                            arg);
    }
    json_object_update(acc, v);
    json_decref(v);
    return 0;
}

int aicp_cli_check_playbook(const char *path, struct aicp_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return aicp_err_set(err, AICP_EINVAL, "the playbook: %s could not be found", path);
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
        return aicp_err_set(err, AICP_EINVAL, "the playbook: %s does not appear to be a file",
                            path);
    if (access(path, R_OK) != 0)
        return aicp_err_set(err, AICP_EINVAL, "the playbook: %s could not be read: %s", path,
                            strerror(errno));
    return 0;
}

int aicp_cli_check_limit(const char *const *inventories, size_t n, const char *limit,
                         struct aicp_srcmap *map, struct aicp_err *err)
{
    struct aicp_inventory *inv = NULL;
    json_t *hosts = NULL;
    int rc;
    /* A retry file (@FILE) is not read here; the implicit localhost is
     * not in the inventory but a play naming it still runs on it. */
    if (limit == NULL || limit[0] == '@' || strcmp(limit, "localhost") == 0 ||
        strcmp(limit, "127.0.0.1") == 0)
        return 0;
    if ((rc = aicp_inventory_new(&inv, map)) != 0) {
        rc = aicp_err_set(err, rc, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = aicp_inventory_load(inv, inventories[i], err)) != 0)
            goto out;
    /* As ansible-playbook: an inventory without hosts (only the implicit
     * localhost) is not an error, whatever the limit. */
    if (aicp_inventory_host_count(inv) == 0)
        goto out;
    if ((rc = aicp_inventory_match(&hosts, inv, limit, err)) != 0)
        goto out;
    if (json_array_size(hosts) == 0)
        rc = aicp_err_set(err, AICP_EFAILED,
                          "Specified inventory, host pattern and/or --limit leaves us with no "
                          "hosts to target.");
out:
    json_decref(hosts);
    aicp_inventory_free(inv);
    return rc;
}

void aicp_cli_print_error(const struct aicp_secrets *secrets, const char *prefix, const char *msg)
{
    char *m = aicp_secrets_mask(secrets, msg);
    fprintf(stderr, "%s%s\n", prefix, m ? m : "(error message withheld: out of memory)");
    aicp_free_secret(m);
}
