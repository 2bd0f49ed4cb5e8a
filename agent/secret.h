/* The secret values of one run, and the masking of them wherever text
 * leaves aicp: terminal output, --diff, the JSON report, error messages.
 *
 * Values are registered as they become known: plaintext that came out of a
 * vault, the rendered values of arguments a module marks secret, and the
 * arguments of no_log tasks. Masking is by value, so a secret is caught
 * however it travelled (templated into a message, echoed by a command).
 * Values shorter than AICP_SECRET_MIN are not registered: masking "yes" or
 * "22" everywhere would only garble output.
 *
 * Thread-safe: workers register while the output masks. */
#ifndef AICP_SECRET_H
#define AICP_SECRET_H

#include <stddef.h>
#include <jansson.h>

struct aicp_buf;

#define AICP_SECRET_MIN 3
#define AICP_SECRET_MASK "********"

struct aicp_secrets;

int aicp_secrets_new(struct aicp_secrets **out);
/* Wipes every value. NULL is fine. */
void aicp_secrets_free(struct aicp_secrets *s);

/* Registers a value (copied). Returns 0, or AICP_ENOMEM. s may be NULL. */
int aicp_secrets_add(struct aicp_secrets *s, const char *value, size_t len);
/* Registers every string (and number, as text) inside v, keys excepted. */
int aicp_secrets_add_json(struct aicp_secrets *s, const json_t *v);

/* Number of registered values. */
size_t aicp_secrets_count(const struct aicp_secrets *s);

/* 1 when text contains a registered value. */
int aicp_secrets_found(const struct aicp_secrets *s, const char *text, size_t len);

/* Returns a malloc'd copy of text with every registered value replaced by
 * AICP_SECRET_MASK (longest values first), or NULL on allocation failure.
 * s may be NULL (a plain copy). */
char *aicp_secrets_mask(const struct aicp_secrets *s, const char *text);
/* Masks b in place. */
int aicp_secrets_mask_buf(const struct aicp_secrets *s, struct aicp_buf *b);
/* A deep copy of v with every string (object keys too) masked, and every
 * list of strings that hold a secret only together (concatenated, or one
 * per line: `pw | list`, a key's lines) replaced by AICP_SECRET_MASK. New
 * reference; NULL on allocation failure. */
json_t *aicp_secrets_mask_json(const struct aicp_secrets *s, const json_t *v);

/* Makes jansson wipe every block it frees. Called once by main() before
 * any JSON is made, so that plaintext held in json_t strings does not stay
 * in freed memory. */
void aicp_secrets_wipe_json_memory(void);

#endif
