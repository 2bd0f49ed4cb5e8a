/* ansible-vault compatible encryption and the keyring of vault passwords.
 * Files written here and by ansible-vault (format 1.1 and 1.2, AES256) open
 * in either: the envelope (header, 80-column hex lines, trailing newline),
 * the double hex layering, PBKDF2-HMAC-SHA256 key derivation, PKCS#7 then
 * AES-256-CTR, and HMAC-SHA256 over the ciphertext follow ansible's
 * parsing/vault/__init__.py, and so do its error messages. Every crypto
 * primitive is OpenSSL's. Passwords, derived keys and plaintext are wiped
 * (OPENSSL_cleanse) before their memory is freed, and no error message ever
 * contains any of them. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "err.h"
#include "util.h"
#include "vault.h"

extern char **environ;

#define VAULT_HEADER "$ANSIBLE_VAULT"
#define VAULT_SALT_LEN 32
#define VAULT_KEY_LEN 32
#define VAULT_IV_LEN 16
#define VAULT_HMAC_LEN 32
#define VAULT_ITERATIONS 10000
#define VAULT_WIDTH 80
#define VAULT_DEFAULT_ID "default"
/* A text that does not open as a vault: not one, damaged, or forged. The
 * code of a wrong password too, so that a tampered vault fails as a wrong
 * password does (exit 1, as ansible-vault), not as bad YAML input (65). */
#define VAULT_EBAD AICP_EAUTH

struct vault_entry {
    char *label;
    unsigned char *pw;
    size_t len;
};

struct aicp_vault {
    struct vault_entry *e;
    int n;
    int cap;
};

/* The envelope of a vault text, its body decoded down to the three parts. */
struct vault_parsed {
    char label[128];
    unsigned char *salt;
    size_t salt_len;
    unsigned char hmac[VAULT_HMAC_LEN];
    int hmac_ok_len; /* 0 when the stored HMAC is not 32 bytes: no key matches */
    unsigned char *ct;
    size_t ct_len;
};

int aicp_vault_new(struct aicp_vault **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : AICP_ENOMEM;
}

void aicp_vault_free(struct aicp_vault *v)
{
    if (v == NULL)
        return;
    for (int i = 0; i < v->n; i++) {
        OPENSSL_cleanse(v->e[i].pw, v->e[i].len);
        free(v->e[i].pw);
        free(v->e[i].label);
    }
    free(v->e);
    free(v);
}

int aicp_vault_count(const struct aicp_vault *v)
{
    return v ? v->n : 0;
}

const char *aicp_vault_label(const struct aicp_vault *v, int i)
{
    return v && i >= 0 && i < v->n ? v->e[i].label : NULL;
}

/* Ansible refuses ';' (the header's separator); a line break or blank
 * would also corrupt the header. */
static int label_check(const char *label, struct aicp_err *err)
{
    for (const char *p = label; *p; p++) {
        if (*p == ';')
            return aicp_err_set(err, AICP_EUSAGE,
                                "'%s' is not a valid vault id. The character ';' is not allowed in "
                                "vault ids",
                                label);
        if ((unsigned char)*p <= ' ')
            return aicp_err_set(err, AICP_EUSAGE,
                                "vault id '%s': blanks and control characters are not allowed",
                                label);
    }
    return 0;
}

int aicp_vault_add_password(struct aicp_vault *v, const char *label, const char *pw, size_t len,
                            struct aicp_err *err)
{
    int rc;
    if (label == NULL || *label == '\0')
        label = VAULT_DEFAULT_ID;
    if ((rc = label_check(label, err)) != 0)
        return rc;
    if (len == 0)
        return aicp_err_set(err, AICP_EINVAL, "Invalid vault password was provided");
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 4;
        struct vault_entry *e = realloc(v->e, (size_t)cap * sizeof(*e));
        if (e == NULL)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        v->e = e;
        v->cap = cap;
    }
    struct vault_entry *ent = &v->e[v->n];
    ent->label = aicp_strdup(label);
    ent->pw = malloc(len);
    if (ent->label == NULL || ent->pw == NULL) {
        free(ent->label);
        free(ent->pw);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    memcpy(ent->pw, pw, len);
    ent->len = len;
    v->n++;
    return 0;
}

static int is_pyspace(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int is_crlf(unsigned char c)
{
    return c == '\r' || c == '\n';
}

/* Trims p and len at both ends by the class `drop` (Python's bytes.strip). */
static void strip_ends(const char **p, size_t *len, int (*drop)(unsigned char))
{
    while (*len > 0 && drop((unsigned char)(*p)[0])) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && drop((unsigned char)(*p)[*len - 1]))
        (*len)--;
}

/* Reads a line from the terminal with echo off. The terminal, not stdin,
 * because stdin may be the data being encrypted. */
static int prompt_line(struct aicp_buf *out, const char *prompt, const char *label,
                       struct aicp_err *err)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    struct termios old, noecho;
    int restore = 0, rc = 0, got = 0;
    if (fd < 0 || !isatty(fd)) {
        rc = aicp_err_set(err, AICP_EUSAGE,
                          "cannot prompt for the vault password (%s): no terminal; use "
                          "--vault-password-file or --vault-id",
                          label);
        goto out;
    }
    if (tcgetattr(fd, &old) == 0) {
        noecho = old;
        noecho.c_lflag &= (tcflag_t)~ECHO;
        noecho.c_lflag |= ECHONL;
        restore = tcsetattr(fd, TCSAFLUSH, &noecho) == 0;
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        rc = aicp_err_set(err, AICP_EIO, "prompt for (%s): %s", label, strerror(errno));
        goto out;
    }
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got = 1;
        if (c == '\n')
            break;
        if (aicp_buf_append(out, &c, 1) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (!got)
        rc = aicp_err_set(err, AICP_EAUTH, "EOFError (ctrl-d) on prompt for (%s)", label);
out:
    if (restore)
        (void)tcsetattr(fd, TCSAFLUSH, &old);
    if (fd >= 0)
        close(fd);
    return rc;
}

int aicp_vault_add_prompt(struct aicp_vault *v, const char *label, const char *prompt,
                          const char *confirm, struct aicp_err *err)
{
    struct aicp_buf a = AICP_BUF_INIT, b = AICP_BUF_INIT;
    const char *id = label && *label ? label : VAULT_DEFAULT_ID;
    const char *p;
    size_t plen;
    int rc;
    if ((rc = label_check(id, err)) != 0)
        goto out;
    if ((rc = prompt_line(&a, prompt, id, err)) != 0)
        goto out;
    if (confirm != NULL && (rc = prompt_line(&b, confirm, id, err)) != 0)
        goto out;
    p = a.data ? a.data : "";
    plen = a.len;
    strip_ends(&p, &plen, is_pyspace);
    if (confirm != NULL) {
        const char *q = b.data ? b.data : "";
        size_t qlen = b.len;
        strip_ends(&q, &qlen, is_pyspace);
        if (plen != qlen || CRYPTO_memcmp(p, q, plen) != 0) {
            rc = aicp_err_set(err, AICP_EUSAGE, "Passwords do not match");
            goto out;
        }
    }
    if (plen == 0) {
        rc = aicp_err_set(err, AICP_EINVAL, "Invalid vault password was provided");
        goto out;
    }
    rc = aicp_vault_add_password(v, id, p, plen, err);
out:
    aicp_buf_free_secret(&a);
    aicp_buf_free_secret(&b);
    return rc;
}

/* Ansible's script_is_client: the file name less its extension (as
 * Python's os.path.splitext takes it off) ends in "-client". */
static int script_is_client(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    const char *p = base;
    while (*p == '.')
        p++; /* leading dots do not start an extension */
    const char *dot = strrchr(p, '.');
    size_t end = dot != NULL ? (size_t)(dot - path) : strlen(path);
    return end >= 7 && memcmp(path + end - 7, "-client", 7) == 0;
}

/* Ansible's ClientScriptVaultSecret: exit 2 means the script knows no
 * password for the id. */
#define VAULT_CLIENT_UNKNOWN_ID 2

/* Runs an executable password file as ansible does: no shell, stdin and
 * stderr inherited (a script may prompt), stdout captured. A plain script
 * gets no arguments; a client script (script_is_client) gets
 * "--vault-id ID" when the source had one (id non-NULL). */
static int run_script(struct aicp_buf *out, const char *path, const char *id,
                      struct aicp_err *err)
{
    int fds[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int fa_init = 0, rc = 0, status = 0;
    pid_t pid = -1;
    int client = script_is_client(path);
    const char *kind = client ? "vault password client script" : "vault password script";
    char *argv[4] = {(char *)path, NULL, NULL, NULL};
    if (client && id != NULL) {
        argv[1] = (char *)"--vault-id";
        argv[2] = (char *)id;
    }
    if (pipe(fds) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "vault password script %s: pipe: %s", path,
                          strerror(errno));
        goto out;
    }
    if (posix_spawn_file_actions_init(&fa) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    fa_init = 1;
    if (posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO) != 0 ||
        posix_spawn_file_actions_addclose(&fa, fds[0]) != 0 ||
        posix_spawn_file_actions_addclose(&fa, fds[1]) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    int e = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    if (e != 0) {
        pid = -1;
        rc = aicp_err_set(err, AICP_EIO,
                          "Problem running %s %s (%s). If this is not a script, remove the "
                          "executable bit from the file.",
                          kind, path, strerror(e));
        goto out;
    }
    close(fds[1]);
    fds[1] = -1;
    for (;;) {
        char chunk[512];
        ssize_t n = read(fds[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        int arc = aicp_buf_append(out, chunk, (size_t)n);
        OPENSSL_cleanse(chunk, sizeof(chunk));
        if (arc != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            break;
        }
    }
    close(fds[0]);
    fds[0] = -1;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = -1;
            break;
        }
    }
    pid = -1;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
    if (rc == 0 && client && code == VAULT_CLIENT_UNKNOWN_ID)
        rc = aicp_err_set(err, AICP_EIO,
                          "Vault password client script %s did not find a secret for vault-id=%s",
                          path, id != NULL ? id : "None");
    else if (rc == 0 && client && code != 0)
        rc = aicp_err_set(err, AICP_EIO,
                          "Vault password client script %s returned non-zero (%d) when getting "
                          "secret for vault-id=%s",
                          path, code, id != NULL ? id : "None");
    else if (rc == 0 && code != 0)
        rc = aicp_err_set(err, AICP_EIO, "Vault password script %s returned non-zero (%d)", path,
                          code);
out:
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    return rc;
}

int aicp_vault_add_source(struct aicp_vault *v, const char *label, const char *source,
                          struct aicp_err *err)
{
    struct aicp_buf buf = AICP_BUF_INIT;
    const char *id = label && *label ? label : VAULT_DEFAULT_ID;
    const char *p;
    size_t plen;
    struct stat st;
    int script, rc;
    char prompt[200];

    if (strcmp(source, "prompt") == 0 || strcmp(source, "prompt_ask_vault_pass") == 0) {
        /* --ask-vault-pass keeps the old prompt that tools match on. */
        if (strcmp(source, "prompt") == 0)
            snprintf(prompt, sizeof(prompt), "Vault password (%s): ", id);
        else
            snprintf(prompt, sizeof(prompt), "Vault password: ");
        return aicp_vault_add_prompt(v, id, prompt, NULL, err);
    }
    if ((rc = label_check(id, err)) != 0)
        return rc;
    if (stat(source, &st) != 0) {
        if (errno == ENOENT)
            return aicp_err_set(err, AICP_EIO, "The vault password file %s was not found", source);
        return aicp_err_set(err, AICP_EIO, "Could not read vault password file %s: %s", source,
                            strerror(errno));
    }
    script = S_ISREG(st.st_mode) && (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0;
    if (script) {
        if ((rc = run_script(&buf, source, label && *label ? label : NULL, err)) != 0)
            goto out;
    } else {
        char *text = NULL;
        size_t len = 0;
        int fd = open(source, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = aicp_err_set(err, AICP_EIO, "Could not read vault password file %s: %s", source,
                              strerror(errno));
            goto out;
        }
        close(fd);
        if ((rc = aicp_read_file(&text, &len, source, err)) != 0) {
            rc = aicp_err_set(err, AICP_EIO, "Could not read vault password file %s: %s", source,
                              strerror(errno ? errno : EIO));
            goto out;
        }
        rc = aicp_buf_append(&buf, text, len);
        OPENSSL_cleanse(text, len);
        free(text);
        if (rc != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    }
    /* As ansible: a file's contents lose all surrounding whitespace, then
     * CR/LF; a script's stdout loses only surrounding CR/LF. */
    p = buf.data ? buf.data : "";
    plen = buf.len;
    if (!script)
        strip_ends(&p, &plen, is_pyspace);
    strip_ends(&p, &plen, is_crlf);
    if (plen == 0) {
        rc = aicp_err_set(err, AICP_EINVAL, "Invalid vault password was provided from %s (%s)",
                          script ? "script" : "file", source);
        goto out;
    }
    rc = aicp_vault_add_password(v, id, p, plen, err);
out:
    aicp_buf_free_secret(&buf);
    return rc;
}

int aicp_vault_add_id(struct aicp_vault *v, const char *id, struct aicp_err *err)
{
    const char *at = strchr(id, '@');
    if (at == NULL)
        return aicp_vault_add_source(v, NULL, id, err);
    char *label = aicp_strndup(id, (size_t)(at - id));
    if (label == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    int rc = aicp_vault_add_source(v, label, at + 1, err);
    free(label);
    return rc;
}

const char *aicp_vault_env_file(void)
{
    const char *f = getenv("AICP_VAULT_PASSWORD_FILE");
    if (f == NULL || *f == '\0')
        f = getenv("ANSIBLE_VAULT_PASSWORD_FILE");
    return f && *f ? f : NULL;
}

/* As ansible's CLI.setup_vault_secrets orders them: --vault-id values,
 * then --vault-password-file files and the environment's file (both
 * "default@FILE", so a client script is asked for "default"), then the
 * --ask-vault-pass prompt. The environment's file adds to the options, it
 * does not give way to them. */
int aicp_vault_add_cli(struct aicp_vault *v, const char *const *ids, size_t nids,
                       const char *const *files, size_t nfiles, int ask, struct aicp_err *err)
{
    int rc = 0;
    const char *env = aicp_vault_env_file();
    for (size_t i = 0; i < nids && rc == 0; i++)
        rc = aicp_vault_add_id(v, ids[i], err);
    for (size_t i = 0; i < nfiles && rc == 0; i++) {
        rc = aicp_vault_add_source(v, VAULT_DEFAULT_ID, files[i], err);
        if (env != NULL && strcmp(env, files[i]) == 0)
            env = NULL; /* the same file twice would only cost a second try */
    }
    if (rc == 0 && env != NULL)
        rc = aicp_vault_add_source(v, VAULT_DEFAULT_ID, env, err);
    if (rc == 0 && ask)
        rc = aicp_vault_add_source(v, NULL, "prompt_ask_vault_pass", err);
    return rc;
}

int aicp_vault_add_default_sources(struct aicp_vault *v, struct aicp_err *err)
{
    const char *f = aicp_vault_env_file();
    if (f == NULL)
        return 0;
    return aicp_vault_add_source(v, VAULT_DEFAULT_ID, f, err);
}

int aicp_vault_is_vaulted(const char *text, size_t len)
{
    size_t i = 0;
    static const char prefix[] = VAULT_HEADER ";";
    while (i < len && is_pyspace((unsigned char)text[i]))
        i++;
    return len - i >= sizeof(prefix) - 1 && memcmp(text + i, prefix, sizeof(prefix) - 1) == 0;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Python's binascii.unhexlify, with its messages, but lower case only:
 * ansible-vault writes nothing else, and a canonical encoding means no
 * altered byte of a vault can still open (an 'e' turned 'E' would). */
static int unhex(unsigned char **out, size_t *outlen, const char *s, size_t len,
                 struct aicp_err *err)
{
    *out = NULL;
    if (len % 2 != 0)
        return aicp_err_set(err, VAULT_EBAD, "Vault format unhexlify error: Odd-length string");
    unsigned char *b = malloc(len / 2 + 1);
    if (b == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i += 2) {
        int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return aicp_err_set(err, VAULT_EBAD,
                                "Vault format unhexlify error: Non-hexadecimal digit found");
        }
        b[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *out = b;
    *outlen = len / 2;
    return 0;
}

static int hex_append(struct aicp_buf *b, const unsigned char *p, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char pair[2];
    for (size_t i = 0; i < len; i++) {
        pair[0] = digits[p[i] >> 4];
        pair[1] = digits[p[i] & 15];
        if (aicp_buf_append(b, pair, 2) != 0)
            return AICP_ENOMEM;
    }
    return 0;
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static void parsed_free(struct vault_parsed *p)
{
    free(p->salt);
    free(p->ct);
}

/* Splits the envelope and decodes the body, as ansible's
 * parse_vaulttext_envelope and parse_vaulttext do. Every line is trimmed of
 * blanks, so the text of a YAML block scalar or a CRLF file reads too. */
static int vault_parse(struct vault_parsed *p, const char *text, size_t len, struct aicp_err *err)
{
    struct aicp_buf body = AICP_BUF_INIT;
    unsigned char *inner = NULL;
    size_t inner_len = 0, i = 0, hl;
    const char *parts[5];
    size_t plen[5];
    int nparts = 0, rc = 0;
    memset(p, 0, sizeof(*p));

    while (i < len && is_pyspace((unsigned char)text[i]))
        i++;
    const char *hdr = text + i;
    for (hl = 0; i + hl < len && !is_crlf((unsigned char)hdr[hl]); hl++)
        ;
    /* Header fields, each trimmed as Python's strip(). */
    for (size_t s = 0, k = 0; k <= hl; k++) {
        if (k == hl || hdr[k] == ';') {
            if (nparts == 5)
                break;
            parts[nparts] = hdr + s;
            plen[nparts] = k - s;
            strip_ends(&parts[nparts], &plen[nparts], is_pyspace);
            nparts++;
            s = k + 1;
        }
    }
    if (nparts < 3) {
        rc = aicp_err_set(err, VAULT_EBAD,
                          "Vault envelope format error: the header has %d "
                          "field%s, not $ANSIBLE_VAULT;VERSION;CIPHER[;ID]",
                          nparts, nparts == 1 ? "" : "s");
        goto out;
    }
    if (!((plen[1] == 3 && memcmp(parts[1], "1.1", 3) == 0) ||
          (plen[1] == 3 && memcmp(parts[1], "1.2", 3) == 0))) {
        rc = aicp_err_set(err, VAULT_EBAD,
                          "Vault envelope format error: unsupported vault "
                          "format version '%.*s' (1.1 and 1.2 are)",
                          (int)(plen[1] > 16 ? 16 : plen[1]), parts[1]);
        goto out;
    }
    if (!(plen[2] == 6 && memcmp(parts[2], "AES256", 6) == 0)) {
        rc = aicp_err_set(err, VAULT_EBAD, "%.*s cipher could not be found",
                          (int)(plen[2] > 32 ? 32 : plen[2]), parts[2]);
        goto out;
    }
    if (nparts >= 4 && plen[3] < sizeof(p->label)) {
        memcpy(p->label, parts[3], plen[3]);
        p->label[plen[3]] = '\0';
    }

    for (i = (size_t)(hdr - text) + hl; i < len;) {
        size_t e = i;
        while (e < len && !is_crlf((unsigned char)text[e]))
            e++;
        const char *line = text + i;
        size_t ll = e - i;
        while (ll > 0 && is_blank((unsigned char)line[0])) {
            line++;
            ll--;
        }
        while (ll > 0 && is_blank((unsigned char)line[ll - 1]))
            ll--;
        /* A trailing \v or \f (e.g. the file's last newline altered) is
         * whitespace to Python's strip() of the whole text. */
        if (e == len)
            while (ll > 0 && is_pyspace((unsigned char)line[ll - 1]))
                ll--;
        if (aicp_buf_append(&body, line, ll) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        i = e < len ? e + 1 : e;
    }
    if (body.len == 0) {
        rc = aicp_err_set(err, VAULT_EBAD,
                          "Vault vaulttext format error: no vault data after "
                          "the header");
        goto out;
    }
    if ((rc = unhex(&inner, &inner_len, body.data, body.len, err)) != 0)
        goto out;
    const char *in = (const char *)inner;
    const char *nl1 = memchr(in, '\n', inner_len);
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', inner_len - (size_t)(nl1 + 1 - in)) : NULL;
    if (nl2 == NULL) {
        rc = aicp_err_set(err, VAULT_EBAD,
                          "Vault vaulttext format error: expected the salt, "
                          "HMAC and ciphertext on three lines");
        goto out;
    }
    if ((rc = unhex(&p->salt, &p->salt_len, in, (size_t)(nl1 - in), err)) != 0)
        goto out;
    unsigned char *mac = NULL;
    size_t mac_len = 0;
    if ((rc = unhex(&mac, &mac_len, nl1 + 1, (size_t)(nl2 - nl1 - 1), err)) != 0)
        goto out;
    if (mac_len == VAULT_HMAC_LEN) {
        memcpy(p->hmac, mac, VAULT_HMAC_LEN);
        p->hmac_ok_len = 1;
    }
    free(mac);
    rc = unhex(&p->ct, &p->ct_len, nl2 + 1, inner_len - (size_t)(nl2 + 1 - in), err);
out:
    free(inner);
    aicp_buf_free(&body);
    if (rc != 0)
        parsed_free(p);
    return rc;
}

/* key1 (AES), key2 (HMAC), counter: the 80 bytes PBKDF2 gives, through
 * OpenSSL 3's EVP_KDF. pkcs5=1 turns off SP 800-132's lower bounds (a
 * 16-byte salt at least): ansible-vault has none, and a short salt in a
 * damaged vault must fail the HMAC check, not the derivation. */
static int derive(unsigned char dk[2 * VAULT_KEY_LEN + VAULT_IV_LEN], const unsigned char *pw,
                  size_t pwlen, const unsigned char *salt, size_t saltlen)
{
    static const unsigned char nosalt[1] = {0};
    unsigned int iter = VAULT_ITERATIONS;
    int pkcs5 = 1;
    char digest[] = "SHA256";
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "PBKDF2", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, pwlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                          (void *)(saltlen ? salt : nosalt), saltlen),
        OSSL_PARAM_construct_uint(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &pkcs5),
        OSSL_PARAM_construct_end(),
    };
    int ok = ctx != NULL &&
             EVP_KDF_derive(ctx, dk, 2 * VAULT_KEY_LEN + VAULT_IV_LEN, params) == 1;
    EVP_KDF_CTX_free(ctx); /* cleanses the password copy it holds */
    EVP_KDF_free(kdf);
    return ok ? 0 : AICP_ENOMEM;
}

/* AES-256-CTR over in (CTR: the same call encrypts and decrypts). */
static int ctr(unsigned char *out, const unsigned char *in, size_t len, const unsigned char *key,
               const unsigned char *iv)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c != NULL && EVP_EncryptInit_ex(c, EVP_aes_256_ctr(), NULL, key, iv) == 1;
    int n = 0, total = 0;
    for (size_t off = 0; ok && off < len;) {
        int chunk = len - off > (1 << 30) ? 1 << 30 : (int)(len - off);
        ok = EVP_EncryptUpdate(c, out + off, &n, in + off, chunk) == 1;
        off += (size_t)n;
        total += n;
    }
    if (ok)
        ok = EVP_EncryptFinal_ex(c, out + len, &n) == 1;
    EVP_CIPHER_CTX_free(c);
    (void)total;
    return ok ? 0 : AICP_ENOMEM;
}

static int mac(unsigned char out[VAULT_HMAC_LEN], const unsigned char *key, const unsigned char *p,
               size_t len)
{
    unsigned int mlen = 0;
    static const unsigned char empty[1] = {0};
    if (HMAC(EVP_sha256(), key, VAULT_KEY_LEN, len ? p : empty, len, out, &mlen) == NULL ||
        mlen != VAULT_HMAC_LEN)
        return AICP_ENOMEM;
    return 0;
}

/* Tries one password; 1 when its HMAC matched and *out holds the plaintext. */
static int try_password(char **out, size_t *outlen, const struct vault_entry *e,
                        const struct vault_parsed *p, struct aicp_err *err)
{
    unsigned char dk[2 * VAULT_KEY_LEN + VAULT_IV_LEN], m[VAULT_HMAC_LEN];
    unsigned char *plain = NULL;
    int rc;
    if (derive(dk, e->pw, e->len, p->salt, p->salt_len) != 0 ||
        mac(m, dk + VAULT_KEY_LEN, p->ct, p->ct_len) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "vault: key derivation failed");
        goto out;
    }
    if (!p->hmac_ok_len || CRYPTO_memcmp(m, p->hmac, VAULT_HMAC_LEN) != 0) {
        rc = 0; /* HMAC verification failed: not this password */
        goto out;
    }
    plain = malloc(p->ct_len + 16 + 1);
    if (plain == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (ctr(plain, p->ct, p->ct_len, dk, dk + 2 * VAULT_KEY_LEN) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "vault: AES-256-CTR failed");
        goto out;
    }
    /* PKCS#7. The HMAC matched, so only a forged vault gets here with bad
     * padding; say so without echoing any byte of it. */
    size_t pad = p->ct_len ? plain[p->ct_len - 1] : 0;
    int bad = p->ct_len == 0 || p->ct_len % 16 != 0 || pad == 0 || pad > 16;
    for (size_t i = 0; !bad && i < pad; i++)
        bad = plain[p->ct_len - 1 - i] != pad;
    if (bad) {
        rc = aicp_err_set(err, VAULT_EBAD, "Vault decryption error: invalid padding");
        goto out;
    }
    *outlen = p->ct_len - pad;
    plain[*outlen] = '\0';
    *out = (char *)plain;
    plain = NULL;
    rc = 1;
out:
    if (plain) {
        OPENSSL_cleanse(plain, p->ct_len + 16 + 1);
        free(plain);
    }
    OPENSSL_cleanse(dk, sizeof(dk));
    return rc;
}

int aicp_vault_decrypt_named(char **out, size_t *outlen, const char **used_label,
                             const struct aicp_vault *v, const char *text, size_t len,
                             const char *name, struct aicp_err *err)
{
    struct vault_parsed p;
    int rc = 0, idx;
    *out = NULL;
    *outlen = 0;
    if (used_label)
        *used_label = NULL;
    if (!aicp_vault_is_vaulted(text, len)) {
        if (name)
            return aicp_err_set(err, VAULT_EBAD,
                                "input is not vault encrypted data. %s is not a vault encrypted "
                                "file",
                                name);
        return aicp_err_set(err, VAULT_EBAD, "input is not vault encrypted data");
    }
    if ((rc = vault_parse(&p, text, len, err)) != 0) {
        if (name && rc != AICP_ENOMEM)
            aicp_err_prefix(err, "%s", name);
        return rc;
    }
    if (aicp_vault_count(v) == 0) {
        rc = aicp_err_set(err, AICP_EAUTH, "Attempting to decrypt but no vault secrets found%s%s",
                          name ? " on " : "", name ? name : "");
        goto out;
    }
    /* The password whose label the header names first, then every other
     * one in the order given (ansible's default, vault_id_match off). */
    for (int pass = 0; pass < 2; pass++) {
        for (idx = 0; idx < v->n; idx++) {
            int match = p.label[0] && strcmp(v->e[idx].label, p.label) == 0;
            if (match != (pass == 0))
                continue;
            rc = try_password(out, outlen, &v->e[idx], &p, err);
            if (rc < 0)
                goto out;
            if (rc == 1) {
                rc = 0;
                if (used_label)
                    *used_label = v->e[idx].label;
                goto out;
            }
        }
    }
    rc = aicp_err_set(err, AICP_EAUTH,
                      "Decryption failed (no vault secrets were found that could decrypt)%s%s",
                      name ? " on " : "", name ? name : "");
out:
    parsed_free(&p);
    return rc;
}

int aicp_vault_decrypt(char **out, size_t *outlen, const struct aicp_vault *v, const char *text,
                       size_t len, struct aicp_err *err)
{
    return aicp_vault_decrypt_named(out, outlen, NULL, v, text, len, NULL, err);
}

/* The ids as Python prints a list of them: ['a', 'b']. */
static void ids_repr(const struct aicp_vault *v, char *buf, size_t size, const char *sep,
                     int quoted)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < v->n && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s%s%s", i ? sep : "", quoted ? "'" : "",
                         v->e[i].label, quoted ? "'" : "");
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

int aicp_vault_pick(const struct aicp_vault *v, const char *label, struct aicp_err *err)
{
    char ids[512];
    if (aicp_vault_count(v) == 0)
        return aicp_err_set(err, AICP_EUSAGE, "A vault password must be specified to encrypt data");
    if (label == NULL) {
        if (v->n > 1) {
            ids_repr(v, ids, sizeof(ids), ",", 0);
            return aicp_err_set(err, AICP_EUSAGE,
                                "The vault-ids %s are available to encrypt. Specify the vault-id "
                                "to encrypt with --encrypt-vault-id",
                                ids);
        }
        return 0;
    }
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->e[i].label, label) == 0)
            return i;
    ids_repr(v, ids + 1, sizeof(ids) - 2, ", ", 1);
    ids[0] = '[';
    size_t l = strlen(ids);
    ids[l] = ']';
    ids[l + 1] = '\0';
    return aicp_err_set(err, AICP_EUSAGE,
                        "Did not find a match for --encrypt-vault-id=%s in the known vault-ids %s",
                        label, ids);
}

int aicp_vault_encrypt(char **out, size_t *outlen, const struct aicp_vault *v, const char *label,
                       const void *plain, size_t len, struct aicp_err *err)
{
    unsigned char salt[VAULT_SALT_LEN], dk[2 * VAULT_KEY_LEN + VAULT_IV_LEN], m[VAULT_HMAC_LEN];
    unsigned char *padded = NULL, *ct = NULL;
    struct aicp_buf inner = AICP_BUF_INIT, text = AICP_BUF_INIT;
    size_t plen = (len / 16 + 1) * 16;
    int rc, idx;
    *out = NULL;
    *outlen = 0;
    if ((idx = aicp_vault_pick(v, label, err)) < 0)
        return idx;
    const struct vault_entry *e = &v->e[idx];
    if (aicp_vault_is_vaulted(plain, len) &&
        memcmp((const char *)plain, VAULT_HEADER, strlen(VAULT_HEADER)) == 0)
        return aicp_err_set(err, AICP_EINVAL, "input is already encrypted");
    padded = malloc(plen);
    ct = malloc(plen + 16);
    if (padded == NULL || ct == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (len)
        memcpy(padded, plain, len);
    memset(padded + len, (int)(plen - len), plen - len);
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        rc = aicp_err_set(err, AICP_EIO, "vault: no random bytes for the salt");
        goto out;
    }
    if (derive(dk, e->pw, e->len, salt, sizeof(salt)) != 0 ||
        ctr(ct, padded, plen, dk, dk + 2 * VAULT_KEY_LEN) != 0 ||
        mac(m, dk + VAULT_KEY_LEN, ct, plen) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "vault: encryption failed");
        goto out;
    }
    if (hex_append(&inner, salt, sizeof(salt)) != 0 || aicp_buf_puts(&inner, "\n") != 0 ||
        hex_append(&inner, m, sizeof(m)) != 0 || aicp_buf_puts(&inner, "\n") != 0 ||
        hex_append(&inner, ct, plen) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (strcmp(e->label, VAULT_DEFAULT_ID) == 0)
        rc = aicp_buf_puts(&text, VAULT_HEADER ";1.1;AES256\n");
    else
        rc = aicp_buf_printf(&text, VAULT_HEADER ";1.2;AES256;%s\n", e->label);
    /* The second hex layer, wrapped at 80 columns. */
    for (size_t off = 0; rc == 0 && off < inner.len; off += VAULT_WIDTH / 2) {
        size_t n = inner.len - off < VAULT_WIDTH / 2 ? inner.len - off : VAULT_WIDTH / 2;
        rc = hex_append(&text, (const unsigned char *)inner.data + off, n);
        if (rc == 0)
            rc = aicp_buf_puts(&text, "\n");
    }
    if (rc != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    *outlen = text.len;
    *out = aicp_buf_steal(&text);
out:
    if (padded) {
        OPENSSL_cleanse(padded, plen);
        free(padded);
    }
    free(ct);
    OPENSSL_cleanse(dk, sizeof(dk));
    aicp_buf_free(&inner);
    aicp_buf_free(&text);
    return rc;
}

int aicp_vault_read_file(char **out, size_t *len, int *vaulted, const struct aicp_vault *v,
                         const char *path, struct aicp_err *err)
{
    char *text = NULL;
    size_t tlen = 0;
    int rc;
    *out = NULL;
    *len = 0;
    *vaulted = 0;
    if ((rc = aicp_read_file(&text, &tlen, path, err)) != 0)
        return rc;
    if (!aicp_vault_is_vaulted(text, tlen)) {
        *out = text;
        *len = tlen;
        return 0;
    }
    *vaulted = 1;
    rc = aicp_vault_decrypt_named(out, len, NULL, v, text, tlen, path, err);
    free(text);
    return rc;
}
