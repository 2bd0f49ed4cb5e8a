/* Provenance stamps in ONTAP comments, shared by the ONTAP modules that
 * write a comment (ontap_volume, ontap_clone, ontap_snapshot, and the
 * destination volume of ontap_snapmirror). An object aicp creates or
 * changes carries "COMMENT [aicp site=NAME run=ID]" (just the bracket when
 * there is no comment of the user's), so that a drift report can say who
 * last changed it. The bracket is aicp's bookkeeping: comments are
 * compared without it, so a new stamp alone never makes a change. */
#ifndef AICP_ONTAP_STAMP_H
#define AICP_ONTAP_STAMP_H

#include <stddef.h>
#include <jansson.h>

#include "module.h"

/* Enough for any stamp aicp writes. */
#define AICP_STAMP_MAX 320

/* The stamp this task writes, as "[aicp site=NAME run=ID]", into buf:
 * from the provenance argument when the task gives one; else, when the
 * task gives no comment either, from the run's site and run id (ctx), as
 * before the argument existed; else "" (a plain comment is written as the
 * task says, untouched). */
void aicp_stamp_make(const struct aicp_ctx *ctx, const struct aicp_args *args, char *buf,
                     size_t cap);

/* Splits a comment ONTAP returned into the user's part (its length is
 * returned: the comment without a trailing " [aicp ...]") and the stamp's
 * content ("site=NAME run=ID") written into by (may be NULL; "" when the
 * comment carries none). A whole comment "aicp site=... run=..." (what
 * aicp wrote before stamps had brackets) is all stamp. comment NULL: 0. */
size_t aicp_stamp_split(const char *comment, char *by, size_t by_cap);

/* The comment to write: the first base_len bytes of base (may be NULL)
 * and the stamp, joined by a space. New reference. */
json_t *aicp_stamp_join(const char *base, size_t base_len, const char *stamp);

/* Sets result["last_changed_by"]: the stamp on the object whose comment
 * this is ("site=NAME run=ID"), or null when it carries none. result NULL:
 * nothing. */
void aicp_stamp_report(json_t *result, const char *comment);

#endif
