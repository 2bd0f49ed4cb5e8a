/* Input batches for aicp-trainbench: synthetic ImageNet-shaped images
 * whose content depends on their label (so that training visibly learns),
 * or real images read from a directory of .tbr record files.
 *
 * A .tbr file is a 16-byte header, the 8 bytes "AICPTBR1", height and
 * width as little-endian uint16, and 4 zero bytes; then any number of
 * records of a little-endian uint16 label followed by height*width*3
 * bytes of RGB pixels, row by row. Every image is centre-cropped to a
 * square and resized bilinearly to the model's resolution, then
 * normalised with the ImageNet channel means and deviations. */
#ifndef AICP_TB_DATA_H
#define AICP_TB_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "tb_util.h"

#define AICP_TB_RECORD_MAGIC "AICPTBR1"
#define AICP_TB_RECORD_HEADER 16

/* Fills x [batch][res][res][3] and labels for the given step; the same
 * (seed, step) gives the same batch. */
void aicp_tb_data_synthetic(float *x, int *labels, int batch, int res, int classes,
                            uint64_t seed, long step);

struct aicp_tb_records;

/* Opens every *.tbr file in dir (in name order) and checks all of it:
 * headers, whole records, labels below classes. Errors name the file and,
 * for a bad record, its index from 0: AICP_TB_EIO (cannot read),
 * AICP_TB_EINVAL (malformed). */
int aicp_tb_records_open(struct aicp_tb_records **out, const char *dir, int classes,
                         struct aicp_tb_err *err);
void aicp_tb_records_free(struct aicp_tb_records *r);
size_t aicp_tb_records_count(const struct aicp_tb_records *r);

/* Fills a batch with records first, first+1, ... (wrapping round). */
int aicp_tb_records_fill(struct aicp_tb_records *r, size_t first, int batch, int res, float *x,
                         int *labels, struct aicp_tb_err *err);

#endif
