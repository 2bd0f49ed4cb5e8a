/* The training loop and its timing (see tb_run.h). */
#include "tb_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tb_data.h"
#include "tb_gemm.h"
#include "tb_model.h"
#include "tb_pool.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

double aicp_tb_percentile(double *v, int n, double p)
{
    int rank;

    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    rank = (int)ceil(p / 100.0 * n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

void aicp_tb_result_free(struct aicp_tb_result *res)
{
    if (res == NULL)
        return;
    free(res->losses);
    res->losses = NULL;
}

int aicp_tb_run(struct aicp_tb_result *res, const struct aicp_tb_opts *opts, FILE *progress,
                struct aicp_tb_err *err)
{
    struct aicp_tb_pool *pool = NULL;
    struct aicp_tb_gemm *g = NULL;
    struct aicp_tb_model *m = NULL;
    struct aicp_tb_records *rec = NULL;
    struct aicp_tb_sgd sgd = {opts->lr, opts->momentum, opts->weight_decay};
    int total = opts->warmup + opts->steps, s, rc;
    double *step_s = NULL, timed = 0.0, last_print;
    long batch = opts->cfg.batch;

    memset(res, 0, sizeof(*res));
    if ((rc = aicp_tb_pool_new(&pool, opts->threads, err)) != 0)
        goto out;
    if ((rc = aicp_tb_gemm_new(&g, pool, err)) != 0)
        goto out;
    if (opts->data_dir != NULL &&
        (rc = aicp_tb_records_open(&rec, opts->data_dir, opts->cfg.classes, err)) != 0)
        goto out;
    if ((rc = aicp_tb_model_new(&m, &opts->cfg, g, 1, err)) != 0)
        goto out;
    res->losses = calloc((size_t)total, sizeof(double));
    step_s = calloc((size_t)opts->steps, sizeof(double));
    if (res->losses == NULL || step_s == NULL) {
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for %d step records", total);
        goto out;
    }
    res->nlosses = total;
    last_print = aicp_tb_now();
    for (s = 0; s < total; s++) {
        double t0, dt, loss;

        if (rec != NULL) {
            rc = aicp_tb_records_fill(rec, (size_t)s * (size_t)batch, (int)batch,
                                      opts->cfg.resolution, aicp_tb_model_input(m),
                                      aicp_tb_model_labels(m), err);
            if (rc != 0)
                goto out;
        } else {
            aicp_tb_data_synthetic(aicp_tb_model_input(m), aicp_tb_model_labels(m), (int)batch,
                                   opts->cfg.resolution, opts->cfg.classes, opts->cfg.seed, s);
        }
        t0 = aicp_tb_now();
        aicp_tb_model_step(m, &sgd, &loss);
        dt = aicp_tb_now() - t0;
        res->losses[s] = loss;
        if (s >= opts->warmup) {
            step_s[s - opts->warmup] = dt;
            timed += dt;
        }
        if (progress != NULL && (s == total - 1 || s == 0 || t0 + dt - last_print >= 1.0)) {
            int warm = s < opts->warmup;
            double ips = warm ? batch / dt
                              : (double)batch * (s - opts->warmup + 1) / (timed > 0 ? timed : 1);

            fprintf(progress, "step %d/%d%s  loss %.4f  %.2f images/sec\n", s + 1, total,
                    warm ? " (warm-up)" : "", loss, ips);
            fflush(progress);
            last_print = t0 + dt;
        }
    }
    res->loss_first = res->losses[0];
    res->final_loss = res->losses[total - 1];
    res->images_per_sec = timed > 0 ? (double)batch * opts->steps / timed : 0.0;
    for (s = 0; s < opts->steps; s++)
        step_s[s] *= 1000.0;
    res->step_ms_p50 = aicp_tb_percentile(step_s, opts->steps, 50);
    res->step_ms_p90 = aicp_tb_percentile(step_s, opts->steps, 90);
    res->step_ms_p99 = aicp_tb_percentile(step_s, opts->steps, 99);
    res->fwd_macs_per_image = aicp_tb_model_fwd_macs(m);
    res->flops_per_image = 6.0 * res->fwd_macs_per_image;
    res->achieved_tflops = res->images_per_sec * res->flops_per_image / 1e12;
    res->params = aicp_tb_model_params(m);
    rc = 0;
out:
    if (rc != 0)
        aicp_tb_result_free(res);
    free(step_s);
    aicp_tb_model_free(m);
    aicp_tb_records_free(rec);
    aicp_tb_gemm_free(g);
    aicp_tb_pool_free(pool);
    return rc;
}
