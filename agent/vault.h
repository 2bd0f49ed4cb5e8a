/* ansible-vault compatible encryption (format 1.1 and 1.2, AES256) and the
 * keyring of vault passwords a command was given.
 *
 * The format, byte for byte as ansible-vault writes it:
 *   $ANSIBLE_VAULT;1.1;AES256            (or 1.2;AES256;<label>)
 *   hex( hex(salt) "\n" hex(hmac) "\n" hex(ciphertext) ), 80 columns
 * with a 32-byte random salt, PBKDF2-HMAC-SHA256 (10000 iterations, 80
 * bytes: AES-256 key, HMAC-SHA256 key, 16-byte initial counter), PKCS#7
 * padding then AES-256-CTR, and HMAC-SHA256 over the ciphertext, checked in
 * constant time before anything is decrypted. All crypto is OpenSSL's.
 *
 * Every buffer that holds a password or plaintext is wiped when freed. */
#ifndef AICP_VAULT_H
#define AICP_VAULT_H

#include <stddef.h>

struct aicp_err;

/* The passwords a command was given: --vault-password-file F,
 * --vault-id [label@]F (several), a prompt, AICP_VAULT_PASSWORD_FILE. */
struct aicp_vault;

int aicp_vault_new(struct aicp_vault **out);
/* Wipes every password. NULL is fine. */
void aicp_vault_free(struct aicp_vault *v);

/* Adds a password under label (NULL or "" means "default"). The bytes are
 * copied; the caller wipes its own copy. */
int aicp_vault_add_password(struct aicp_vault *v, const char *label, const char *pw, size_t len,
                            struct aicp_err *err);

/* Adds the password a source names, as Ansible reads it:
 *   "prompt"            asks on the terminal (echo off); AICP_EUSAGE when
 *                       there is no terminal
 *   an executable file  run; its stdout is the password. argv is the file
 *                       only, but for a client script (its name less the
 *                       extension ends in "-client", e.g. my-client.sh),
 *                       which gets "--vault-id LABEL" when label is given
 *                       (Ansible's ClientScriptVaultSecret); its exit
 *                       status 2 means it knows no password for LABEL
 *   any other file      its contents
 * stripped as ansible-vault strips them: a file's contents of surrounding
 * whitespace then "\r\n" characters, a script's stdout of surrounding
 * "\r\n" characters. An empty password is an error naming the source.
 * label may be NULL. "prompt_ask_vault_pass" prompts as --ask-vault-pass
 * does ("Vault password: "). */
int aicp_vault_add_source(struct aicp_vault *v, const char *label, const char *source,
                          struct aicp_err *err);

/* Parses one --vault-id argument "[label@]source" and adds it. */
int aicp_vault_add_id(struct aicp_vault *v, const char *id, struct aicp_err *err);

/* Asks on the terminal (echo off) for a password stored under label; with
 * confirm, asks twice ("Passwords do not match"). The answer is stripped of
 * surrounding whitespace as Ansible does. AICP_EUSAGE without a terminal. */
int aicp_vault_add_prompt(struct aicp_vault *v, const char *label, const char *prompt,
                          const char *confirm, struct aicp_err *err);

/* The password file the environment names: $AICP_VAULT_PASSWORD_FILE, else
 * $ANSIBLE_VAULT_PASSWORD_FILE; NULL when neither is set. */
const char *aicp_vault_env_file(void);

/* Adds the password of aicp_vault_env_file(), when there is one, under
 * "default". */
int aicp_vault_add_default_sources(struct aicp_vault *v, struct aicp_err *err);

/* The vault options of `aicp run` and `aicp inventory`: ids are
 * --vault-id values ("[label@]source"), files --vault-password-file paths
 * (never parsed for a label: a path may hold '@'), ask --ask-vault-pass.
 * The file aicp_vault_env_file() names is added too, with the options or
 * without them, as Ansible adds it: ids, files, that file, the prompt. */
int aicp_vault_add_cli(struct aicp_vault *v, const char *const *ids, size_t nids,
                       const char *const *files, size_t nfiles, int ask, struct aicp_err *err);

/* Number of passwords held. */
int aicp_vault_count(const struct aicp_vault *v);

/* The label of password i (0-based, in the order added), borrowed; NULL
 * when out of range. */
const char *aicp_vault_label(const struct aicp_vault *v, int i);

/* The index of the password that encrypts for label, as ansible-vault
 * chooses it (label NULL: the only one held), or a negative AICP_EUSAGE
 * with Ansible's message (none held, several and none named, no match). */
int aicp_vault_pick(const struct aicp_vault *v, const char *label, struct aicp_err *err);

/* 1 when text (after leading whitespace) starts with "$ANSIBLE_VAULT;". */
int aicp_vault_is_vaulted(const char *text, size_t len);

/* Decrypts a vault text (header + body; surrounding whitespace and line
 * breaks are ignored, as in a YAML block scalar). The password whose label
 * matches a 1.2 header is tried first, then every other one.
 * *out is NUL-terminated (not counted in *outlen); free it with
 * aicp_free_secret. Errors (nothing of the plaintext ever in them) are all
 * AICP_EAUTH, so that a damaged or forged vault fails as a wrong password
 * does (exit 1, as ansible-vault exits), not as invalid input (65):
 *   not a vault, unknown version/cipher, bad hex, bad padding, no password
 *   given, or none of them opens it ("Decryption failed (no vault secrets
 *   were found that could decrypt)") */
int aicp_vault_decrypt(char **out, size_t *outlen, const struct aicp_vault *v, const char *text,
                       size_t len, struct aicp_err *err);

/* aicp_vault_decrypt, naming the text's origin (a file name, or NULL) in
 * errors as ansible does (" on NAME"), and setting *used_label (borrowed
 * from v; used_label may be NULL) to the label of the password that opened
 * it. */
int aicp_vault_decrypt_named(char **out, size_t *outlen, const char **used_label,
                             const struct aicp_vault *v, const char *text, size_t len,
                             const char *name, struct aicp_err *err);

/* Encrypts with the password of label (NULL: the only password held; an
 * error when there are several and none is named). Label "default" or NULL
 * writes a 1.1 header, another label a 1.2 header with the label.
 * *out is the full vault text ending in "\n"; plain malloc'd. Plaintext
 * that is already a vault is AICP_EINVAL ("input is already encrypted"). */
int aicp_vault_encrypt(char **out, size_t *outlen, const struct aicp_vault *v, const char *label,
                       const void *plain, size_t len, struct aicp_err *err);

/* Decrypts path in place of reading it when it is vaulted: *out is the
 * plaintext (or the file as it is when it is not a vault), *vaulted says
 * which (set to 1 before decrypting, so also on a failure to decrypt).
 * Free *out with aicp_free_secret. v may be NULL (a vaulted file is then
 * AICP_EAUTH naming path). */
int aicp_vault_read_file(char **out, size_t *len, int *vaulted, const struct aicp_vault *v,
                         const char *path, struct aicp_err *err);

/* `aicp vault encrypt|decrypt|view|rekey|encrypt_string ...`; argv[0] is
 * "vault". Returns the process exit status. */
int aicp_vault_main(int argc, char **argv);

#endif
