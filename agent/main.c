/* aicp's command line: parses the subcommand and its options and hands the
 * work to the executor, the inventory, the lab or the module docs. Exit
 * statuses: 0 nothing changed, 2 something changed, 1 a failure or an
 * unreachable host, 64 usage, 65 invalid input. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "executor.h"
#include "inventory.h"
#include "lab.h"
#include "module.h"
#include "registry.h"
#include "secret.h"
#include "site.h"
#include "template.h"
#include "trace.h"
#include "util.h"
#include "vault.h"
#include "yaml.h"

#define EXIT_USAGE 64
#define EXIT_INVALID 65

static void usage(FILE *fp)
{
    fputs("usage: aicp apply SITE [--check] [--diff] [--only KIND] [--limit NAME] [--json FILE]\n"
          "                 [--kubeconfig F] [--context C] [--allow-replace] [vault options]\n"
          "       aicp plan SITE [...]       (apply --check --diff)\n"
          "       aicp drift SITE [--report DIR] [...]\n"
          "       aicp validate SITE [--report DIR] [...]\n"
          "       aicp trace SITE RUN_ID | --job NAME [-n NS] [--json] [...]\n"
          "       aicp run PLAYBOOK -i INVENTORY [-i ...] [-e KEY=VALUE | -e @FILE]...\n"
          "                [--check] [--diff] [--limit PATTERN] [--tags T] [--skip-tags T]\n"
          "                [--forks N] [--json FILE] [-v] [--syntax-check] [--list-hosts]\n"
          "                [--vault-password-file F | --vault-id [LABEL@]F ... | -J]\n"
          "                [--accept-new-host-keys] [--kubeconfig F] [--context C]\n"
          "       aicp inventory -i INVENTORY --list | --graph [GROUP] | --host NAME\n"
          "       aicp vault encrypt|decrypt|view|rekey|encrypt_string [options] [FILE...]\n"
          "       aicp modules [NAME]\n"
          "       aicp lab up [--nodes N] [--dir DIR] | down | status\n"
          "       aicp version\n",
          fp);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aicp: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return EXIT_USAGE;
}

static json_t *split_tags(json_t *acc, const char *s)
{
    if (acc == NULL)
        acc = json_array();
    char *copy = aicp_strdup(s), *save = NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*t)
            json_array_append_new(acc, json_string(t));
    }
    free(copy);
    return acc;
}

static int cmd_run(int argc, char **argv)
{
    enum { OPT_SKIP = 256, OPT_JSON, OPT_SYNTAX, OPT_LIST_HOSTS, OPT_VPF, OPT_VID, OPT_ACCEPT,
           OPT_KUBECONFIG, OPT_CONTEXT };
    static const struct option longopts[] = {
        {"inventory", required_argument, NULL, 'i'}, {"extra-vars", required_argument, NULL, 'e'},
        {"check", no_argument, NULL, 'C'},           {"diff", no_argument, NULL, 'D'},
        {"limit", required_argument, NULL, 'l'},     {"tags", required_argument, NULL, 't'},
        {"skip-tags", required_argument, NULL, OPT_SKIP}, {"forks", required_argument, NULL, 'f'},
        {"json", required_argument, NULL, OPT_JSON}, {"verbose", no_argument, NULL, 'v'},
        {"syntax-check", no_argument, NULL, OPT_SYNTAX},
        {"list-hosts", no_argument, NULL, OPT_LIST_HOSTS},
        {"vault-password-file", required_argument, NULL, OPT_VPF},
        {"vault-id", required_argument, NULL, OPT_VID},
        {"ask-vault-pass", no_argument, NULL, 'J'},  {"ask-vault-password", no_argument, NULL, 'J'},
        {"accept-new-host-keys", no_argument, NULL, OPT_ACCEPT},
        {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
        {"context", required_argument, NULL, OPT_CONTEXT},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0},
    };
    struct aicp_run_opts o = {.forks = 20};
    struct aicp_err err = {0};
    const char **invs = calloc((size_t)argc + 1, sizeof(*invs));
    const char **extras = calloc((size_t)argc + 1, sizeof(*extras));
    const char **ids = calloc((size_t)argc + 1, sizeof(*ids));
    const char **files = calloc((size_t)argc + 1, sizeof(*files));
    json_t *extra = json_object();
    struct aicp_vault *vault = NULL;
    struct aicp_secrets *secrets = NULL;
    struct aicp_srcmap *emap = NULL;
    int status = EXIT_USAGE, c, rc, ask = 0;
    size_t ninv = 0, nextra = 0, nids = 0, nfiles = 0;
    if (invs == NULL || extras == NULL || ids == NULL || files == NULL || extra == NULL ||
        aicp_vault_new(&vault) != 0 || aicp_secrets_new(&secrets) != 0 ||
        aicp_srcmap_new(&emap) != 0) {
        fputs("aicp: out of memory\n", stderr);
        status = 1;
        goto out;
    }
    /* Values templates derive from the secrets are secrets too. */
    aicp_tmpl_set_secrets(secrets);
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:e:CDl:t:f:vhJ", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': invs[ninv++] = optarg; break;
        case 'e': extras[nextra++] = optarg; break;
        case 'C': o.check = 1; break;
        case 'D': o.diff = 1; break;
        case 'l': o.limit = optarg; break;
        case 't': o.tags = split_tags(o.tags, optarg); break;
        case OPT_SKIP: o.skip_tags = split_tags(o.skip_tags, optarg); break;
        case 'f': {
            char *end = NULL;
            long n = strtol(optarg, &end, 10);
            if (end == optarg || *end || n < 1 || n > 1000) {
                status = usage_error("--forks wants a number from 1 to 1000, not '%s'", optarg);
                goto out;
            }
            o.forks = (int)n;
            break;
        }
        case OPT_JSON: o.json_path = optarg; break;
        case OPT_SYNTAX: o.syntax_check = 1; break;
        case OPT_LIST_HOSTS: o.list_hosts = 1; break;
        case OPT_VPF: files[nfiles++] = optarg; break;
        case OPT_VID: ids[nids++] = optarg; break;
        case 'J': ask = 1; break;
        case OPT_ACCEPT: o.accept_new_host_keys = 1; break;
        case OPT_KUBECONFIG: o.kubeconfig = optarg; break;
        case OPT_CONTEXT: o.kube_context = optarg; break;
        case 'v': o.verbose++; break;
        case 'h': usage(stdout); status = 0; goto out;
        default: status = usage_error("bad option for 'run'"); goto out;
        }
    }
    if (optind != argc - 1) {
        status = usage_error("'run' wants exactly one playbook");
        goto out;
    }
    if (ninv == 0) {
        const char *env = getenv("ANSIBLE_INVENTORY");
        if (env == NULL) {
            status = usage_error("no inventory: give -i INVENTORY");
            goto out;
        }
        invs[ninv++] = env;
    }
    if ((rc = aicp_vault_add_cli(vault, ids, nids, files, nfiles, ask, &err)) != 0) {
        fprintf(stderr, "aicp: %s\n", err.msg);
        status = aicp_err_exit_status(rc);
        goto out;
    }
    /* -e files may be vaulted: read them once the passwords are known. */
    aicp_srcmap_set_vault(emap, vault, secrets);
    for (size_t i = 0; i < nextra; i++) {
        if ((rc = aicp_cli_extra_vars(extra, extras[i], emap, &err)) != 0) {
            aicp_cli_print_error(secrets, "aicp: ", err.msg);
            status = aicp_err_exit_status(rc);
            goto out;
        }
    }
    if ((rc = aicp_cli_check_playbook(argv[optind], &err)) != 0 ||
        (rc = aicp_cli_check_limit(invs, ninv, o.limit, emap, &err)) != 0) {
        aicp_cli_print_error(secrets, "ERROR! ", err.msg);
        status = aicp_err_exit_status(rc);
        goto out;
    }
    o.inventories = invs;
    o.ninventories = ninv;
    o.extra_vars = extra;
    o.vault = vault;
    o.secrets = secrets;
    rc = aicp_run_playbook(&status, argv[optind], &o, &err);
    if (rc != 0) {
        aicp_cli_print_error(secrets, "ERROR! ", err.msg);
        status = aicp_err_exit_status(rc);
    }
out:
    free(invs);
    free(extras);
    free(ids);
    free(files);
    json_decref(extra);
    json_decref(o.tags);
    json_decref(o.skip_tags);
    aicp_srcmap_free(emap);
    aicp_vault_free(vault);
    aicp_tmpl_set_secrets(NULL);
    aicp_secrets_free(secrets);
    return status;
}

static const char *type_name(enum aicp_arg_type t)
{
    switch (t) {
    case AICP_ARG_STR: return "str";
    case AICP_ARG_BOOL: return "bool";
    case AICP_ARG_INT: return "int";
    case AICP_ARG_FLOAT: return "float";
    case AICP_ARG_LIST: return "list";
    case AICP_ARG_DICT: return "dict";
    case AICP_ARG_PATH: return "path";
    case AICP_ARG_MODE: return "mode";
    case AICP_ARG_RAW: return "raw";
    }
    return "?";
}

static int cmd_modules(int argc, char **argv)
{
    if (argc == 1) {
        for (size_t i = 0; i < aicp_module_count(); i++) {
            const struct aicp_module *m = aicp_module_at(i);
            printf("%-20s %s\n", m->name, m->summary ? m->summary : "");
        }
        return 0;
    }
    if (argc != 2)
        return usage_error("'modules' takes at most one module name");
    const struct aicp_module *m = aicp_module_find(argv[1]);
    if (m == NULL) {
        fprintf(stderr, "aicp: no module named '%s' (aicp modules lists them)\n", argv[1]);
        return EXIT_INVALID;
    }
    printf("%s - %s\n\nOPTIONS (= is mandatory, * is secret):\n", m->name, m->summary ? m->summary : "");
    for (const struct aicp_arg_spec *a = m->args; a && a->name; a++) {
        printf("\n%c %s%s (%s)", a->required ? '=' : '-', a->name, a->secret ? " *" : "",
               type_name(a->type));
        if (a->def)
            printf(" default: %s", a->def);
        if (a->choices)
            printf(" choices: %s", a->choices);
        if (a->aliases)
            printf(" aliases: %s", a->aliases);
        printf("\n    %s\n", a->help ? a->help : "");
    }
    if (m->flags & AICP_MOD_NEEDS_KUBE)
        printf("\nRuns on the jump host against the Kubernetes API (kubeconfig, --kubeconfig).\n");
    if (m->flags & AICP_MOD_NEEDS_ONTAP)
        printf("\nRuns on the jump host against the ONTAP REST API (hostname, credentials).\n");
    return 0;
}

int main(int argc, char **argv)
{
    /* A host that goes away mid-write is an unreachable host, not the end
     * of the run (children get the default back: see conn.c). */
    signal(SIGPIPE, SIG_IGN);
    aicp_secrets_wipe_json_memory();
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "inventory") == 0)
        return aicp_inventory_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "modules") == 0)
        return cmd_modules(argc - 1, argv + 1);
    if (strcmp(cmd, "lab") == 0)
        return aicp_lab_main(argc - 1, argv + 1);
    if (strcmp(cmd, "vault") == 0)
        return aicp_vault_main(argc - 1, argv + 1);
    if (strcmp(cmd, "apply") == 0 || strcmp(cmd, "plan") == 0 || strcmp(cmd, "drift") == 0 ||
        strcmp(cmd, "validate") == 0)
        return aicp_site_main(argc - 1, argv + 1);
    if (strcmp(cmd, "trace") == 0)
        return aicp_trace_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2)
            return usage_error("'%s' takes no arguments", cmd);
        printf("aicp %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    return usage_error("unknown command '%s'", cmd);
}
