/* Unit tests for vault.c: ansible-vault's own files (known answers in
 * tests/data/vault, made by /usr/bin/ansible-vault) open; round trips of
 * every awkward size; any altered byte or truncation is refused without the
 * plaintext in the message; password sources (files, scripts, ids) and the
 * choice of password by label. Nothing here prints plaintext or passwords:
 * comparisons are memcmp, so a failure shows no secret either. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "err.h"
#include "util.h"
#include "vault.h"

#define DATA AICP_SRCDIR "/tests/data/vault/"
#define CANARY "AICP-CANARY-7f3e9b2c"

__attribute__((noinline)) static char *slurp(const char *path, size_t *len)
{
    char *s = NULL;
    size_t l = 0;
    int rc = aicp_read_file(&s, &l, path, NULL);
    assert_int_equal(rc, 0);
    if (len)
        *len = l;
    return s;
}

static struct aicp_vault *keyring(const char *id1, const char *id2)
{
    struct aicp_vault *v = NULL;
    struct aicp_err err = {0};
    assert_int_equal(aicp_vault_new(&v), 0);
    if (id1)
        assert_int_equal(aicp_vault_add_id(v, id1, &err), 0);
    if (id2)
        assert_int_equal(aicp_vault_add_id(v, id2, &err), 0);
    return v;
}

/* The message must name no secret: neither the canary (in every plaintext
 * and password here) nor any other bit of the plaintext. */
static void assert_clean(const struct aicp_err *err)
{
    assert_null(strstr(err->msg, CANARY));
    assert_null(strstr(err->msg, "ontap_password:"));
}

static void expect_plain(const char *plain, size_t plen, const char *path)
{
    size_t elen = 0;
    char *want = slurp(path, &elen);
    assert_int_equal(plen, elen);
    assert_true(memcmp(plain, want, elen) == 0);
    assert_int_equal(plain[plen], '\0');
    free(want);
}

static void t_kat_v11(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring(DATA "password.txt", NULL);
    struct aicp_err err = {0};
    char *plain = NULL;
    size_t plen = 0;
    int vaulted = 0;
    assert_int_equal(aicp_vault_read_file(&plain, &plen, &vaulted, v, DATA "v11.yml", &err), 0);
    assert_int_equal(vaulted, 1);
    expect_plain(plain, plen, DATA "plain.yml");
    aicp_free_secret(plain);
    aicp_vault_free(v);
}

static void t_kat_v12(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring("dev@" DATA "password-dev.txt", "prod@" DATA "password.txt");
    struct aicp_err err = {0};
    const char *used = NULL;
    size_t tlen = 0, plen = 0;
    char *plain = NULL, *text = slurp(DATA "v12-prod.yml", &tlen);
    assert_true(aicp_vault_is_vaulted(text, tlen));
    assert_int_equal(
        aicp_vault_decrypt_named(&plain, &plen, &used, v, text, tlen, "v12-prod.yml", &err), 0);
    assert_string_equal(used, "prod");
    expect_plain(plain, plen, DATA "plain.yml");
    aicp_free_secret(plain);
    free(text);
    text = slurp(DATA "v12-dev.yml", &tlen);
    assert_int_equal(aicp_vault_decrypt_named(&plain, &plen, &used, v, text, tlen, NULL, &err), 0);
    assert_string_equal(used, "dev");
    expect_plain(plain, plen, DATA "plain.yml");
    aicp_free_secret(plain);
    free(text);
    aicp_vault_free(v);
}

/* `!vault |` output of ansible-vault encrypt_string, with YAML's
 * indentation still on every line. */
static void t_kat_inline(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring(DATA "password.txt", NULL);
    struct aicp_err err = {0};
    size_t tlen = 0, plen = 0;
    char *plain = NULL, *text = slurp(DATA "inline.yml", &tlen);
    char *start = strstr(text, "          $ANSIBLE_VAULT");
    char *end = strstr(text, "ontap_user:");
    assert_non_null(start);
    assert_non_null(end);
    assert_int_equal(aicp_vault_decrypt(&plain, &plen, v, start, (size_t)(end - start), &err), 0);
    expect_plain(plain, plen, DATA "inline-plain.txt");
    aicp_free_secret(plain);
    free(text);
    aicp_vault_free(v);
}

/* The label a 1.2 header names is tried first; then the others in order;
 * a label that matches no password does not stop the others (ansible's
 * default, vault_id_match off). */
static void t_label_order(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring("first@" DATA "password.txt", "prod@" DATA "password.txt");
    struct aicp_err err = {0};
    const char *used = NULL;
    size_t tlen = 0, plen = 0;
    char *plain = NULL, *text = slurp(DATA "v12-prod.yml", &tlen);
    assert_int_equal(aicp_vault_decrypt_named(&plain, &plen, &used, v, text, tlen, NULL, &err), 0);
    assert_string_equal(used, "prod");
    aicp_free_secret(plain);
    free(text);

    text = slurp(DATA "v11.yml", &tlen);
    assert_int_equal(aicp_vault_decrypt_named(&plain, &plen, &used, v, text, tlen, NULL, &err), 0);
    assert_string_equal(used, "first");
    aicp_free_secret(plain);
    free(text);
    aicp_vault_free(v);

    v = keyring("other@" DATA "password.txt", NULL);
    text = slurp(DATA "v12-prod.yml", &tlen);
    assert_int_equal(aicp_vault_decrypt_named(&plain, &plen, &used, v, text, tlen, NULL, &err), 0);
    assert_string_equal(used, "other");
    expect_plain(plain, plen, DATA "plain.yml");
    aicp_free_secret(plain);
    free(text);
    aicp_vault_free(v);
}

static void t_wrong_password(void **state)
{
    (void)state;
    struct aicp_vault *v = NULL;
    struct aicp_err err = {0};
    size_t tlen = 0, plen = 0;
    char *plain = NULL, *text = slurp(DATA "v11.yml", &tlen);
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_password(v, NULL, "wrong", 5, &err), 0);
    assert_int_equal(aicp_vault_decrypt(&plain, &plen, v, text, tlen, &err), AICP_EAUTH);
    assert_null(plain);
    assert_string_equal(err.msg,
                        "Decryption failed (no vault secrets were found that could decrypt)");
    assert_int_equal(aicp_vault_decrypt_named(&plain, &plen, NULL, v, text, tlen, "x.yml", &err),
                     AICP_EAUTH);
    assert_string_equal(err.msg, "Decryption failed (no vault secrets were found that could "
                                 "decrypt) on x.yml");
    aicp_vault_free(v);

    /* no password at all, or no keyring */
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_decrypt(&plain, &plen, v, text, tlen, &err), AICP_EAUTH);
    assert_string_equal(err.msg, "Attempting to decrypt but no vault secrets found");
    aicp_vault_free(v);
    assert_int_equal(aicp_vault_decrypt(&plain, &plen, NULL, text, tlen, &err), AICP_EAUTH);
    int vaulted = 0;
    assert_int_equal(aicp_vault_read_file(&plain, &plen, &vaulted, NULL, DATA "v11.yml", &err),
                     AICP_EAUTH);
    assert_int_equal(vaulted, 1);
    assert_non_null(strstr(err.msg, "v11.yml"));
    free(text);
}

static void check_roundtrip(struct aicp_vault *v, const char *label, size_t n, const char *id)
{
    struct aicp_err err = {0};
    unsigned char *data = malloc(n + 1);
    char *text = NULL, *back = NULL;
    size_t tlen = 0, blen = 0;
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 131 + 7); /* NULs and high bytes included */
    assert_int_equal(aicp_vault_encrypt(&text, &tlen, v, label, data, n, &err), 0);
    assert_int_equal(strlen(text), tlen);
    /* the envelope as ansible writes it */
    if (id) {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "$ANSIBLE_VAULT;1.2;AES256;%s\n", id);
        assert_true(aicp_startswith(text, hdr));
    } else {
        assert_true(aicp_startswith(text, "$ANSIBLE_VAULT;1.1;AES256\n"));
    }
    assert_int_equal(text[tlen - 1], '\n');
    const char *p = strchr(text, '\n') + 1;
    size_t body = 0;
    while (*p) {
        const char *e = strchr(p, '\n');
        assert_non_null(e);
        size_t ll = (size_t)(e - p);
        assert_true(ll <= 80 && ll > 0);
        if (e[1] != '\0')
            assert_int_equal(ll, 80);
        for (size_t i = 0; i < ll; i++)
            assert_non_null(strchr("0123456789abcdef", p[i]));
        body += ll;
        p = e + 1;
    }
    /* hex(hex(32-byte salt) \n hex(32-byte HMAC) \n hex(padded ciphertext)) */
    assert_int_equal(body, 2 * (64 + 1 + 64 + 1 + 2 * ((n / 16 + 1) * 16)));
    assert_int_equal(aicp_vault_decrypt(&back, &blen, v, text, tlen, &err), 0);
    assert_int_equal(blen, n);
    assert_true(n == 0 || memcmp(back, data, n) == 0);
    OPENSSL_cleanse(back, blen);
    free(back);
    free(text);
    free(data);
}

static void t_roundtrip(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring(DATA "password.txt", NULL);
    static const size_t sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 1000, 1u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        check_roundtrip(v, NULL, sizes[i], NULL);
    aicp_vault_free(v);
    v = keyring("prod@" DATA "password.txt", NULL);
    check_roundtrip(v, "prod", 17, "prod");
    check_roundtrip(v, NULL, 0, "prod");
    aicp_vault_free(v);
}

/* Flipping any one byte of a vault, header or body, or cutting it short,
 * must never yield a plaintext; and the error shows none of it. */
static void t_tamper(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring(DATA "password.txt", NULL);
    struct aicp_err err = {0};
    size_t tlen = 0, plen = 0;
    char *plain = NULL, *text = slurp(DATA "v11.yml", &tlen);
    char *copy = malloc(tlen + 1);
    assert_non_null(copy);
    assert_int_equal(text[tlen - 1], '\n');
    /* every byte but the final newline (whitespace after the vault is
     * insignificant, to ansible too) */
    for (size_t i = 0; i + 1 < tlen; i++) {
        static const unsigned char masks[] = {0x01, 0x02, 0x10, 0x20, 0x80};
        for (size_t m = 0; m < sizeof(masks); m++) {
            memcpy(copy, text, tlen + 1);
            copy[i] = (char)(copy[i] ^ masks[m]);
            memset(&err, 0, sizeof(err));
            int rc = aicp_vault_decrypt(&plain, &plen, v, copy, tlen, &err);
            if (rc == 0)
                fail_msg("byte %zu ^ 0x%02x was accepted", i, masks[m]);
            /* damaged or forged fails as a wrong password: exit 1, not 65 */
            assert_int_equal(rc, AICP_EAUTH);
            assert_null(plain);
            assert_true(err.msg[0] != '\0');
            assert_clean(&err);
        }
    }
    for (size_t n = 0; n + 1 < tlen; n++) {
        memset(&err, 0, sizeof(err));
        int rc = aicp_vault_decrypt(&plain, &plen, v, text, n, &err);
        if (rc == 0)
            fail_msg("vault cut to %zu bytes was accepted", n);
        assert_int_equal(rc, AICP_EAUTH);
        assert_null(plain);
        assert_clean(&err);
    }
    free(copy);
    free(text);
    aicp_vault_free(v);
}

static void t_bad_input(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring(DATA "password.txt", NULL);
    struct aicp_err err = {0};
    char *out = NULL;
    size_t olen = 0;
    static const char *const bad[] = {
        "$ANSIBLE_VAULT;1.1;AES256\n",
        "$ANSIBLE_VAULT;1.1;AES\n6161\n",
        "$ANSIBLE_VAULT;1.0;AES256\n6161\n",
        "$ANSIBLE_VAULT;1.1\n6161\n",
        "$ANSIBLE_VAULT;1.1;AES256\n616\n",
        "$ANSIBLE_VAULT;1.1;AES256\nzz\n",
        "$ANSIBLE_VAULT;1.1;AES256\n61620a63640a\n",
        "$ANSIBLE_VAULT;1.1;AES256\n0a0a\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = aicp_vault_decrypt(&out, &olen, v, bad[i], strlen(bad[i]), &err);
        if (rc != AICP_EAUTH)
            fail_msg("case %zu: rc %d", i, rc);
        assert_null(out);
    }
    assert_int_equal(aicp_vault_decrypt(&out, &olen, v, "x: 1\n", 5, &err), AICP_EAUTH);
    assert_string_equal(err.msg, "input is not vault encrypted data");
    assert_int_equal(aicp_vault_decrypt_named(&out, &olen, NULL, v, "x: 1\n", 5, "f.yml", &err),
                     AICP_EAUTH);
    assert_string_equal(err.msg, "input is not vault encrypted data. f.yml is not a vault "
                                 "encrypted file");
    assert_int_equal(aicp_vault_decrypt(&out, &olen, v, bad[1], strlen(bad[1]), &err), AICP_EAUTH);
    assert_string_equal(err.msg, "AES cipher could not be found");
    assert_int_equal(aicp_vault_decrypt(&out, &olen, v, bad[5], strlen(bad[5]), &err), AICP_EAUTH);
    assert_string_equal(err.msg, "Vault format unhexlify error: Non-hexadecimal digit found");
    const char *vt = "$ANSIBLE_VAULT;1.1;AES256\n00\n";
    assert_int_equal(aicp_vault_encrypt(&out, &olen, v, NULL, vt, strlen(vt), &err), AICP_EINVAL);
    assert_string_equal(err.msg, "input is already encrypted");
    /* forged vaults with a valid HMAC (tests/data/fuzz/vault) reach the
     * padding check */
    static const char *const forged[] = {"bad-padding", "pad-zero", "empty-ct", "odd-length"};
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        char path[256];
        size_t tlen = 0;
        snprintf(path, sizeof(path), AICP_SRCDIR "/tests/data/fuzz/vault/%s.vault", forged[i]);
        char *text = slurp(path, &tlen);
        assert_int_equal(aicp_vault_decrypt(&out, &olen, v, text, tlen, &err), AICP_EAUTH);
        assert_string_equal(err.msg, "Vault decryption error: invalid padding");
        assert_null(out);
        free(text);
    }
    assert_int_equal(aicp_vault_is_vaulted("  \n$ANSIBLE_VAULT;1.1", 21), 1);
    assert_int_equal(aicp_vault_is_vaulted("$ANSIBLE_VAUL", 13), 0);
    aicp_vault_free(v);
}

/* CRLF line ends and indented lines (a YAML block scalar) read too. */
static void t_whitespace(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring(DATA "password.txt", NULL);
    struct aicp_err err = {0};
    struct aicp_buf b = AICP_BUF_INIT;
    size_t tlen = 0, plen = 0;
    char *plain = NULL, *text = slurp(DATA "v12-prod.yml", &tlen);
    for (const char *p = text; *p; p++) {
        if (p == text || p[-1] == '\n')
            assert_int_equal(aicp_buf_puts(&b, "    "), 0);
        assert_int_equal(aicp_buf_puts(&b, *p == '\n' ? "\r\n" : (char[]){*p, 0}), 0);
    }
    assert_int_equal(aicp_vault_decrypt(&plain, &plen, v, b.data, b.len, &err), 0);
    expect_plain(plain, plen, DATA "plain.yml");
    aicp_free_secret(plain);
    aicp_buf_free(&b);
    free(text);
    aicp_vault_free(v);
}

static char tmpdir[64];

static void write_file(const char *name, const char *content, mode_t mode, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Opens v11.yml with the keyring's only password, or fails. */
static int opens_kat(struct aicp_vault *v)
{
    struct aicp_err err = {0};
    char *plain = NULL;
    size_t plen = 0;
    int vaulted = 0;
    int rc = aicp_vault_read_file(&plain, &plen, &vaulted, v, DATA "v11.yml", &err);
    aicp_free_secret(plain);
    return rc;
}

static void t_password_files(void **state)
{
    (void)state;
    struct aicp_vault *v = NULL;
    struct aicp_err err = {0};
    char path[256];

    /* surrounding whitespace and CR/LF go, as ansible strips a file */
    write_file("pw1", " \t pw-" CANARY "\r\n\n", 0600, path, sizeof(path));
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_source(v, NULL, path, &err), 0);
    assert_int_equal(aicp_vault_count(v), 1);
    assert_string_equal(aicp_vault_label(v, 0), "default");
    assert_int_equal(opens_kat(v), 0);
    aicp_vault_free(v);

    /* the KAT password file of another id ends in CRLF */
    v = keyring(DATA "password-dev.txt", NULL);
    size_t tlen = 0, plen = 0;
    char *plain = NULL, *text = slurp(DATA "v12-dev.yml", &tlen);
    assert_int_equal(aicp_vault_decrypt(&plain, &plen, v, text, tlen, &err), 0);
    aicp_free_secret(plain);
    free(text);
    aicp_vault_free(v);

    write_file("empty", " \n\r\n", 0600, path, sizeof(path));
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_source(v, NULL, path, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "Invalid vault password was provided from file"));
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(aicp_vault_add_source(v, "x", "/nonexistent/pw", &err), AICP_EIO);
    assert_string_equal(err.msg, "The vault password file /nonexistent/pw was not found");
    assert_int_equal(aicp_vault_add_id(v, "a;b@/nonexistent", &err), AICP_EUSAGE);
    assert_int_equal(aicp_vault_add_password(v, "x", "", 0, &err), AICP_EINVAL);
    assert_int_equal(aicp_vault_count(v), 0);
    aicp_vault_free(v);
}

static void t_password_script(void **state)
{
    (void)state;
    struct aicp_vault *v = NULL;
    struct aicp_err err = {0};
    char path[256];

    /* run with no arguments, stdout is the password less its CR/LF */
    write_file("pw.sh", "#!/bin/sh\n[ $# -eq 0 ] || exit 9\nprintf 'pw-" CANARY "\\r\\n'\n", 0700,
               path, sizeof(path));
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_id(v,
                                       "script@"
                                       "",
                                       &err) != 0,
                     1); /* empty source */
    assert_int_equal(aicp_vault_add_source(v, "script", path, &err), 0);
    assert_string_equal(aicp_vault_label(v, 0), "script");
    assert_int_equal(opens_kat(v), 0);
    aicp_vault_free(v);

    /* only CR/LF are stripped from a script: a leading blank stays */
    write_file("blank.sh", "#!/bin/sh\nprintf ' pw-" CANARY "\\n'\n", 0755, path, sizeof(path));
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_source(v, NULL, path, &err), 0);
    assert_int_equal(opens_kat(v), AICP_EAUTH);
    aicp_vault_free(v);

    write_file("fail.sh", "#!/bin/sh\nexit 3\n", 0700, path, sizeof(path));
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_source(v, NULL, path, &err), AICP_EIO);
    assert_non_null(strstr(err.msg, "returned non-zero (3)"));
    write_file("none.sh", "#!/bin/sh\nprintf '\\n'\n", 0700, path, sizeof(path));
    assert_int_equal(aicp_vault_add_source(v, NULL, path, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "Invalid vault password was provided from script"));
    assert_int_equal(aicp_vault_count(v), 0);
    aicp_vault_free(v);
}

/* A client script (name less extension ends in "-client") is asked for
 * the id with "--vault-id ID"; exit 2 means it knows none. Any other
 * script gets no arguments (t_password_script). */
static void t_client_script(void **state)
{
    (void)state;
    struct aicp_vault *v = NULL;
    struct aicp_err err = {0};
    char path[256], cli[512];
    const char *files[1];

    write_file("pw-client.sh",
               "#!/bin/sh\n"
               "[ $# -eq 2 ] && [ \"$1\" = --vault-id ] || exit 9\n"
               "case $2 in prod|default) cat '" DATA "password.txt';; *) exit 2;; esac\n",
               0700, path, sizeof(path));
    assert_int_equal(aicp_vault_new(&v), 0);
    snprintf(cli, sizeof(cli), "prod@%s", path);
    assert_int_equal(aicp_vault_add_id(v, cli, &err), 0);
    assert_string_equal(aicp_vault_label(v, 0), "prod");
    assert_int_equal(opens_kat(v), 0);
    snprintf(cli, sizeof(cli), "dev@%s", path);
    assert_int_equal(aicp_vault_add_id(v, cli, &err), AICP_EIO);
    assert_non_null(strstr(err.msg, "did not find a secret for vault-id=dev"));
    /* no label: no arguments, as ansible runs it */
    assert_int_equal(aicp_vault_add_id(v, path, &err), AICP_EIO);
    assert_non_null(strstr(err.msg, "returned non-zero (9) when getting secret for vault-id=None"));
    assert_int_equal(aicp_vault_count(v), 1);
    aicp_vault_free(v);

    /* --vault-password-file is "default@FILE" to ansible: the client is
     * asked for "default" */
    assert_int_equal(aicp_vault_new(&v), 0);
    files[0] = path;
    assert_int_equal(aicp_vault_add_cli(v, NULL, 0, files, 1, 0, &err), 0);
    assert_int_equal(opens_kat(v), 0);
    aicp_vault_free(v);

    /* no extension works too; "client" alone or "-client" elsewhere is
     * no client */
    write_file("x-client", "#!/bin/sh\n[ \"$2\" = a ] && cat '" DATA "password.txt'\n", 0700, path,
               sizeof(path));
    assert_int_equal(aicp_vault_new(&v), 0);
    snprintf(cli, sizeof(cli), "a@%s", path);
    assert_int_equal(aicp_vault_add_id(v, cli, &err), 0);
    aicp_vault_free(v);
    write_file("x-client.d.sh", "#!/bin/sh\n[ $# -eq 0 ] && cat '" DATA "password.txt'\n", 0700,
               path, sizeof(path));
    assert_int_equal(aicp_vault_new(&v), 0);
    snprintf(cli, sizeof(cli), "a@%s", path);
    assert_int_equal(aicp_vault_add_id(v, cli, &err), 0);
    aicp_vault_free(v);
}

/* AICP_VAULT_PASSWORD_FILE adds to --vault-id/--vault-password-file, as
 * ANSIBLE_VAULT_PASSWORD_FILE does to ansible's. */
static void t_env_with_options(void **state)
{
    (void)state;
    struct aicp_vault *v = NULL;
    struct aicp_err err = {0};
    const char *ids[] = {"prod@" DATA "password-dev.txt"};
    const char *files[] = {DATA "password.txt"};

    unsetenv("ANSIBLE_VAULT_PASSWORD_FILE");
    assert_int_equal(setenv("AICP_VAULT_PASSWORD_FILE", DATA "password.txt", 1), 0);
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_cli(v, ids, 1, NULL, 0, 0, &err), 0);
    assert_int_equal(aicp_vault_count(v), 2);
    assert_string_equal(aicp_vault_label(v, 0), "prod");
    assert_string_equal(aicp_vault_label(v, 1), "default");
    assert_int_equal(opens_kat(v), 0); /* only the environment's password opens it */
    aicp_vault_free(v);

    /* the same file as an option and in the environment: held once */
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_cli(v, NULL, 0, files, 1, 0, &err), 0);
    assert_int_equal(aicp_vault_count(v), 1);
    aicp_vault_free(v);

    /* and alone, as before */
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_cli(v, NULL, 0, NULL, 0, 0, &err), 0);
    assert_int_equal(aicp_vault_count(v), 1);
    aicp_vault_free(v);
    unsetenv("AICP_VAULT_PASSWORD_FILE");
}

static void t_pick(void **state)
{
    (void)state;
    struct aicp_vault *v = keyring("a@" DATA "password.txt", "b@" DATA "password-dev.txt");
    struct aicp_err err = {0};
    char *out = NULL;
    size_t olen = 0;
    assert_int_equal(aicp_vault_encrypt(&out, &olen, v, NULL, "x", 1, &err), AICP_EUSAGE);
    assert_string_equal(err.msg, "The vault-ids a,b are available to encrypt. Specify the "
                                 "vault-id to encrypt with --encrypt-vault-id");
    assert_int_equal(aicp_vault_encrypt(&out, &olen, v, "c", "x", 1, &err), AICP_EUSAGE);
    assert_string_equal(err.msg, "Did not find a match for --encrypt-vault-id=c in the known "
                                 "vault-ids ['a', 'b']");
    assert_int_equal(aicp_vault_pick(v, "b", &err), 1);
    assert_int_equal(aicp_vault_encrypt(&out, &olen, v, "b", "x", 1, &err), 0);
    assert_true(aicp_startswith(out, "$ANSIBLE_VAULT;1.2;AES256;b\n"));
    free(out);
    aicp_vault_free(v);
    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_encrypt(&out, &olen, v, NULL, "x", 1, &err), AICP_EUSAGE);
    aicp_vault_free(v);
}

static void t_read_plain_file(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    char *out = NULL;
    size_t len = 0;
    int vaulted = 1;
    assert_int_equal(aicp_vault_read_file(&out, &len, &vaulted, NULL, DATA "plain.yml", &err), 0);
    assert_int_equal(vaulted, 0);
    expect_plain(out, len, DATA "plain.yml");
    aicp_free_secret(out);
    assert_int_equal(aicp_vault_read_file(&out, &len, &vaulted, NULL, DATA "nope.yml", &err),
                     AICP_EIO);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/aicp-test-vault-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"pw1",      "empty",        "pw.sh",        "blank.sh",
                                        "fail.sh",  "none.sh",      "pw-client.sh", "x-client",
                                        "x-client.d.sh"};
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_kat_v11),         cmocka_unit_test(t_kat_v12),
        cmocka_unit_test(t_kat_inline),      cmocka_unit_test(t_label_order),
        cmocka_unit_test(t_wrong_password),  cmocka_unit_test(t_roundtrip),
        cmocka_unit_test(t_tamper),          cmocka_unit_test(t_bad_input),
        cmocka_unit_test(t_whitespace),      cmocka_unit_test(t_password_files),
        cmocka_unit_test(t_password_script), cmocka_unit_test(t_pick),
        cmocka_unit_test(t_read_plain_file), cmocka_unit_test(t_client_script),
        cmocka_unit_test(t_env_with_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
