/* Host facts (gather_facts): the small set operators use, read in one round
 * trip: hostname, OS, kernel, CPUs, memory, and GPUs through nvidia-smi when
 * present. */
#ifndef AICP_FACTS_H
#define AICP_FACTS_H

#include <jansson.h>

struct aicp_conn;
struct aicp_err;

/* *out: a new object of facts without the ansible_ prefix (as
 * ansible_facts holds them): hostname, nodename, fqdn, distribution,
 * distribution_version, distribution_release, distribution_major_version,
 * os_family, system, kernel, architecture, processor_vcpus,
 * processor_cores, memtotal_mb, memfree_mb, swaptotal_mb, user_id, env.HOME,
 * gpus (list of {index, name, driver_version, memory_total_mib, mig_mode,
 * persistence_mode}), gpu_count, nvidia_driver_version. */
int aicp_facts_gather(json_t **out, struct aicp_conn *conn, int become, struct aicp_err *err);

/* Parses the gather script's output (exposed for tests). */
int aicp_facts_parse(json_t **out, const char *text, struct aicp_err *err);

#endif
