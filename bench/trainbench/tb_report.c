/* JSON and human output of aicp-trainbench (see tb_report.h). Written by
 * hand, not with jansson, to keep the benchmark free of libraries; strings
 * are escaped and non-finite numbers (a diverged loss) become null so the
 * line always parses. */
#include "tb_report.h"

#include <math.h>

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void json_number(FILE *out, double v)
{
    if (isfinite(v))
        fprintf(out, "%.6g", v);
    else
        fputs("null", out);
}

void aicp_tb_report_json(FILE *out, const struct aicp_tb_opts *opts,
                         const struct aicp_tb_result *res)
{
    int i;

    fputs("{\"model\":", out);
    json_string(out, opts->model);
    fputs(",\"device\":", out);
    json_string(out, opts->device);
    fputs(",\"precision\":", out);
    json_string(out, opts->precision);
    fprintf(out, ",\"batch_size\":%d,\"steps\":%d,\"warmup\":%d,\"threads\":%d",
            opts->cfg.batch, opts->steps, opts->warmup, opts->threads);
    fputs(",\"lr\":", out);
    json_number(out, opts->lr);
    fputs(",\"images_per_sec\":", out);
    json_number(out, res->images_per_sec);
    /* The CPU path is one worker, so per-device equals the total. */
    fputs(",\"images_per_sec_per_gpu\":", out);
    json_number(out, res->images_per_sec);
    fputs(",\"step_ms\":{\"p50\":", out);
    json_number(out, res->step_ms_p50);
    fputs(",\"p90\":", out);
    json_number(out, res->step_ms_p90);
    fputs(",\"p99\":", out);
    json_number(out, res->step_ms_p99);
    fputs("},\"flops_per_image\":", out);
    json_number(out, res->flops_per_image);
    fputs(",\"fwd_macs_per_image\":", out);
    json_number(out, res->fwd_macs_per_image);
    fputs(",\"achieved_tflops\":", out);
    json_number(out, res->achieved_tflops);
    fputs(",\"peak_fraction\":null,\"final_loss\":", out);
    json_number(out, res->final_loss);
    fputs(",\"loss_first\":", out);
    json_number(out, res->loss_first);
    fprintf(out, ",\"params\":%zu,\"config\":{\"width\":%d,\"blocks\":[", res->params,
            opts->cfg.width);
    for (i = 0; i < opts->cfg.nstages; i++)
        fprintf(out, "%s%d", i ? "," : "", opts->cfg.blocks[i]);
    fprintf(out, "],\"resolution\":%d,\"classes\":%d},\"data\":", opts->cfg.resolution,
            opts->cfg.classes);
    json_string(out, opts->data_dir != NULL ? opts->data_dir : "synthetic");
    fputs("}\n", out);
}

void aicp_tb_report_human(FILE *out, const struct aicp_tb_opts *opts,
                          const struct aicp_tb_result *res)
{
    fprintf(out,
            "%s on %s (%s), batch %d, %d timed steps after %d warm-up, %d threads\n"
            "step time ms: p50 %.2f  p90 %.2f  p99 %.2f; loss %.4f -> %.4f; %.3f TFLOPS\n",
            opts->model, opts->device, opts->precision, opts->cfg.batch, opts->steps,
            opts->warmup, opts->threads, res->step_ms_p50, res->step_ms_p90, res->step_ms_p99,
            res->loss_first, res->final_loss, res->achieved_tflops);
    fprintf(out, "Total images/sec = %.2f\n", res->images_per_sec);
}
