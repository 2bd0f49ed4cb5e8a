/* `aicp vault encrypt|decrypt|view|rekey|encrypt_string`: the ansible-vault
 * command line over vault.c. Options, password sources, messages and output
 * follow ansible-vault (2.14); what it adds is safety on disk: every file is
 * replaced atomically (a 0600 temp file in the same directory, fsync'd, then
 * renamed over, the original mode kept), rekey never puts plaintext on disk,
 * and every buffer that held plaintext is wiped before it is freed. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "err.h"
#include "util.h"
#include "vault.h"

#define MAX_LIST 64

enum vault_action { ACT_ENCRYPT, ACT_DECRYPT, ACT_VIEW, ACT_REKEY, ACT_ENCRYPT_STRING };

struct vault_opts {
    enum vault_action action;
    const char *ids[MAX_LIST];
    int nids;
    const char *pwfiles[MAX_LIST];
    int npwfiles;
    int ask;
    const char *encrypt_id;
    const char *new_pwfile;
    const char *new_id;
    const char *output;
    const char *names[MAX_LIST];
    int nnames;
    const char *stdin_name;
    char **files;
    int nfiles;
};

static void secret_free(char *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* Reads a whole descriptor; growth copies by hand so that no freed block
 * keeps a piece of the plaintext. */
static int read_fd(char **out, size_t *outlen, int fd, const char *name, struct aicp_err *err)
{
    size_t cap = 8192, len = 0;
    struct stat st;
    char *b;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1;
    if ((b = malloc(cap)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = malloc(cap * 2);
            if (nb == NULL) {
                secret_free(b, cap);
                return aicp_err_set(err, AICP_ENOMEM, "out of memory");
            }
            memcpy(nb, b, len);
            secret_free(b, cap);
            b = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, b + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            secret_free(b, cap);
            return aicp_err_set(err, AICP_EIO, "Unable to read source file (%s): %s", name,
                                strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    b[len] = '\0';
    *out = b;
    *outlen = len;
    return 0;
}

static int read_input(char **out, size_t *len, const char *path, struct aicp_err *err)
{
    if (strcmp(path, "-") == 0)
        return read_fd(out, len, STDIN_FILENO, "-", err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return aicp_err_set(err, AICP_EIO, "Unable to read source file (%s): %s", path,
                            strerror(errno));
    int rc = read_fd(out, len, fd, path, err);
    close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_stdout(const char *p, size_t len, struct aicp_err *err)
{
    fflush(stdout);
    if (write_all(STDOUT_FILENO, p, len) != 0)
        return aicp_err_set(err, AICP_EIO, "writing to stdout: %s", strerror(errno));
    return 0;
}

/* Replaces path with data in one rename: the temp file is made 0600 with
 * O_EXCL (mkstemp) next to path, so a reader sees the old file or the new
 * one, never a half-written one, and nobody else can open it meanwhile. An
 * existing file keeps its mode and (where allowed) owner; a new one is
 * 0600, as ansible-vault makes it. */
static int write_atomic(const char *path, const char *data, size_t len, struct aicp_err *err)
{
    char tmpl[PATH_MAX], dcopy[PATH_MAX], real[PATH_MAX];
    struct stat st;
    /* a symlink stays one: its target is what gets replaced (ansible-vault
     * follows it too) */
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && realpath(path, real) != NULL)
        path = real;
    int have_old = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    int fd = -1, rc = 0;
    if (strlen(path) >= sizeof(dcopy))
        return aicp_err_set(err, AICP_EIO, "%s: path too long", path);
    memcpy(dcopy, path, strlen(path) + 1);
    const char *dir = dirname(dcopy);
    if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/.aicp-vault-XXXXXX", dir) >= sizeof(tmpl))
        return aicp_err_set(err, AICP_EIO, "%s: path too long", path);
    fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0)
        return aicp_err_set(err, AICP_EIO, "Problem creating temporary vault file in %s: %s", dir,
                            strerror(errno));
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "Unable to write to temporary vault file for %s: %s", path,
                          strerror(errno));
        goto out;
    }
    if (have_old) {
        if (fchown(fd, st.st_uid, st.st_gid) != 0) {
            /* not the owner: the file becomes ours, as with any editor */
        }
        if (fchmod(fd, st.st_mode & 07777) != 0) {
            rc = aicp_err_set(err, AICP_EIO, "%s: chmod: %s", tmpl, strerror(errno));
            goto out;
        }
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = aicp_err_set(err, AICP_EIO, "Unable to write to temporary vault file for %s: %s", path,
                          strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmpl, path) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "cannot replace %s: %s", path, strerror(errno));
        goto out;
    }
    /* the rename itself durable too */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmpl);
    return rc;
}

/* stdout for "-", else the file, atomically. */
static int write_output(const char *dest, const char *data, size_t len, struct aicp_err *err)
{
    if (strcmp(dest, "-") == 0)
        return write_stdout(data, len, err);
    return write_atomic(dest, data, len, err);
}

/* Adds "[label@]source" slugs as ansible's setup_vault_secrets does: a
 * source that fails is a warning while another one works, the last error
 * when none does; prompts ask for a new password twice when encrypting. */
static int add_slugs(struct aicp_vault *v, const char **slugs, int n, int create_new,
                     struct aicp_err *err)
{
    struct aicp_err last = {0};
    int found = 0, failed = 0, rc;
    char p1[160], p2[160];
    for (int i = 0; i < n; i++) {
        const char *at = strchr(slugs[i], '@');
        const char *src = at ? at + 1 : slugs[i];
        char *label = at ? aicp_strndup(slugs[i], (size_t)(at - slugs[i])) : NULL;
        const char *id = label && *label ? label : "default";
        if (at && label == NULL)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        if (strcmp(src, "prompt") == 0 || strcmp(src, "prompt_ask_vault_pass") == 0) {
            int old = strcmp(src, "prompt_ask_vault_pass") == 0;
            if (create_new) {
                snprintf(p1, sizeof(p1),
                         old ? "New Vault password: " : "New vault password (%s): ", id);
                snprintf(
                    p2, sizeof(p2),
                    old ? "Confirm New Vault password: " : "Confirm new vault password (%s): ", id);
            } else {
                snprintf(p1, sizeof(p1), old ? "Vault password: " : "Vault password (%s): ", id);
            }
            rc = aicp_vault_add_prompt(v, id, p1, create_new ? p2 : NULL, err);
            free(label);
            if (rc != 0)
                return rc;
            found = 1;
            continue;
        }
        struct aicp_err e = {0};
        rc = aicp_vault_add_source(v, label, src, &e);
        if (rc == AICP_ENOMEM || rc == AICP_EUSAGE) {
            free(label);
            *err = e;
            return rc;
        }
        if (rc != 0) {
            fprintf(stderr, "[WARNING]: Error getting vault password file (%s): %s\n",
                    label ? label : "None", e.msg);
            last = e;
            failed = 1;
        } else {
            found = 1;
        }
        free(label);
    }
    if (failed && !found) {
        *err = last;
        return last.code;
    }
    return 0;
}

/* The passwords that open (or, create_new, encrypt) as ansible-vault
 * gathers them: --vault-id, then --vault-password-file, then
 * $AICP_VAULT_PASSWORD_FILE; a prompt with --ask-vault-pass, or when none
 * was given and stdin is a terminal. */
static int setup_secrets(struct aicp_vault *v, const struct vault_opts *o, int create_new,
                         struct aicp_err *err)
{
    const char *slugs[2 * MAX_LIST + 2];
    char *files[MAX_LIST + 1];
    int n = 0, nf = 0, rc;
    const char *env = aicp_vault_env_file();
    for (int i = 0; i < o->nids; i++)
        slugs[n++] = o->ids[i];
    for (int i = 0; i < o->npwfiles + 1; i++) {
        const char *f = i < o->npwfiles ? o->pwfiles[i] : env;
        if (f == NULL)
            continue;
        if ((files[nf] = malloc(strlen(f) + sizeof("default@"))) == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(files[nf], strlen(f) + sizeof("default@"), "default@%s", f);
        slugs[n++] = files[nf++];
    }
    if (o->ask || (n == 0 && isatty(STDIN_FILENO)))
        slugs[n++] = "default@prompt_ask_vault_pass";
    if (n == 0) {
        rc = aicp_err_set(err, AICP_EUSAGE,
                          "A vault password is required to use Ansible's Vault (give "
                          "--vault-password-file, --vault-id or --ask-vault-pass, or set "
                          "AICP_VAULT_PASSWORD_FILE)");
        goto out;
    }
    rc = add_slugs(v, slugs, n, create_new, err);
out:
    for (int i = 0; i < nf; i++)
        free(files[i]);
    return rc;
}

/* The password rekey encrypts with: --new-vault-password-file,
 * --new-vault-id, or a prompt for a new one. */
static int setup_new_secret(struct aicp_vault *v, const struct vault_opts *o, struct aicp_err *err)
{
    char *slug = NULL;
    const char *s;
    int rc;
    if (o->new_id) {
        s = o->new_id;
    } else if (o->new_pwfile) {
        size_t n = strlen(o->new_pwfile) + sizeof("default@");
        if ((slug = malloc(n)) == NULL)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        snprintf(slug, n, "default@%s", o->new_pwfile);
        s = slug;
    } else {
        s = "default@prompt_ask_vault_pass";
    }
    rc = add_slugs(v, &s, 1, 1, err);
    free(slug);
    if (rc == 0 && aicp_vault_count(v) == 0)
        rc = aicp_err_set(err, AICP_EUSAGE,
                          "A new vault password is required to use Ansible's Vault rekey");
    return rc;
}

static int do_encrypt(const struct vault_opts *o, struct aicp_vault *v, struct aicp_err *err)
{
    char *const stdin_only[] = {(char *)"-"};
    char *const *files = o->nfiles ? o->files : stdin_only;
    int n = o->nfiles ? o->nfiles : 1, rc = 0;
    if (o->nfiles == 0 && isatty(STDIN_FILENO))
        fprintf(stderr, "Reading plaintext input from stdin\n");
    for (int i = 0; i < n && rc == 0; i++) {
        char *plain = NULL, *text = NULL;
        size_t plen = 0, tlen = 0;
        const char *dest = o->output ? o->output : files[i];
        if ((rc = read_input(&plain, &plen, files[i], err)) != 0)
            break;
        rc = aicp_vault_encrypt(&text, &tlen, v, o->encrypt_id, plain, plen, err);
        secret_free(plain, plen);
        /* A failure of the command, not bad input: exit 1, as ansible-vault. */
        if (rc == AICP_EINVAL && strcmp(files[i], "-") != 0)
            rc = aicp_err_set(err, AICP_EFAILED, "input is already encrypted: %s", files[i]);
        if (rc == 0)
            rc = write_output(dest, text, tlen, err);
        free(text);
    }
    if (rc == 0 && isatty(STDOUT_FILENO))
        fprintf(stderr, "Encryption successful\n");
    return rc;
}

/* decrypt (to the file, --output or stdout) and view (stdout). */
static int do_decrypt(const struct vault_opts *o, struct aicp_vault *v, int view,
                      struct aicp_err *err)
{
    char *const stdin_only[] = {(char *)"-"};
    char *const *files = o->nfiles ? o->files : stdin_only;
    int n = o->nfiles ? o->nfiles : 1, rc = 0;
    if (o->nfiles == 0 && isatty(STDIN_FILENO))
        fprintf(stderr, "Reading ciphertext input from stdin\n");
    for (int i = 0; i < n && rc == 0; i++) {
        char *text = NULL, *plain = NULL;
        size_t tlen = 0, plen = 0;
        const char *dest = view ? "-" : o->output ? o->output : files[i];
        if ((rc = read_input(&text, &tlen, files[i], err)) != 0)
            break;
        rc = aicp_vault_decrypt_named(&plain, &plen, NULL, v, text, tlen,
                                      strcmp(files[i], "-") == 0 ? NULL : files[i], err);
        free(text);
        if (rc == 0)
            rc = write_output(dest, plain, plen, err);
        secret_free(plain, plen);
    }
    if (rc == 0 && !view && isatty(STDOUT_FILENO))
        fprintf(stderr, "Decryption successful\n");
    return rc;
}

/* Decrypts in memory and replaces the file with the re-encrypted text:
 * the plaintext never touches the disk. */
static int do_rekey(const struct vault_opts *o, struct aicp_vault *v, struct aicp_vault *nv,
                    struct aicp_err *err)
{
    int rc = 0;
    for (int i = 0; i < o->nfiles && rc == 0; i++) {
        char *text = NULL, *plain = NULL, *out = NULL;
        size_t tlen = 0, plen = 0, olen = 0;
        if ((rc = read_input(&text, &tlen, o->files[i], err)) != 0)
            break;
        rc = aicp_vault_decrypt_named(&plain, &plen, NULL, v, text, tlen, o->files[i], err);
        free(text);
        if (rc == 0)
            rc = aicp_vault_encrypt(&out, &olen, nv, o->encrypt_id, plain, plen, err);
        secret_free(plain, plen);
        if (rc == 0)
            rc = write_atomic(o->files[i], out, olen, err);
        free(out);
    }
    if (rc == 0)
        fprintf(stderr, "Rekey successful\n");
    return rc;
}

/* One `NAME: !vault |` block, as ansible-vault's format_ciphertext_yaml. */
static int format_block(struct aicp_buf *b, const char *name, const char *text)
{
    int rc = name ? aicp_buf_printf(b, "%s: !vault |", name) : aicp_buf_puts(b, "!vault |");
    for (const char *p = text; rc == 0 && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        rc = aicp_buf_puts(b, "\n          ");
        if (rc == 0)
            rc = aicp_buf_append(b, p, n);
        p += n + (e != NULL);
    }
    return rc;
}

static int do_encrypt_string(const struct vault_opts *o, struct aicp_vault *v, struct aicp_err *err)
{
    struct aicp_buf outb = AICP_BUF_INIT;
    struct item {
        const char *plain;
        size_t len;
        const char *src;
        const char *name;
    } items[MAX_LIST + 1];
    int n = 0, rc = 0, from_stdin = o->nfiles == 0 || o->stdin_name != NULL, nargs = 0;
    char *in = NULL;
    size_t inlen = 0;
    const char *args[MAX_LIST];

    for (int i = 0; i < o->nfiles; i++) {
        if (strcmp(o->files[i], "-") == 0)
            from_stdin = 1;
        else
            args[nargs++] = o->files[i];
    }
    if (from_stdin) {
        if (isatty(STDOUT_FILENO))
            fprintf(stderr, "Reading plaintext input from stdin. (ctrl-d to end input, twice if "
                            "your content does not already have a newline)\n");
        if ((rc = read_fd(&in, &inlen, STDIN_FILENO, "-", err)) != 0)
            goto out;
        if (inlen == 0) {
            rc = aicp_err_set(err, AICP_EUSAGE, "stdin was empty, not encrypting");
            goto out;
        }
        items[n++] = (struct item){in, inlen, "stdin", o->stdin_name};
    }
    if (nargs > 0) {
        fprintf(stderr, "[WARNING]: the string to encrypt was given on the command line, where "
                        "other users can read it (ps, /proc) and the shell may keep it in its "
                        "history; give it on stdin instead (--stdin-name NAME)\n");
        if (o->nnames > 0 && nargs > o->nnames) {
            fprintf(stderr, "The number of --name options do not match the number of args.\n");
            fprintf(stderr,
                    "The last named variable will be \"%s\". The rest will not have names.\n",
                    o->names[o->nnames - 1]);
        }
    }
    for (int i = 0; i < nargs; i++) {
        if (args[i][0] == '\0') {
            rc = aicp_err_set(err, AICP_EUSAGE,
                              "The plaintext provided from the command line "
                              "args was empty, not encrypting");
            goto out;
        }
        items[n++] = (struct item){args[i], strlen(args[i]), "the command line args",
                                   i < o->nnames ? o->names[i] : NULL};
    }
    for (int i = 0; i < n; i++) {
        char *text = NULL;
        size_t tlen = 0;
        if ((rc = aicp_vault_encrypt(&text, &tlen, v, o->encrypt_id, items[i].plain, items[i].len,
                                     err)) != 0)
            goto out;
        if (n > 1) {
            if (items[i].name)
                fprintf(stderr,
                        "# The encrypted version of variable (\"%s\", the string #%d from %s).\n",
                        items[i].name, i + 1, items[i].src);
            else
                fprintf(stderr, "# The encrypted version of the string #%d from %s.)\n", i + 1,
                        items[i].src);
        }
        if (i > 0)
            rc = aicp_buf_puts(&outb, "\n");
        if (rc == 0)
            rc = format_block(&outb, items[i].name, text);
        free(text);
        if (rc != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    }
    rc = write_output(o->output ? o->output : "-", outb.data ? outb.data : "", outb.len, err);
    /* ansible-vault ends without a newline; a terminal still gets one */
    if (rc == 0 && !o->output && isatty(STDOUT_FILENO))
        rc = write_stdout("\n", 1, err);
    if (rc == 0 && isatty(STDOUT_FILENO))
        fprintf(stderr, "Encryption successful\n");
out:
    secret_free(in, inlen);
    aicp_buf_free(&outb);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: aicp vault encrypt|decrypt|view|rekey|encrypt_string [options] [FILE...]\n"
           "  --vault-password-file F   read the password from F (run F when executable)\n"
           "  --vault-id [LABEL@]SRC    a labelled password (SRC: a file or 'prompt'); repeatable\n"
           "  -J, --ask-vault-pass      ask for the password\n"
           "  --encrypt-vault-id LABEL  the vault id to encrypt with (when several are given)\n"
           "  --output F                encrypt/decrypt/encrypt_string: write to F ('-': stdout)\n"
           "  --new-vault-password-file F, --new-vault-id [LABEL@]SRC   rekey: the new password\n"
           "  -n, --name NAME           encrypt_string: the variable name (repeatable)\n"
           "  --stdin-name NAME         encrypt_string: read the string from stdin, named NAME\n"
           "FILE '-' or no FILE: stdin to stdout. $AICP_VAULT_PASSWORD_FILE (else\n"
           "$ANSIBLE_VAULT_PASSWORD_FILE) names a password file too.\n");
}

static int parse_args(struct vault_opts *o, int argc, char **argv, struct aicp_err *err)
{
    enum { O_PWFILE = 256, O_ID, O_ENCID, O_NEWPW, O_NEWID, O_OUTPUT, O_STDIN_NAME };
    static const struct option longopts[] = {
        {"vault-password-file", required_argument, NULL, O_PWFILE},
        {"vault-pass-file", required_argument, NULL, O_PWFILE},
        {"vault-id", required_argument, NULL, O_ID},
        {"ask-vault-pass", no_argument, NULL, 'J'},
        {"ask-vault-password", no_argument, NULL, 'J'},
        {"encrypt-vault-id", required_argument, NULL, O_ENCID},
        {"new-vault-password-file", required_argument, NULL, O_NEWPW},
        {"new-vault-id", required_argument, NULL, O_NEWID},
        {"output", required_argument, NULL, O_OUTPUT},
        {"name", required_argument, NULL, 'n'},
        {"stdin-name", required_argument, NULL, O_STDIN_NAME},
        {"help", no_argument, NULL, 'h'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    static const char *const actions[] = {"encrypt", "decrypt", "view", "rekey", "encrypt_string"};
    int c, found = 0;
    if (argc < 2)
        return aicp_err_set(err, AICP_EUSAGE, "no action given");
    for (int i = 0; i < 5; i++) {
        if (strcmp(argv[1], actions[i]) == 0) {
            o->action = (enum vault_action)i;
            found = 1;
        }
    }
    if (!found)
        return aicp_err_set(err, AICP_EUSAGE,
                            "unknown action '%s' (encrypt, decrypt, view, "
                            "rekey, encrypt_string)",
                            argv[1]);
    opterr = 0;
    optind = 0; /* glibc: start over, whatever parsed argv before */
    while ((c = getopt_long(argc - 1, argv + 1, ":Jn:hv", longopts, NULL)) != -1) {
        const char **list = NULL;
        int *count = NULL;
        switch (c) {
        case O_PWFILE:
            list = o->pwfiles;
            count = &o->npwfiles;
            break;
        case O_ID:
            list = o->ids;
            count = &o->nids;
            break;
        case 'n':
            list = o->names;
            count = &o->nnames;
            break;
        case 'J':
            o->ask = 1;
            break;
        case O_ENCID:
            o->encrypt_id = optarg;
            break;
        case O_NEWPW:
            o->new_pwfile = optarg;
            break;
        case O_NEWID:
            o->new_id = optarg;
            break;
        case O_OUTPUT:
            o->output = optarg;
            break;
        case O_STDIN_NAME:
            o->stdin_name = optarg;
            break;
        case 'v':
            break;
        case 'h':
            return 1;
        case ':':
            return aicp_err_set(err, AICP_EUSAGE, "option %s needs an argument",
                                argv[optind] ? argv[optind] : "");
        default:
            return aicp_err_set(err, AICP_EUSAGE, "unknown option %s",
                                optind > 0 && optind <= argc - 1 ? argv[optind] : "");
        }
        if (list != NULL) {
            if (*count == MAX_LIST)
                return aicp_err_set(err, AICP_EUSAGE, "too many %s options", argv[optind]);
            list[(*count)++] = optarg;
        }
    }
    o->files = argv + 1 + optind;
    o->nfiles = argc - 1 - optind;
    if (o->action == ACT_ENCRYPT_STRING && o->nfiles > MAX_LIST)
        return aicp_err_set(err, AICP_EUSAGE, "too many strings (at most %d)", MAX_LIST);
    for (int i = 0; i < o->nids; i++)
        if (strchr(o->ids[i], ';') != NULL)
            return aicp_err_set(err, AICP_EUSAGE,
                                "'%s' is not a valid vault id. The character ';' is not allowed "
                                "in vault ids",
                                o->ids[i]);
    if (o->output && o->nfiles > 1 && o->action != ACT_ENCRYPT_STRING)
        return aicp_err_set(err, AICP_EUSAGE,
                            "At most one input file may be used with the --output option");
    if (o->output && (o->action == ACT_VIEW || o->action == ACT_REKEY))
        return aicp_err_set(err, AICP_EUSAGE,
                            "--output is for encrypt, decrypt and "
                            "encrypt_string");
    if (o->new_pwfile && o->new_id)
        return aicp_err_set(err, AICP_EUSAGE,
                            "argument --new-vault-id: not allowed with "
                            "argument --new-vault-password-file");
    if ((o->new_pwfile || o->new_id) && o->action != ACT_REKEY)
        return aicp_err_set(err, AICP_EUSAGE,
                            "--new-vault-password-file and --new-vault-id "
                            "are for rekey");
    if ((o->nnames || o->stdin_name) && o->action != ACT_ENCRYPT_STRING)
        return aicp_err_set(err, AICP_EUSAGE, "--name and --stdin-name are for encrypt_string");
    if (o->action == ACT_REKEY && o->nfiles == 0)
        return aicp_err_set(err, AICP_EUSAGE, "rekey needs at least one FILE");
    if (o->action == ACT_REKEY)
        for (int i = 0; i < o->nfiles; i++)
            if (strcmp(o->files[i], "-") == 0)
                return aicp_err_set(err, AICP_EUSAGE, "rekey works on files, not stdin");
    return 0;
}

int aicp_vault_main(int argc, char **argv)
{
    struct vault_opts o;
    struct aicp_err err = {0};
    struct aicp_vault *v = NULL, *nv = NULL;
    int rc;
    memset(&o, 0, sizeof(o));
    rc = parse_args(&o, argc, argv, &err);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "aicp: vault: %s\n", err.msg);
        usage(stderr);
        return aicp_err_exit_status(rc);
    }
    if (aicp_vault_new(&v) != 0 || aicp_vault_new(&nv) != 0) {
        rc = aicp_err_set(&err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    int encrypting = o.action == ACT_ENCRYPT || o.action == ACT_ENCRYPT_STRING;
    if ((rc = setup_secrets(v, &o, encrypting, &err)) != 0)
        goto out;
    if (encrypting && (rc = aicp_vault_pick(v, o.encrypt_id, &err)) < 0)
        goto out;
    if (o.action == ACT_REKEY) {
        if ((rc = setup_new_secret(nv, &o, &err)) != 0)
            goto out;
        if ((rc = aicp_vault_pick(nv, o.encrypt_id, &err)) < 0)
            goto out;
    }
    switch (o.action) {
    case ACT_ENCRYPT:
        rc = do_encrypt(&o, v, &err);
        break;
    case ACT_DECRYPT:
        rc = do_decrypt(&o, v, 0, &err);
        break;
    case ACT_VIEW:
        rc = do_decrypt(&o, v, 1, &err);
        break;
    case ACT_REKEY:
        rc = do_rekey(&o, v, nv, &err);
        break;
    case ACT_ENCRYPT_STRING:
        rc = do_encrypt_string(&o, v, &err);
        break;
    }
out:
    aicp_vault_free(v);
    aicp_vault_free(nv);
    if (rc < 0) {
        fprintf(stderr, "aicp: vault: %s\n", err.msg[0] ? err.msg : aicp_strerror(rc));
        return aicp_err_exit_status(rc);
    }
    return 0;
}
