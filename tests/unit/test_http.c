/* Unit tests for agent/http.c against a real local TLS server
 * (tests/fakes/https_server.py) with a throw-away CA and certificates that
 * the openssl CLI makes in a temp dir at test time. No mocks: every request
 * goes through libcurl and TLS. Secrets carry the canary
 * AICP-CANARY-7f3e9b2c and are never printed, so that the suite's scan can
 * catch a leak into any output. Skips when python3 or openssl is missing. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "err.h"
#include "http.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CANARY "AICP-CANARY-7f3e9b2c"
#define PASSWORD "pw-" CANARY
#define TOKEN "tok-" CANARY

struct server {
    pid_t pid;
    int in_fd; /* its stdin: closing it stops the server */
    int port;
};

struct fixture {
    int skip;
    char dir[64];
    char ca[128], srv_cert[128], srv_key[128], cli_cert[128], cli_key[128];
    char *ca_pem, *cli_cert_pem, *cli_key_pem;
    size_t ca_pem_len, cli_cert_pem_len, cli_key_pem_len;
    struct server main, mtls;
    /* what the hooks saw */
    char warnings[8][256];
    int nwarn;
    double sleeps[16];
    int nsleep;
    struct aicp_http *http;
};

static void rec_warn(void *ud, const char *msg)
{
    struct fixture *f = ud;

    if (f->nwarn < 8)
        snprintf(f->warnings[f->nwarn], sizeof f->warnings[0], "%s", msg);
    f->nwarn++;
}

static void rec_sleep(void *ud, double s)
{
    struct fixture *f = ud;

    if (f->nsleep < 16)
        f->sleeps[f->nsleep] = s;
    f->nsleep++;
}

/* Runs argv quietly; returns its exit status, or -1 when it cannot start
 * (127 is what a missing program looks like through posix_spawnp). */
static int run_quiet(const char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st, rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    /* posix_spawnp's argv is char *const[] for history's sake; it does
     * not write to the strings. */
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *srcdir(void)
{
    const char *s = getenv("top_srcdir");

    return s != NULL && s[0] != '\0' ? s : AICP_SRCDIR;
}

/* Starts the fake server with cfg as its stdin line; reads its port. */
static int server_start(struct server *s, json_t *cfg)
{
    char script[512];
    const char *argv[] = {"python3", script, NULL};
    posix_spawn_file_actions_t fa;
    int in[2], out[2], rc = -1;
    char *line = NULL, buf[32];
    size_t n = 0;

    snprintf(script, sizeof script, "%s/tests/fakes/https_server.py", srcdir());
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    rc = posix_spawnp(&s->pid, "python3", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        return -1;
    }
    s->in_fd = in[1];
    fcntl(s->in_fd, F_SETFD, FD_CLOEXEC);
    line = json_dumps(cfg, JSON_COMPACT);
    rc = -1;
    if (line != NULL && write(s->in_fd, line, strlen(line)) == (ssize_t)strlen(line) &&
        write(s->in_fd, "\n", 1) == 1) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        while (n < sizeof buf - 1 && poll(&p, 1, 20000) == 1) {
            ssize_t k = read(out[0], buf + n, 1);
            if (k != 1)
                break;
            if (buf[n] == '\n') {
                buf[n] = '\0';
                s->port = (int)strtol(buf, NULL, 10);
                rc = s->port > 0 ? 0 : -1;
                break;
            }
            n++;
        }
    }
    free(line);
    close(out[0]);
    return rc;
}

static void server_stop(struct server *s)
{
    int st, i;

    if (s->pid <= 0)
        return;
    close(s->in_fd);
    for (i = 0; i < 100; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        usleep(50000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int make_certs(struct fixture *f)
{
    char csr[128], ccsr[128];
    const char *ca[] = {"openssl",
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        NULL,
                        "-out",
                        NULL,
                        "-days",
                        "2",
                        "-subj",
                        "/CN=aicp-test-ca",
                        NULL};
    const char *req[] = {
        "openssl", "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes",  "-keyout", NULL,      "-out", NULL,       "-subj",
        NULL,      "-addext", NULL,      NULL};
    const char *sign[] = {
        "openssl", "x509", "-req",        "-in", NULL,    "-CA", f->ca,
        "-CAkey",  NULL,   "-set_serial", NULL,  "-days", "2",   "-copy_extensions",
        "copyall", "-out", NULL,          NULL};
    char cakey[128];

    snprintf(f->ca, sizeof f->ca, "%s/ca.pem", f->dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", f->dir);
    snprintf(f->srv_cert, sizeof f->srv_cert, "%s/server.pem", f->dir);
    snprintf(f->srv_key, sizeof f->srv_key, "%s/server.key", f->dir);
    snprintf(f->cli_cert, sizeof f->cli_cert, "%s/client.pem", f->dir);
    snprintf(f->cli_key, sizeof f->cli_key, "%s/client.key", f->dir);
    snprintf(csr, sizeof csr, "%s/server.csr", f->dir);
    snprintf(ccsr, sizeof ccsr, "%s/client.csr", f->dir);
    ca[9] = cakey;
    ca[11] = f->ca;
    if (run_quiet(ca) != 0)
        return -1;
    req[8] = f->srv_key;
    req[10] = csr;
    req[12] = "/CN=localhost";
    req[14] = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    sign[4] = csr;
    sign[8] = cakey;
    sign[10] = "2";
    sign[16] = f->srv_cert;
    if (run_quiet(req) != 0 || run_quiet(sign) != 0)
        return -1;
    req[8] = f->cli_key;
    req[10] = ccsr;
    req[12] = "/CN=aicp-client";
    req[14] = "extendedKeyUsage=clientAuth";
    sign[4] = ccsr;
    sign[10] = "3";
    sign[16] = f->cli_cert;
    if (run_quiet(req) != 0 || run_quiet(sign) != 0)
        return -1;
    return 0;
}

static json_t *resp_spec(int status, const char *retry_after)
{
    json_t *r = json_pack("{s:i}", "status", status);

    if (retry_after != NULL)
        json_object_set_new(r, "headers", json_pack("{s:s}", "Retry-After", retry_after));
    return r;
}

static json_t *route(const char *method, const char *path, const char *auth, json_t *responses)
{
    json_t *r =
        json_pack("{s:s, s:s, s:o}", "method", method, "path", path, "responses", responses);

    if (auth != NULL)
        json_object_set_new(r, "auth", json_string(auth));
    return r;
}

static json_t *main_config(const struct fixture *f)
{
    json_t *routes = json_array();
    char big[5001];

    memset(big, 'x', 5000);
    big[5000] = '\0';
    json_array_append_new(
        routes,
        route("GET", "/ok", NULL, json_pack("[{s:i, s:{s:b}}]", "status", 200, "json", "ok", 1)));
    json_array_append_new(
        routes, route("GET", "/basic", "basic", json_pack("[{s:i, s:{}}]", "status", 200, "json")));
    json_array_append_new(routes, route("GET", "/bearer", "bearer",
                                        json_pack("[{s:i, s:{}}]", "status", 200, "json")));
    json_array_append_new(routes, route("GET", "/r429", NULL,
                                        json_pack("[o, {s:i, s:{s:i}}]", resp_spec(429, "7"),
                                                  "status", 200, "json", "n", 2)));
    json_array_append_new(
        routes, route("GET", "/r429cap", NULL,
                      json_pack("[o, {s:i, s:{}}]", resp_spec(429, "100"), "status", 200, "json")));
    json_array_append_new(routes, route("GET", "/r503", NULL,
                                        json_pack("[o, o, {s:i, s:{}}]", resp_spec(503, NULL),
                                                  resp_spec(503, NULL), "status", 200, "json")));
    json_array_append_new(
        routes,
        route("POST", "/p503", NULL, json_pack("[o, {s:i}]", resp_spec(503, NULL), "status", 200)));
    json_array_append_new(routes,
                          route("POST", "/p503safe", NULL,
                                json_pack("[o, {s:i}]", resp_spec(503, NULL), "status", 200)));
    json_array_append_new(routes,
                          route("GET", "/always503", NULL,
                                json_pack("[{s:i, s:s}]", "status", 503, "body", "maintenance")));
    json_array_append_new(
        routes, route("GET", "/big", NULL, json_pack("[{s:i, s:s}]", "status", 200, "body", big)));
    json_array_append_new(
        routes, route("GET", "/notjson", NULL,
                      json_pack("[{s:i, s:s, s:{s:s}}]", "status", 200, "body", "this is not json",
                                "headers", "Content-Type", "application/json")));
    json_array_append_new(routes,
                          route("POST", "/create", NULL,
                                json_pack("[{s:i, s:{s:s}, s:{s:s}}]", "status", 201, "json",
                                          "uuid", "u-1", "headers", "Location", "/create/u-1")));
    json_array_append_new(
        routes, route("GET", "/drop", NULL,
                      json_pack("[{s:b}, {s:i, s:{}}]", "close", 1, "status", 200, "json")));
    json_array_append_new(routes, route("GET", "/slow", NULL,
                                        json_pack("[{s:i, s:f}]", "status", 200, "delay", 2.0)));
    return json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:o}", "cert", f->srv_cert, "key", f->srv_key,
                     "basic", "user", "aicp", "password", PASSWORD, "bearer", TOKEN, "routes",
                     routes);
}

static int group_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *py[] = {"python3", "-c", "import ssl", NULL};
    const char *ossl[] = {"openssl", "version", NULL};
    struct aicp_http_hooks hooks;
    struct aicp_err err = {0};
    json_t *cfg;
    int rc;

    if (f == NULL)
        return -1;
    *state = f;
    signal(SIGPIPE, SIG_IGN);
    /* main() checked already; this is for a caller that did not. */
    if (run_quiet(py) != 0 || run_quiet(ossl) != 0) {
        f->skip = 1;
        return 0;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/aicp-test-http-XXXXXX");
    if (mkdtemp(f->dir) == NULL || make_certs(f) != 0)
        return -1;
    if (aicp_read_file(&f->ca_pem, &f->ca_pem_len, f->ca, &err) != 0 ||
        aicp_read_file(&f->cli_cert_pem, &f->cli_cert_pem_len, f->cli_cert, &err) != 0 ||
        aicp_read_file(&f->cli_key_pem, &f->cli_key_pem_len, f->cli_key, &err) != 0)
        return -1;
    cfg = main_config(f);
    rc = server_start(&f->main, cfg);
    json_decref(cfg);
    if (rc != 0)
        return -1;
    cfg = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s}]}", "cert", f->srv_cert, "key", f->srv_key,
                    "client_ca", f->ca, "routes", "method", "GET", "path", "/mtls", "auth",
                    "client_cert");
    rc = server_start(&f->mtls, cfg);
    json_decref(cfg);
    if (rc != 0)
        return -1;
    hooks =
        (struct aicp_http_hooks){.warn = rec_warn, .warn_ud = f, .sleep = rec_sleep, .sleep_ud = f};
    return aicp_http_new(&f->http, &hooks, &err) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;

    if (f == NULL)
        return 0;
    server_stop(&f->main);
    server_stop(&f->mtls);
    aicp_http_free(f->http);
    free(f->ca_pem);
    free(f->cli_cert_pem);
    aicp_free_secret(f->cli_key_pem);
    if (f->dir[0] != '\0')
        rm_tree(f->dir);
    free(f);
    return 0;
}

/* Per-test: forget what the hooks saw. */
static int reset(void **state)
{
    struct fixture *f = *state;

    f->nwarn = 0;
    f->nsleep = 0;
    return 0;
}

#define FIX(state)                                                                                 \
    struct fixture *f = *(state);                                                                  \
    if (f->skip) {                                                                                 \
        skip();                                                                                    \
        return;                                                                                    \
    }

static void url_of(char *out, size_t cap, const char *host, int port, const char *path)
{
    snprintf(out, cap, "https://%s:%d%s", host, port, path);
}

/* GET with only a CA file: the usual call of a test. */
static int get(struct fixture *f, struct aicp_http_opts *o, const char *host, const char *path,
               struct aicp_http_resp *r, struct aicp_err *err)
{
    char url[256];
    struct aicp_http_req req = {.method = "GET", .url = url, .parse_json = 1};

    url_of(url, sizeof url, host, f->main.port, path);
    return aicp_http_request(f->http, o, &req, r, err);
}

/* The last request the main server recorded for path (new reference). */
static json_t *recorded(struct fixture *f, const char *path)
{
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    json_t *found = NULL, *v;
    size_t i;

    if (get(f, &o, "localhost", "/_fake/requests", &r, &err) == 0) {
        json_array_foreach(r.json, i, v) if (strcmp(json_string_value(json_object_get(v, "path")),
                                                    path) == 0) found = v;
        json_incref(found);
    }
    aicp_http_resp_free(&r);
    return found;
}

static void t_refused_by_default(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {0};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    char want[128];

    assert_int_equal(get(f, &o, "localhost", "/ok", &r, &err), AICP_EHOSTKEY);
    url_of(want, sizeof want, "localhost", f->main.port, "/ok");
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "GET "));
    assert_non_null(strstr(err.msg, "not trusted"));
    assert_non_null(strstr(err.msg, "ca_file"));
    assert_non_null(strstr(err.msg, "validate_certs: false"));
    assert_int_equal(r.attempts, 1); /* a TLS failure is not retried */
    assert_int_equal(f->nsleep, 0);
    assert_int_equal(f->nwarn, 0);
    aicp_http_resp_free(&r);
}

static void t_ca_file_and_blob(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};

    assert_int_equal(get(f, &o, "localhost", "/ok", &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "ok")));
    assert_string_equal(r.content_type, "application/json");
    aicp_http_resp_free(&r);
    assert_int_equal(get(f, &o, "127.0.0.1", "/ok", &r, &err), 0);
    aicp_http_resp_free(&r);
    /* certificate-authority-data: the CA in memory, no file */
    o = (struct aicp_http_opts){.ca_pem = f->ca_pem, .ca_pem_len = f->ca_pem_len};
    assert_int_equal(get(f, &o, "localhost", "/ok", &r, &err), 0);
    assert_int_equal(r.status, 200);
    aicp_http_resp_free(&r);
    /* An unreadable CA file is named. */
    o = (struct aicp_http_opts){.ca_file = "/nonexistent/ca.pem"};
    assert_int_not_equal(get(f, &o, "localhost", "/ok", &r, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
    aicp_http_resp_free(&r);
}

static void t_wrong_hostname(void **state)
{
    FIX(state);
    char entry[64];
    const char *resolve[] = {entry, NULL};
    struct aicp_http_opts o = {.ca_file = f->ca, .resolve = resolve};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};

    snprintf(entry, sizeof entry, "wrong.example:%d:127.0.0.1", f->main.port);
    assert_int_equal(get(f, &o, "wrong.example", "/ok", &r, &err), AICP_EHOSTKEY);
    assert_non_null(strstr(err.msg, "wrong.example"));
    assert_non_null(strstr(err.msg, "not trusted"));
    aicp_http_resp_free(&r);
    /* The same override for the name in the certificate works. */
    snprintf(entry, sizeof entry, "localhost:%d:127.0.0.1", f->main.port);
    assert_int_equal(get(f, &o, "localhost", "/ok", &r, &err), 0);
    aicp_http_resp_free(&r);
}

static void t_insecure_warns_once(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.insecure = 1};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    struct aicp_http *h2 = NULL;
    struct aicp_http_hooks hooks = {.warn = rec_warn, .warn_ud = f};
    char ep[64], url[128];
    struct aicp_http_req req = {.method = "GET", .url = url};
    int i;

    for (i = 0; i < 3; i++) {
        assert_int_equal(get(f, &o, "127.0.0.1", "/ok", &r, &err), 0);
        assert_int_equal(r.status, 200);
        aicp_http_resp_free(&r);
    }
    assert_int_equal(f->nwarn, 1);
    snprintf(ep, sizeof ep, "https://127.0.0.1:%d", f->main.port);
    assert_non_null(strstr(f->warnings[0], ep));
    assert_non_null(strstr(f->warnings[0], "validate_certs: false"));
    for (i = 0; i < 2; i++) {
        assert_int_equal(get(f, &o, "localhost", "/ok", &r, &err), 0);
        aicp_http_resp_free(&r);
    }
    assert_int_equal(f->nwarn, 2); /* a second endpoint, warned once */
    snprintf(ep, sizeof ep, "https://localhost:%d", f->main.port);
    assert_non_null(strstr(f->warnings[1], ep));
    /* Verification on again: no warning, and the CA is required again. */
    o.insecure = 0;
    assert_int_equal(get(f, &o, "127.0.0.1", "/ok", &r, &err), AICP_EHOSTKEY);
    aicp_http_resp_free(&r);
    assert_int_equal(f->nwarn, 2);
    /* The set belongs to the client: another client warns on its own. */
    assert_int_equal(aicp_http_new(&h2, &hooks, &err), 0);
    o.insecure = 1;
    url_of(url, sizeof url, "127.0.0.1", f->main.port, "/ok");
    assert_int_equal(aicp_http_request(h2, &o, &req, &r, &err), 0);
    aicp_http_resp_free(&r);
    assert_int_equal(aicp_http_request(h2, &o, &req, &r, &err), 0);
    aicp_http_resp_free(&r);
    assert_int_equal(f->nwarn, 3);
    aicp_http_free(h2);
}

static void t_basic_auth(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca, .username = "aicp", .password = PASSWORD};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    json_t *rec;
    char url[256];
    struct aicp_http_req req = {.method = "GET", .url = url};

    assert_int_equal(get(f, &o, "localhost", "/basic", &r, &err), 0);
    assert_int_equal(r.status, 200);
    aicp_http_resp_free(&r);
    rec = recorded(f, "/basic");
    assert_non_null(rec);
    assert_string_equal(json_string_value(json_object_get(rec, "auth")), "basic:aicp");
    json_decref(rec);
    o.password = "wrong-" CANARY;
    assert_int_equal(get(f, &o, "localhost", "/basic", &r, &err), AICP_EAUTH);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(err.msg, "HTTP 401"));
    assert_null(strstr(err.msg, CANARY));
    aicp_http_resp_free(&r);
    /* No credentials: refused by the server. */
    o = (struct aicp_http_opts){.ca_file = f->ca};
    assert_int_equal(get(f, &o, "localhost", "/basic", &r, &err), AICP_EAUTH);
    aicp_http_resp_free(&r);
    /* Credentials in the URL never reach a message. */
    snprintf(url, sizeof url, "https://aicp:%s@localhost:%d/missing", PASSWORD, f->main.port);
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), AICP_ENOTFOUND);
    assert_null(strstr(err.msg, CANARY));
    url_of(url, sizeof url, "localhost", f->main.port, "/missing");
    assert_non_null(strstr(err.msg, url));
    aicp_http_resp_free(&r);
}

static void t_bearer(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca, .bearer_token = TOKEN};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    json_t *rec;

    assert_int_equal(get(f, &o, "localhost", "/bearer", &r, &err), 0);
    aicp_http_resp_free(&r);
    rec = recorded(f, "/bearer");
    assert_string_equal(json_string_value(json_object_get(rec, "auth")), "bearer");
    json_decref(rec);
    o.bearer_token = "bad-" CANARY;
    assert_int_equal(get(f, &o, "localhost", "/bearer", &r, &err), AICP_EAUTH);
    assert_null(strstr(err.msg, CANARY));
    aicp_http_resp_free(&r);
    /* Both kinds at once is a configuration error, said without secrets. */
    o.password = PASSWORD;
    assert_int_equal(get(f, &o, "localhost", "/bearer", &r, &err), AICP_EINVAL);
    assert_null(strstr(err.msg, CANARY));
    aicp_http_resp_free(&r);
}

static void t_mutual_tls(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    char url[128];
    struct aicp_http_req req = {.method = "GET", .url = url};

    url_of(url, sizeof url, "localhost", f->mtls.port, "/mtls");
    /* No client certificate: the handshake fails. */
    assert_int_not_equal(aicp_http_request(f->http, &o, &req, &r, &err), 0);
    aicp_http_resp_free(&r);
    /* client-certificate-data / client-key-data, in memory. */
    o.cert_pem = f->cli_cert_pem;
    o.cert_pem_len = f->cli_cert_pem_len;
    o.key_pem = f->cli_key_pem;
    o.key_pem_len = f->cli_key_pem_len;
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), 0);
    assert_int_equal(r.status, 200);
    aicp_http_resp_free(&r);
    /* And as files. */
    o = (struct aicp_http_opts){.ca_file = f->ca, .cert_file = f->cli_cert, .key_file = f->cli_key};
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), 0);
    aicp_http_resp_free(&r);
}

static void t_retry_429(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};

    assert_int_equal(get(f, &o, "localhost", "/r429", &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(json_integer_value(json_object_get(r.json, "n")), 2);
    assert_int_equal(f->nsleep, 1);
    assert_true(f->sleeps[0] == 7.0); /* Retry-After honoured */
    aicp_http_resp_free(&r);
    /* A long Retry-After is capped. */
    o.retry_after_max_s = 3;
    assert_int_equal(get(f, &o, "localhost", "/r429cap", &r, &err), 0);
    assert_int_equal(f->nsleep, 2);
    assert_true(f->sleeps[1] == 3.0);
    aicp_http_resp_free(&r);
}

static void t_retry_503(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca, .backoff_initial_s = 0.25};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};

    assert_int_equal(get(f, &o, "localhost", "/r503", &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(f->nsleep, 2);
    assert_true(f->sleeps[0] == 0.25 && f->sleeps[1] == 0.5); /* exponential */
    aicp_http_resp_free(&r);
    /* Giving up after max_attempts names the attempts and the body. */
    o.max_attempts = 3;
    assert_int_equal(get(f, &o, "localhost", "/always503", &r, &err), AICP_EREMOTE);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(err.msg, "HTTP 503: maintenance"));
    assert_non_null(strstr(err.msg, "after 3 attempts"));
    aicp_http_resp_free(&r);
}

static void t_no_retry_post(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    char url[128];
    struct aicp_http_req req = {.method = "POST", .url = url, .body = "x", .body_len = 1};

    url_of(url, sizeof url, "localhost", f->main.port, "/p503");
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), AICP_EREMOTE);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(f->nsleep, 0);
    assert_non_null(strstr(err.msg, "POST "));
    assert_non_null(strstr(err.msg, url));
    assert_non_null(strstr(err.msg, "HTTP 503"));
    aicp_http_resp_free(&r);
    /* The caller may declare a POST safe to repeat. */
    url_of(url, sizeof url, "localhost", f->main.port, "/p503safe");
    req.retry_unsafe = 1;
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), 0);
    assert_int_equal(r.attempts, 2);
    aicp_http_resp_free(&r);
}

static void t_connection_errors(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca, .max_attempts = 2};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int fd, port;
    char url[128];
    struct aicp_http_req req = {.method = "POST", .url = url};

    struct aicp_http_hooks hooks = {.sleep = rec_sleep, .sleep_ud = f};
    struct aicp_http *fresh = NULL;
    struct aicp_http_req get_drop = {.method = "GET", .url = url, .parse_json = 1};

    /* The server drops the first connection without an answer. A client
     * of its own, so that the connection is new: on a reused one curl
     * itself reconnects once, which would hide our retry. */
    assert_int_equal(aicp_http_new(&fresh, &hooks, &err), 0);
    url_of(url, sizeof url, "localhost", f->main.port, "/drop");
    assert_int_equal(aicp_http_request(fresh, &o, &get_drop, &r, &err), 0);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(f->nsleep, 1);
    aicp_http_resp_free(&r);
    aicp_http_free(fresh);
    /* Nothing listens: even a POST is retried (it was never sent). */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/x", port);
    f->nsleep = 0;
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), AICP_EUNREACHABLE);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(f->nsleep, 1);
    assert_non_null(strstr(err.msg, url));
    aicp_http_resp_free(&r);
    /* A total timeout. */
    o = (struct aicp_http_opts){.ca_file = f->ca, .timeout_ms = 300, .max_attempts = 1};
    assert_int_equal(get(f, &o, "localhost", "/slow", &r, &err), AICP_ETIMEOUT);
    aicp_http_resp_free(&r);
}

static void t_body_limit(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca, .max_body = 1000};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    char url[128];
    struct aicp_http_req req = {.method = "GET", .url = url};

    url_of(url, sizeof url, "localhost", f->main.port, "/big");
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), AICP_EREMOTE);
    assert_non_null(strstr(err.msg, "exceeds"));
    assert_non_null(strstr(err.msg, "1000"));
    assert_non_null(strstr(err.msg, url));
    assert_int_equal(r.attempts, 1);
    aicp_http_resp_free(&r);
    o.max_body = 5000;
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), 0);
    assert_int_equal(r.body_len, 5000);
    assert_int_equal(r.body[4999], 'x');
    aicp_http_resp_free(&r);
}

static void t_json(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    char url[128];
    const char *hdrs[] = {"X-Trace: 1", NULL};
    json_t *body = json_pack("{s:s}", "name", "vol1"), *rec;
    struct aicp_http_req req = {
        .method = "POST", .url = url, .json = body, .headers = hdrs, .parse_json = 1};

    /* A response that is not JSON: the error names the URL. */
    assert_int_equal(get(f, &o, "localhost", "/notjson", &r, &err), AICP_EREMOTE);
    url_of(url, sizeof url, "localhost", f->main.port, "/notjson");
    assert_non_null(strstr(err.msg, url));
    assert_non_null(strstr(err.msg, "not valid JSON"));
    aicp_http_resp_free(&r);
    /* 404: an error code the caller can test, the body still parsed. */
    assert_int_equal(get(f, &o, "localhost", "/missing", &r, &err), AICP_ENOTFOUND);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(err.msg, "HTTP 404: {\"message\":\"no route for GET /missing\"}"));
    assert_non_null(json_object_get(r.json, "message"));
    aicp_http_resp_free(&r);
    /* A JSON body goes out with its type; Location comes back. */
    url_of(url, sizeof url, "localhost", f->main.port, "/create");
    assert_int_equal(aicp_http_request(f->http, &o, &req, &r, &err), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.location, "/create/u-1");
    assert_string_equal(json_string_value(json_object_get(r.json, "uuid")), "u-1");
    aicp_http_resp_free(&r);
    rec = recorded(f, "/create");
    assert_string_equal(json_string_value(json_object_get(rec, "body")), "{\"name\":\"vol1\"}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rec, "headers"), "Content-Type")),
        "application/json");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rec, "headers"), "X-Trace")), "1");
    json_decref(rec);
    json_decref(body);
}

static void t_environment_ignored(void **state)
{
    FIX(state);
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};

    /* A proxy in the environment must not capture API traffic. */
    setenv("https_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTPS_PROXY", "http://127.0.0.1:9", 1);
    assert_int_equal(get(f, &o, "localhost", "/ok", &r, &err), 0);
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    aicp_http_resp_free(&r);
}

static void t_bad_input(void **state)
{
    struct fixture *f = *state;
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    struct aicp_http_req req = {.method = "get", .url = "https://localhost/"};
    const char *hdrs[] = {"X-A: 1\r\nX-B: 2", NULL};
    struct aicp_http *h = f->http;
    struct aicp_http *own = NULL;

    if (h == NULL) {
        assert_int_equal(aicp_http_new(&own, NULL, &err), 0);
        h = own;
    }
    assert_int_equal(aicp_http_request(h, NULL, &req, &r, &err), AICP_EINVAL);
    req.method = "GET";
    req.url = "not a url";
    assert_int_equal(aicp_http_request(h, NULL, &req, &r, &err), AICP_EINVAL);
    req.url = "ftp://localhost/x";
    assert_int_equal(aicp_http_request(h, NULL, &req, &r, &err), AICP_EINVAL);
    req.url = "https://localhost/";
    req.headers = hdrs;
    assert_int_equal(aicp_http_request(h, NULL, &req, &r, &err), AICP_EINVAL);
    aicp_http_resp_free(&r);
    aicp_http_free(own);
}

static void t_redact_and_methods(void **state)
{
    char *s;

    (void)state;
    s = aicp_http_redact_url("https://user:" PASSWORD "@example.com:8443/api?x=1");
    assert_string_equal(s, "https://example.com:8443/api?x=1");
    free(s);
    s = aicp_http_redact_url("https://example.com/a");
    assert_string_equal(s, "https://example.com/a");
    free(s);
    s = aicp_http_redact_url("::" PASSWORD);
    assert_string_equal(s, "<bad URL>");
    free(s);
    assert_true(aicp_http_method_idempotent("GET"));
    assert_true(aicp_http_method_idempotent("PUT"));
    assert_true(aicp_http_method_idempotent("DELETE"));
    assert_false(aicp_http_method_idempotent("POST"));
    assert_false(aicp_http_method_idempotent("PATCH"));
    assert_false(aicp_http_method_idempotent(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_redact_and_methods),
        cmocka_unit_test(t_bad_input),
        cmocka_unit_test_setup(t_refused_by_default, reset),
        cmocka_unit_test_setup(t_ca_file_and_blob, reset),
        cmocka_unit_test_setup(t_wrong_hostname, reset),
        cmocka_unit_test_setup(t_insecure_warns_once, reset),
        cmocka_unit_test_setup(t_basic_auth, reset),
        cmocka_unit_test_setup(t_bearer, reset),
        cmocka_unit_test_setup(t_mutual_tls, reset),
        cmocka_unit_test_setup(t_retry_429, reset),
        cmocka_unit_test_setup(t_retry_503, reset),
        cmocka_unit_test_setup(t_no_retry_post, reset),
        cmocka_unit_test_setup(t_connection_errors, reset),
        cmocka_unit_test_setup(t_body_limit, reset),
        cmocka_unit_test_setup(t_json, reset),
        cmocka_unit_test_setup(t_environment_ignored, reset),
    };

    const char *py[] = {"python3", "-c", "import ssl", NULL};
    const char *ossl[] = {"openssl", "version", NULL};

    /* 77: automake's "skipped", for machines without the tools. */
    if (run_quiet(py) != 0 || run_quiet(ossl) != 0) {
        fprintf(stderr, "SKIP: test_http needs python3 (with ssl) and openssl\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
