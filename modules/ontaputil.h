/* What the ONTAP modules share: the connection arguments (named as the
 * netapp.ontap collection names them, so its tasks port over), the client
 * from the run's pool, and helpers for the check/diff/apply life cycle of
 * a record found by name. */
#ifndef AICP_ONTAPUTIL_H
#define AICP_ONTAPUTIL_H

#include <jansson.h>

#include "module.h"
#include "ontap.h"

/* Every ONTAP module's table starts with these. */
#define AICP_OU_CONN_ARGS                                                                          \
    {.name = "hostname", .type = AICP_ARG_STR, .required = 1,                                      \
     .help = "The cluster's management LIF (address or name, optionally :port)."},                 \
    {.name = "username", .type = AICP_ARG_STR, .aliases = "user",                                  \
     .help = "API user (password auth)."},                                                         \
    {.name = "password", .type = AICP_ARG_STR, .secret = 1, .credential = 1, .aliases = "pass",     \
     .help = "API password. Never shown; keep it in a vault."},                                    \
    {.name = "cert_filepath", .type = AICP_ARG_PATH, .local = 1,                                   \
     .help = "Client certificate (certificate auth instead of a password)."},                      \
    {.name = "key_filepath", .type = AICP_ARG_PATH, .local = 1,                                    \
     .help = "Client certificate's key."},                                                         \
    {.name = "ca_file", .type = AICP_ARG_PATH, .local = 1,                                         \
     .help = "CA bundle for the cluster's certificate (default: the system store)."},              \
    {.name = "validate_certs", .type = AICP_ARG_BOOL, .def = "yes",                                \
     .help = "Verify the cluster's certificate. 'no' is honoured with a warning."},                \
    {.name = "https", .type = AICP_ARG_BOOL, .def = "yes",                                         \
     .help = "Use HTTPS (plain HTTP only for test servers)."},                                     \
    {.name = "use_rest", .type = AICP_ARG_STR, .def = "always",                                    \
     .help = "Accepted for netapp.ontap compatibility; aicp always uses REST."}

/* The client for this call, from the run's pool (ctx->ontap). Borrowed. */
int aicp_ou_client(struct aicp_ctx *ctx, const struct aicp_args *args, struct aicp_ontap **o,
                   struct aicp_err *err);

/* The provenance an object aicp creates carries: "aicp site=NAME run=ID"
 * (ONTAP comment when the task gives none). Written into buf. */
void aicp_ou_provenance(const struct aicp_ctx *ctx, char *buf, size_t cap);

/* Field-level drift between wanted (only what the task declared, already
 * normalised) and have (the record): for every key of wanted, compares
 * sizes as bytes (keys listed in size_keys), enums with
 * aicp_ontap_enum_eq (keys in enum_keys), the rest as JSON; fields absent
 * from have are not drift (the API did not return them). Fills before /
 * after (new objects) with the differing fields, keyed by dotted path.
 * Returns the number of differing fields. */
int aicp_ou_drift(const json_t *wanted, const json_t *have, const char *const *size_keys,
                  const char *const *enum_keys, json_t *before, json_t *after);

#endif
