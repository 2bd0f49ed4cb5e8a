/* Fuzz target for the vault reader: any bytes must decrypt or fail with
 * AICP_EINVAL or AICP_EAUTH and a message, never crash, leak or read out of
 * bounds. The keyring holds the password of the known-answer vaults in
 * tests/data/vault, so seeds made from them reach the HMAC, decryption and
 * padding checks, not only the parser. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "err.h"
#include "util.h"
#include "vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char pw[] = "pw-AICP-CANARY-7f3e9b2c";
    struct aicp_vault *v = NULL;
    struct aicp_err err = {0};
    char *plain = NULL;
    size_t plen = 0;
    const char *used = NULL;
    if (aicp_vault_new(&v) != 0)
        return 0;
    if (aicp_vault_add_password(v, "dev", "other", 5, &err) != 0 ||
        aicp_vault_add_password(v, NULL, pw, sizeof(pw) - 1, &err) != 0) {
        aicp_vault_free(v);
        return 0;
    }
    int rc =
        aicp_vault_decrypt_named(&plain, &plen, &used, v, (const char *)data, size, "fuzz", &err);
    if (rc == 0) {
        if (plain == NULL || plain[plen] != '\0' || used == NULL)
            __builtin_trap();
        OPENSSL_cleanse(plain, plen);
        free(plain);
    } else if ((rc != AICP_EINVAL && rc != AICP_EAUTH && rc != AICP_ENOMEM) || err.msg[0] == '\0' ||
               plain != NULL) {
        __builtin_trap();
    }
    aicp_vault_free(v);
    return 0;
}
