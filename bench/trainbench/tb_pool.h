/* A fixed pool of worker threads for aicp-trainbench's parallel loops.
 * The caller's thread takes part as worker 0, so a pool of one thread
 * starts no threads at all. Tasks are handed out by an atomic counter;
 * which worker runs a task never changes its result, which keeps training
 * bit-for-bit identical for any --threads value. */
#ifndef AICP_TB_POOL_H
#define AICP_TB_POOL_H

#include <stddef.h>

#include "tb_util.h"

struct aicp_tb_pool;

/* fn(arg, task, worker): worker is in [0, nthreads). */
typedef void (*aicp_tb_task_fn)(void *arg, size_t task, int worker);

/* Starts nthreads-1 threads (nthreads >= 1). *out is owned by the caller,
 * freed by aicp_tb_pool_free. */
int aicp_tb_pool_new(struct aicp_tb_pool **out, int nthreads, struct aicp_tb_err *err);
void aicp_tb_pool_free(struct aicp_tb_pool *pool);
int aicp_tb_pool_threads(const struct aicp_tb_pool *pool);

/* Runs fn for tasks 0..ntasks-1 and returns when all are done. pool may be
 * NULL (runs inline). Not reentrant: fn must not call it again. */
void aicp_tb_pool_run(struct aicp_tb_pool *pool, size_t ntasks, aicp_tb_task_fn fn, void *arg);

#endif
