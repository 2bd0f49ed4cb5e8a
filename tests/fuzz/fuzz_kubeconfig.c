/* Fuzz target for the kubeconfig loader: any bytes, as the kubeconfig
 * file, must give a client or an invalid-input error; never a crash or a
 * leak. Nothing is sent (aicp_kube_new only reads the file). The file is
 * written to a private temp file, since the loader reads a path. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "http.h"
#include "kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct aicp_http *http;
    struct aicp_err err = {0};
    struct aicp_kube *k = NULL;

    if (http == NULL && aicp_http_new(&http, NULL, &err) != 0)
        abort();
    if (path[0] == '\0') {
        snprintf(path, sizeof path, "/tmp/aicp-fuzz-kubeconfig-XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0)
            abort();
        close(fd);
        atexit(remove_file);
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (size > 0 && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    struct aicp_kube_config cfg = {.kubeconfig = path, .context = NULL};
    int rc = aicp_kube_new(&k, http, &cfg, &err);
    if (rc == 0) {
        aicp_kube_free(k);
    } else if (err.msg[0] == '\0') {
        abort(); /* an error must say what is wrong */
    }
    return 0;
}
