/* The worker thread pool behind aicp-trainbench's convolutions (tb_pool.h).
 * One generation counter under a mutex wakes the workers for each parallel
 * loop; tasks are claimed with an atomic fetch-add so that uneven tasks
 * balance themselves. */
/* pread, O_CLOEXEC, clock_gettime, open_memstream: POSIX beyond C11. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "tb_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct aicp_tb_pool_worker {
    struct aicp_tb_pool *pool;
    int index;
    pthread_t thread;
};

struct aicp_tb_pool {
    int nthreads;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;
    unsigned long generation;
    int busy;
    int stop;
    aicp_tb_task_fn fn;
    void *arg;
    size_t ntasks;
    atomic_size_t next;
    struct aicp_tb_pool_worker *workers;
};

static void pool_drain(struct aicp_tb_pool *pool, int worker)
{
    for (;;) {
        size_t t = atomic_fetch_add(&pool->next, 1);

        if (t >= pool->ntasks)
            break;
        pool->fn(pool->arg, t, worker);
    }
}

static void *pool_main(void *p)
{
    struct aicp_tb_pool_worker *w = p;
    struct aicp_tb_pool *pool = w->pool;
    unsigned long seen = 0;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        pool_drain(pool, w->index);
        pthread_mutex_lock(&pool->lock);
        if (--pool->busy == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int aicp_tb_pool_new(struct aicp_tb_pool **out, int nthreads, struct aicp_tb_err *err)
{
    struct aicp_tb_pool *pool;
    int rc = 0, i, prc;

    *out = NULL;
    if (nthreads < 1)
        nthreads = 1;
    pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for the thread pool");
    pool->nthreads = nthreads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->next, 0);
    pool->workers = calloc((size_t)nthreads, sizeof(*pool->workers));
    if (pool->workers == NULL) {
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for the thread pool");
        goto out;
    }
    for (i = 1; i < nthreads; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].index = i;
        prc = pthread_create(&pool->workers[i].thread, NULL, pool_main, &pool->workers[i]);
        if (prc != 0) {
            rc = aicp_tb_err_set(err, AICP_TB_EIO, "cannot start worker thread %d of %d: %s",
                                 i, nthreads, strerror(prc));
            goto out;
        }
        pool->started = i;
    }
out:
    if (rc != 0) {
        aicp_tb_pool_free(pool);
        return rc;
    }
    *out = pool;
    return 0;
}

void aicp_tb_pool_free(struct aicp_tb_pool *pool)
{
    int i;

    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (i = 1; i <= pool->started; i++)
        pthread_join(pool->workers[i].thread, NULL);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

int aicp_tb_pool_threads(const struct aicp_tb_pool *pool)
{
    return pool == NULL ? 1 : pool->nthreads;
}

void aicp_tb_pool_run(struct aicp_tb_pool *pool, size_t ntasks, aicp_tb_task_fn fn, void *arg)
{
    size_t t;

    if (ntasks == 0)
        return;
    if (pool == NULL || pool->started == 0 || ntasks == 1) {
        for (t = 0; t < ntasks; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->ntasks = ntasks;
    atomic_store(&pool->next, 0);
    pool->busy = pool->started;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    pool_drain(pool, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->busy > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
