/* Synthetic batches and the .tbr record reader of aicp-trainbench (the
 * format is described in tb_data.h and docs/trainbench.md). Records are
 * validated completely when the directory is opened, so a bad file stops
 * the run before any timing starts, with the file and record named. */
/* pread, O_CLOEXEC, clock_gettime, open_memstream: POSIX beyond C11. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "tb_data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const float img_mean[3] = {0.485f, 0.456f, 0.406f};
static const float img_std[3] = {0.229f, 0.224f, 0.225f};

struct tb_record_file {
    char *path;
    int fd;
    int h, w;
    size_t count;
    size_t first; /* global index of its first record */
};

struct aicp_tb_records {
    struct tb_record_file *files;
    size_t nfiles;
    size_t total;
    int classes;
    unsigned char *buf;
    size_t bufsize;
};

void aicp_tb_data_synthetic(float *x, int *labels, int batch, int res, int classes,
                            uint64_t seed, long step)
{
    struct aicp_tb_rng rng;
    int i, y, xx, ch;

    aicp_tb_rng_seed(&rng, seed ^ (0xA5A5A5A5ull + (uint64_t)step * 0x9E3779B97F4A7C15ull));
    for (i = 0; i < batch; i++) {
        struct aicp_tb_rng crng;
        float color[3], fx, fy, phase;
        float *img = x + (size_t)i * res * res * 3;
        int label = (int)aicp_tb_rng_below(&rng, (uint32_t)classes);

        labels[i] = label;
        /* Each class has its own tint and stripe direction. */
        aicp_tb_rng_seed(&crng, seed * 31u + (uint64_t)label + 1u);
        for (ch = 0; ch < 3; ch++)
            color[ch] = 2.0f * aicp_tb_rng_uniform(&crng) - 1.0f;
        fx = 6.2831853f * (aicp_tb_rng_uniform(&crng) * 4.0f - 2.0f) / (float)res;
        fy = 6.2831853f * (aicp_tb_rng_uniform(&crng) * 4.0f - 2.0f) / (float)res;
        phase = 6.2831853f * aicp_tb_rng_uniform(&crng);
        for (y = 0; y < res; y++) {
            for (xx = 0; xx < res; xx++) {
                float stripe = 0.5f * sinf(fx * (float)xx + fy * (float)y + phase);
                float *p = img + ((size_t)y * res + xx) * 3;

                for (ch = 0; ch < 3; ch++)
                    p[ch] = color[ch] + stripe + 0.5f * (aicp_tb_rng_uniform(&rng) - 0.5f);
            }
        }
    }
}

static int name_is_tbr(const char *name)
{
    size_t n = strlen(name);

    return n > 4 && strcmp(name + n - 4, ".tbr") == 0 && name[0] != '.';
}

static int cmp_files(const void *a, const void *b)
{
    const struct tb_record_file *fa = a, *fb = b;

    return strcmp(fa->path, fb->path);
}

static int read_full(int fd, void *buf, size_t n, off_t off)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

static size_t record_size(const struct tb_record_file *f)
{
    return 2 + (size_t)f->h * (size_t)f->w * 3;
}

/* Reads and checks one file's header, length and labels. */
static int check_file(struct tb_record_file *f, int classes, struct aicp_tb_err *err)
{
    unsigned char hdr[AICP_TB_RECORD_HEADER], lab[2];
    struct stat st;
    size_t rsize, body, i;

    f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        return aicp_tb_err_set(err, AICP_TB_EIO, "%s: cannot open: %s", f->path,
                               strerror(errno));
    if (fstat(f->fd, &st) != 0)
        return aicp_tb_err_set(err, AICP_TB_EIO, "%s: cannot stat: %s", f->path,
                               strerror(errno));
    if (st.st_size < AICP_TB_RECORD_HEADER)
        return aicp_tb_err_set(err, AICP_TB_EINVAL,
                               "%s: %lld bytes is too short for the %d-byte header", f->path,
                               (long long)st.st_size, AICP_TB_RECORD_HEADER);
    if (read_full(f->fd, hdr, sizeof(hdr), 0) != 0)
        return aicp_tb_err_set(err, AICP_TB_EIO, "%s: cannot read the header", f->path);
    if (memcmp(hdr, AICP_TB_RECORD_MAGIC, 8) != 0)
        return aicp_tb_err_set(err, AICP_TB_EINVAL,
                               "%s: not a trainbench record file (the header does not start "
                               "with " AICP_TB_RECORD_MAGIC ")",
                               f->path);
    f->h = hdr[8] | (hdr[9] << 8);
    f->w = hdr[10] | (hdr[11] << 8);
    if (f->h == 0 || f->w == 0)
        return aicp_tb_err_set(err, AICP_TB_EINVAL, "%s: image size %dx%d in the header is empty",
                               f->path, f->w, f->h);
    if (hdr[12] | hdr[13] | hdr[14] | hdr[15])
        return aicp_tb_err_set(err, AICP_TB_EINVAL,
                               "%s: header bytes 12-15 must be zero (unknown format version)",
                               f->path);
    rsize = record_size(f);
    body = (size_t)st.st_size - AICP_TB_RECORD_HEADER;
    f->count = body / rsize;
    if (body % rsize != 0)
        return aicp_tb_err_set(err, AICP_TB_EINVAL,
                               "%s: record %zu is truncated: %zu of %zu bytes (label + %dx%d "
                               "RGB image)",
                               f->path, f->count, body % rsize, rsize, f->w, f->h);
    if (f->count == 0)
        return aicp_tb_err_set(err, AICP_TB_EINVAL, "%s: holds no records", f->path);
    for (i = 0; i < f->count; i++) {
        int label;

        if (read_full(f->fd, lab, 2, (off_t)(AICP_TB_RECORD_HEADER + i * rsize)) != 0)
            return aicp_tb_err_set(err, AICP_TB_EIO, "%s: record %zu: cannot read", f->path, i);
        label = lab[0] | (lab[1] << 8);
        if (label >= classes)
            return aicp_tb_err_set(err, AICP_TB_EINVAL,
                                   "%s: record %zu: label %d is out of range for %d classes",
                                   f->path, i, label, classes);
    }
    return 0;
}

int aicp_tb_records_open(struct aicp_tb_records **out, const char *dir, int classes,
                         struct aicp_tb_err *err)
{
    struct aicp_tb_records *r;
    DIR *d = NULL;
    struct dirent *de;
    size_t cap = 0, i;
    int rc = 0;

    *out = NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory");
    r->classes = classes;
    d = opendir(dir);
    if (d == NULL) {
        rc = aicp_tb_err_set(err, AICP_TB_EIO, "--data %s: cannot open directory: %s", dir,
                             strerror(errno));
        goto out;
    }
    while ((de = readdir(d)) != NULL) {
        struct tb_record_file *f;
        size_t plen;

        if (!name_is_tbr(de->d_name))
            continue;
        if (r->nfiles == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            void *p = realloc(r->files, ncap * sizeof(*r->files));

            if (p == NULL) {
                rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory");
                goto out;
            }
            r->files = p;
            cap = ncap;
        }
        f = &r->files[r->nfiles];
        memset(f, 0, sizeof(*f));
        f->fd = -1;
        plen = strlen(dir) + strlen(de->d_name) + 2;
        f->path = malloc(plen);
        if (f->path == NULL) {
            rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(f->path, plen, "%s/%s", dir, de->d_name);
        r->nfiles++;
    }
    if (r->nfiles == 0) {
        rc = aicp_tb_err_set(err, AICP_TB_EINVAL, "--data %s: no .tbr record files found", dir);
        goto out;
    }
    qsort(r->files, r->nfiles, sizeof(*r->files), cmp_files);
    for (i = 0; i < r->nfiles; i++) {
        struct tb_record_file *f = &r->files[i];

        if ((rc = check_file(f, classes, err)) != 0)
            goto out;
        f->first = r->total;
        r->total += f->count;
        if (record_size(f) > r->bufsize)
            r->bufsize = record_size(f);
    }
    r->buf = malloc(r->bufsize);
    if (r->buf == NULL)
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for a record buffer");
out:
    if (d != NULL)
        closedir(d);
    if (rc != 0) {
        aicp_tb_records_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void aicp_tb_records_free(struct aicp_tb_records *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->nfiles; i++) {
        if (r->files[i].fd >= 0)
            close(r->files[i].fd);
        free(r->files[i].path);
    }
    free(r->files);
    free(r->buf);
    free(r);
}

size_t aicp_tb_records_count(const struct aicp_tb_records *r)
{
    return r->total;
}

/* Centre square crop of an h x w RGB image, resized bilinearly to res x res
 * (sampling at pixel centres), normalised per channel. */
static void decode_image(const unsigned char *px, int h, int w, int res, float *dst)
{
    int side = h < w ? h : w;
    int y0 = (h - side) / 2, x0 = (w - side) / 2;
    float scale = (float)side / (float)res;
    int y, x, ch;

    for (y = 0; y < res; y++) {
        float sy = ((float)y + 0.5f) * scale - 0.5f;
        int iy0, iy1;
        float fy;

        if (sy < 0.0f)
            sy = 0.0f;
        iy0 = (int)sy;
        if (iy0 > side - 1)
            iy0 = side - 1;
        iy1 = iy0 + 1 < side ? iy0 + 1 : side - 1;
        fy = sy - (float)iy0;
        for (x = 0; x < res; x++) {
            float sx = ((float)x + 0.5f) * scale - 0.5f;
            int ix0, ix1;
            float fx;

            if (sx < 0.0f)
                sx = 0.0f;
            ix0 = (int)sx;
            if (ix0 > side - 1)
                ix0 = side - 1;
            ix1 = ix0 + 1 < side ? ix0 + 1 : side - 1;
            fx = sx - (float)ix0;
            for (ch = 0; ch < 3; ch++) {
                const unsigned char *r0 = px + ((size_t)(y0 + iy0) * w + x0) * 3;
                const unsigned char *r1 = px + ((size_t)(y0 + iy1) * w + x0) * 3;
                float a = r0[ix0 * 3 + ch] * (1.0f - fx) + r0[ix1 * 3 + ch] * fx;
                float b = r1[ix0 * 3 + ch] * (1.0f - fx) + r1[ix1 * 3 + ch] * fx;
                float v = (a * (1.0f - fy) + b * fy) / 255.0f;

                dst[((size_t)y * res + x) * 3 + ch] = (v - img_mean[ch]) / img_std[ch];
            }
        }
    }
}

int aicp_tb_records_fill(struct aicp_tb_records *r, size_t first, int batch, int res, float *x,
                         int *labels, struct aicp_tb_err *err)
{
    int i;

    for (i = 0; i < batch; i++) {
        size_t idx = (first + (size_t)i) % r->total, lo = 0, hi = r->nfiles - 1, rec;
        const struct tb_record_file *f;

        while (lo < hi) {
            size_t mid = (lo + hi + 1) / 2;

            if (r->files[mid].first <= idx)
                lo = mid;
            else
                hi = mid - 1;
        }
        f = &r->files[lo];
        rec = idx - f->first;
        if (read_full(f->fd, r->buf, record_size(f),
                      (off_t)(AICP_TB_RECORD_HEADER + rec * record_size(f))) != 0)
            return aicp_tb_err_set(err, AICP_TB_EIO, "%s: record %zu: cannot read", f->path,
                                   rec);
        labels[i] = r->buf[0] | (r->buf[1] << 8);
        /* Checked at open, but the file may have changed since. */
        if (labels[i] >= r->classes)
            return aicp_tb_err_set(err, AICP_TB_EINVAL,
                                   "%s: record %zu: label %d is out of range for %d classes",
                                   f->path, rec, labels[i], r->classes);
        decode_image(r->buf + 2, f->h, f->w, res, x + (size_t)i * res * res * 3);
    }
    return 0;
}
