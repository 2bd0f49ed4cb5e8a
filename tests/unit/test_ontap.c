/* Unit tests for agent/ontap.c and modules/ontaputil.c. Pure tests (sizes
 * with a small fuzz, enums, query escaping, drift, provenance, argument
 * checks, the pool) need nothing. Two live groups run the client over real
 * TLS with a throw-away CA and server certificate made by the openssl CLI:
 * "canned" against tests/fakes/https_server.py with scripted answers
 * (jobs that succeed, fail, vanish or never end; locked answers; paging;
 * error bodies), and "fake" against the fake ONTAP server
 * tests/fakes/ontap_server.py. Each skips (never passes) when python3,
 * openssl or its server is missing. The password carries the canary
 * AICP-CANARY-7f3e9b2c and is never printed: the suite's scan catches a
 * leak into any output. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "err.h"
#include "http.h"
#include "module.h"
#include "ontap.h"
#include "ontaputil.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CANARY "AICP-CANARY-7f3e9b2c"
#define PASSWORD "pw-" CANARY

/* ---- pure tests ------------------------------------------------------------ */

static long long sz(const char *s)
{
    json_t *v = json_string(s);
    long long n = aicp_ontap_size(v);

    json_decref(v);
    return n;
}

static void t_size(void **state)
{
    json_t *v;

    (void)state;
    assert_int_equal(sz("100GB"), 100LL << 30);
    assert_int_equal(sz("100gb"), 100LL << 30);
    assert_int_equal(sz("100g"), 100LL << 30);
    assert_int_equal(sz("100Gi"), 100LL << 30);
    assert_int_equal(sz("100GiB"), 100LL << 30);
    assert_int_equal(sz("1.5TB"), 3LL << 39);
    assert_int_equal(sz("10Ti"), 10LL << 40);
    assert_int_equal(sz("2PB"), 2LL << 50);
    assert_int_equal(sz("2p"), 2LL << 50);
    assert_int_equal(sz("1KB"), 1024);
    assert_int_equal(sz("1k"), 1024);
    assert_int_equal(sz("3MB"), 3LL << 20);
    assert_int_equal(sz("3m"), 3LL << 20);
    assert_int_equal(sz("512B"), 512);
    assert_int_equal(sz("512 b"), 512);
    assert_int_equal(sz("1073741824"), 1073741824LL);
    assert_int_equal(sz(" 20 GB "), 20LL << 30);
    assert_int_equal(sz("0"), 0);
    assert_int_equal(sz("0.5KB"), 512);
    assert_int_equal(sz("1.3KB"), 1331); /* 1331.2 rounds to the byte */
    assert_int_equal(sz("7EB"), 7LL << 60);
    /* junk */
    assert_int_equal(sz(""), -1);
    assert_int_equal(sz("GB"), -1);
    assert_int_equal(sz("-1"), -1);
    assert_int_equal(sz("-5GB"), -1);
    assert_int_equal(sz("1.5"), -1); /* half a byte */
    assert_int_equal(sz("1."), -1);
    assert_int_equal(sz(".5GB"), -1);
    assert_int_equal(sz("10XB"), -1);
    assert_int_equal(sz("10 GB x"), -1);
    assert_int_equal(sz("1e9"), -1);
    assert_int_equal(sz("99999999999999999999"), -1);
    assert_int_equal(sz("9999999999PB"), -1); /* overflows */
    assert_int_equal(sz("8EB"), -1);
    assert_int_equal(sz("0x10"), -1);
    v = json_integer(1073741824);
    assert_int_equal(aicp_ontap_size(v), 1073741824LL);
    json_decref(v);
    v = json_integer(-3);
    assert_int_equal(aicp_ontap_size(v), -1);
    json_decref(v);
    v = json_real(2048.0);
    assert_int_equal(aicp_ontap_size(v), 2048);
    json_decref(v);
    v = json_real(1.5);
    assert_int_equal(aicp_ontap_size(v), -1);
    json_decref(v);
    v = json_true();
    assert_int_equal(aicp_ontap_size(v), -1);
    json_decref(v);
    v = json_pack("{s:i}", "size", 1);
    assert_int_equal(aicp_ontap_size(v), -1);
    json_decref(v);
    assert_int_equal(aicp_ontap_size(NULL), -1);
}

/* Random strings made of the characters sizes are written with, and pure
 * noise: never a crash, always -1 or a byte count; well-formed ones agree
 * with the arithmetic. */
static void t_size_fuzz(void **state)
{
    static const char alpha[] = "0123456789.kKmMgGtTpPeEbBiI -+x\t";
    static const char *const units[] = {"", "B", "KB", "MB", "GB", "TB", "k", "m", "g", "Ki", "Gi"};
    static const int shifts[] = {0, 0, 10, 20, 30, 40, 10, 20, 30, 10, 30};
    unsigned seed = 12345;
    char s[32];
    int i, j;

    (void)state;
    for (i = 0; i < 20000; i++) {
        int n = (int)(rand_r(&seed) % 16);
        for (j = 0; j < n; j++) {
            int r = rand_r(&seed);
            s[j] = (r & 64) ? (char)(r % 255 + 1) : alpha[(unsigned)r % (sizeof alpha - 1)];
        }
        s[n] = '\0';
        assert_true(sz(s) >= -1);
    }
    for (i = 0; i < 2000; i++) {
        long long base = rand_r(&seed) % 100000;
        int u = (int)(rand_r(&seed) % (sizeof shifts / sizeof shifts[0]));
        snprintf(s, sizeof s, "%lld%s", base, units[u]);
        assert_int_equal(sz(s), base << shifts[u]);
    }
}

static void t_enum_eq(void **state)
{
    (void)state;
    assert_true(aicp_ontap_enum_eq("snapshot_only", "snapshot-only"));
    assert_true(aicp_ontap_enum_eq("UNIX", "unix"));
    assert_true(aicp_ontap_enum_eq("Snapshot-Only", "SNAPSHOT_ONLY"));
    assert_true(aicp_ontap_enum_eq("", ""));
    assert_true(aicp_ontap_enum_eq(NULL, NULL));
    assert_false(aicp_ontap_enum_eq("unix", "ntfs"));
    assert_false(aicp_ontap_enum_eq("unix", "unix2"));
    assert_false(aicp_ontap_enum_eq("unix", NULL));
    assert_false(aicp_ontap_enum_eq("a.b", "a_b"));
}

static void t_qadd(void **state)
{
    struct aicp_buf b = AICP_BUF_INIT;

    (void)state;
    assert_int_equal(aicp_ontap_qadd(&b, "name", "vol1"), 0);
    assert_int_equal(aicp_ontap_qadd(&b, "svm.name", "svm 1&x=y"), 0);
    assert_int_equal(aicp_ontap_qadd(&b, "comment", "a+b|c%/?#"), 0);
    assert_int_equal(aicp_ontap_qadd(&b, "name", "vol*"), 0);
    assert_int_equal(aicp_ontap_qadd(&b, "empty", NULL), 0);
    assert_string_equal(b.data, "name=vol1&svm.name=svm%201%26x%3Dy&comment=a%2Bb%7Cc%25%2F%3F%23"
                                "&name=vol*&empty=");
    assert_int_equal(aicp_ontap_qadd(&b, "", "x"), AICP_EINVAL);
    aicp_buf_free(&b);
}

static void t_provenance(void **state)
{
    struct aicp_ctx ctx = {0};
    char buf[128];

    (void)state;
    ctx.site = "ontap-ai-pod";
    ctx.run_id = "20261129T162800Z-3f9a01c2";
    aicp_ou_provenance(&ctx, buf, sizeof buf);
    assert_string_equal(buf, "aicp site=ontap-ai-pod run=20261129T162800Z-3f9a01c2");
    ctx.site = NULL;
    aicp_ou_provenance(&ctx, buf, sizeof buf);
    assert_string_equal(buf, "aicp site=- run=20261129T162800Z-3f9a01c2");
    aicp_ou_provenance(&ctx, buf, 10);
    assert_string_equal(buf, "aicp site");
}

static void t_drift(void **state)
{
    static const char *const sizes[] = {"size", NULL};
    static const char *const enums[] = {"nas.security_style", "tiering.policy", "protocols", NULL};
    json_t *have, *want, *before = json_object(), *after = json_object();

    (void)state;
    have = json_loads("{\"name\": \"vol1\", \"size\": 107374182400, \"comment\": \"x\",\n"
                      " \"nas\": {\"path\": \"/vol1\", \"security_style\": \"unix\",\n"
                      "         \"export_policy\": {\"name\": \"default\"}},\n"
                      " \"tiering\": {\"policy\": \"snapshot_only\"},\n"
                      " \"space\": {\"snapshot\": {\"reserve_percent\": 5}},\n"
                      " \"aggregates\": [{\"name\": \"aggr2\", \"uuid\": \"u2\"},\n"
                      "                {\"name\": \"aggr1\", \"uuid\": \"u1\"}],\n"
                      " \"protocols\": [\"nfs3\", \"NFS4\"]}",
                      0, NULL);
    assert_non_null(have);
    /* The same, written the way a site file writes it: in sync. */
    want = json_loads("{\"name\": \"vol1\", \"size\": \"100GB\",\n"
                      " \"nas\": {\"path\": \"/vol1\", \"security_style\": \"UNIX\"},\n"
                      " \"tiering\": {\"policy\": \"snapshot-only\"},\n"
                      " \"space\": {\"snapshot\": {\"reserve_percent\": 5.0}},\n"
                      " \"aggregates\": [{\"name\": \"aggr1\"}, {\"name\": \"aggr2\"}],\n"
                      " \"protocols\": [\"nfs4\", \"nfs3\"],\n"
                      " \"snapshot_policy\": {\"name\": \"none\"}}",
                      0, NULL);
    assert_non_null(want);
    /* snapshot_policy is absent from have: the API did not return it. */
    assert_int_equal(aicp_ou_drift(want, have, sizes, enums, before, after), 0);
    assert_int_equal(json_object_size(before), 0);
    json_decref(want);

    want = json_loads("{\"size\": \"200GB\", \"comment\": \"x\",\n"
                      " \"nas\": {\"path\": \"/vol1\", \"security_style\": \"ntfs\",\n"
                      "         \"export_policy\": {\"name\": \"trident\"}},\n"
                      " \"aggregates\": [{\"name\": \"aggr1\"}],\n"
                      " \"protocols\": [\"nfs3\", \"cifs\"]}",
                      0, NULL);
    assert_int_equal(aicp_ou_drift(want, have, sizes, enums, before, after), 5);
    assert_int_equal(json_integer_value(json_object_get(before, "size")), 107374182400LL);
    assert_string_equal(json_string_value(json_object_get(after, "size")), "200GB");
    assert_string_equal(json_string_value(json_object_get(before, "nas.security_style")), "unix");
    assert_string_equal(json_string_value(json_object_get(after, "nas.security_style")), "ntfs");
    assert_string_equal(json_string_value(json_object_get(before, "nas.export_policy.name")),
                        "default");
    assert_string_equal(json_string_value(json_object_get(after, "nas.export_policy.name")),
                        "trident");
    assert_int_equal(json_array_size(json_object_get(before, "aggregates")), 2);
    assert_non_null(json_object_get(after, "protocols"));
    assert_null(json_object_get(before, "comment"));
    assert_null(json_object_get(before, "nas.path"));
    json_decref(want);
    json_decref(before);
    json_decref(after);
    /* Counting only (before/after NULL); not-objects are no drift. */
    want = json_pack("{s:s}", "comment", "y");
    assert_int_equal(aicp_ou_drift(want, have, NULL, NULL, NULL, NULL), 1);
    assert_int_equal(aicp_ou_drift(want, NULL, NULL, NULL, NULL, NULL), 0);
    json_decref(want);
    json_decref(have);
}

static void no_sleep(void *ud, double s)
{
    (void)ud;
    (void)s;
}

static void t_config_errors(void **state)
{
    struct aicp_http_hooks hooks = {.sleep = no_sleep};
    struct aicp_http *http = NULL;
    struct aicp_ontap *o = NULL;
    struct aicp_err err = {0};
    struct aicp_ontap_config cfg = {
        .hostname = "127.0.0.1:1", .username = "admin", .password = PASSWORD, .validate_certs = 1};
    json_t *obj = NULL;

    (void)state;
    assert_int_equal(aicp_http_new(&http, &hooks, &err), 0);
    cfg.hostname = NULL;
    assert_int_equal(aicp_ontap_new(&o, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "hostname"));
    cfg.hostname = "https://10.0.0.1";
    assert_int_equal(aicp_ontap_new(&o, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "not a URL"));
    cfg.hostname = "10.0.0.1/x";
    assert_int_equal(aicp_ontap_new(&o, http, &cfg, &err), AICP_EINVAL);
    cfg.hostname = "127.0.0.1:1";
    cfg.password = NULL;
    assert_int_equal(aicp_ontap_new(&o, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "no credentials"));
    cfg.password = PASSWORD;
    assert_int_equal(aicp_ontap_new(&o, http, &cfg, &err), 0);
    assert_string_equal(aicp_ontap_host(o), "127.0.0.1:1");
    /* Paths are checked before anything is sent. */
    assert_int_equal(aicp_ontap_get(o, "/etc/passwd", NULL, &obj, &err), AICP_EINVAL);
    assert_int_equal(aicp_ontap_get(o, "/api/x/../y", NULL, &obj, &err), AICP_EINVAL);
    assert_int_equal(aicp_ontap_get(o, "/api/x?y=1", NULL, &obj, &err), AICP_EINVAL);
    assert_int_equal(aicp_ontap_call(o, "GET", "/api/x", NULL, NULL, 0, NULL, &err), AICP_EINVAL);
    assert_null(strstr(err.msg, CANARY));
    aicp_ontap_free(o);
    /* Nothing listens on port 1. */
    cfg.use_http = 1;
    assert_int_equal(aicp_ontap_new(&o, http, &cfg, &err), 0);
    assert_int_equal(aicp_ontap_version(o, NULL, NULL, NULL, &err), AICP_EUNREACHABLE);
    assert_null(strstr(err.msg, CANARY));
    aicp_ontap_free(o);
    aicp_ontap_free(NULL);
    aicp_http_free(http);
}

struct pool_race {
    struct aicp_ontap_pool *p;
    struct aicp_ontap *got;
};

static void *pool_worker(void *arg)
{
    struct pool_race *r = arg;
    struct aicp_ontap_config cfg = {
        .hostname = "c1", .username = "admin", .password = "x", .validate_certs = 1};
    struct aicp_err err = {0};

    if (aicp_ontap_pool_get(r->p, &cfg, &r->got, &err) != 0)
        r->got = NULL;
    return NULL;
}

static void t_pool(void **state)
{
    struct aicp_http *http = NULL;
    struct aicp_ontap_pool *p = NULL;
    struct aicp_ontap *a = NULL, *b = NULL, *c = NULL;
    struct aicp_ontap_config cfg = {
        .hostname = "c1", .username = "admin", .password = "x", .validate_certs = 1};
    struct aicp_err err = {0};
    struct pool_race r[8];
    pthread_t t[8];
    int i;

    (void)state;
    assert_int_equal(aicp_http_new(&http, NULL, &err), 0);
    assert_int_equal(aicp_ontap_pool_new(&p, http), 0);
    for (i = 0; i < 8; i++) {
        r[i] = (struct pool_race){.p = p};
        assert_int_equal(pthread_create(&t[i], NULL, pool_worker, &r[i]), 0);
    }
    for (i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(aicp_ontap_pool_get(p, &cfg, &a, &err), 0);
    for (i = 0; i < 8; i++)
        assert_ptr_equal(r[i].got, a);
    cfg.password = "other"; /* same cluster and user: the first client */
    assert_int_equal(aicp_ontap_pool_get(p, &cfg, &b, &err), 0);
    assert_ptr_equal(a, b);
    cfg.username = "backup";
    assert_int_equal(aicp_ontap_pool_get(p, &cfg, &c, &err), 0);
    assert_ptr_not_equal(a, c);
    cfg.hostname = "c2";
    assert_int_equal(aicp_ontap_pool_get(p, &cfg, &b, &err), 0);
    assert_ptr_not_equal(b, c);
    cfg.hostname = "bad host";
    assert_int_equal(aicp_ontap_pool_get(p, &cfg, &b, &err), AICP_EINVAL);
    assert_null(b);
    aicp_ontap_pool_free(p);
    aicp_ontap_pool_free(NULL);
    aicp_http_free(http);
}

static void t_ou_client(void **state)
{
    struct aicp_http *http = NULL;
    struct aicp_ontap_pool *p = NULL;
    struct aicp_ontap *a = NULL, *b = NULL;
    struct aicp_ctx ctx = {0};
    struct aicp_args args = {0};
    struct aicp_err err = {0};

    (void)state;
    args.v = json_pack("{s:s, s:s, s:s, s:b, s:b, s:s}", "hostname", "10.61.218.100", "username",
                       "admin", "password", PASSWORD, "validate_certs", 1, "https", 1, "ca_file",
                       "~/ca.pem");
    assert_int_equal(aicp_ou_client(&ctx, &args, &a, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "no ONTAP"));
    assert_int_equal(aicp_http_new(&http, NULL, &err), 0);
    assert_int_equal(aicp_ontap_pool_new(&p, http), 0);
    ctx.ontap = p;
    assert_int_equal(aicp_ou_client(&ctx, &args, &a, &err), 0);
    assert_string_equal(aicp_ontap_host(a), "10.61.218.100");
    assert_int_equal(aicp_ou_client(&ctx, &args, &b, &err), 0);
    assert_ptr_equal(a, b);
    json_object_del(args.v, "password");
    json_object_set_new(args.v, "username", json_string("nobody"));
    assert_int_equal(aicp_ou_client(&ctx, &args, &b, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "no credentials"));
    json_decref(args.v);
    aicp_ontap_pool_free(p);
    aicp_http_free(http);
}

/* ---- live fixtures ------------------------------------------------------------ */

struct server {
    pid_t pid;
    int in_fd; /* its stdin: closing it stops the server */
    int port;
};

struct fixture {
    int live;
    const char *why;
    const char *name;
    char dir[64];
    char ca[128], srv_cert[128], srv_key[128], other_ca[128], users[128];
    struct server srv;
    struct aicp_http *http;
    struct aicp_ontap *o;
    double slept[64]; /* the ONTAP client's waits */
    int nslept;
    int said;
    int nwarn;
    char lastwarn[512];
};

static struct fixture canned_fx = {.name = "canned"}, fake_fx = {.name = "fake ONTAP"};

static int run_quiet(const char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st, rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0 || waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *srcdir(void)
{
    const char *s = getenv("top_srcdir");

    return s != NULL && s[0] != '\0' ? s : AICP_SRCDIR;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Waits are recorded and shortened to at most 0.1 s: the tests check the
 * backoff, not the clock, but a server-side job delay still passes. */
static void rec_sleep(void *ud, double s)
{
    struct fixture *f = ud;
    struct timespec ts = {0, s < 0.1 ? (long)(s * 1e9) : 100000000L};

    if (f->nslept < 64)
        f->slept[f->nslept] = s;
    f->nslept++;
    nanosleep(&ts, NULL);
}

static void http_sleep(void *ud, double s)
{
    struct timespec ts = {0, 1000000};

    (void)ud;
    (void)s;
    nanosleep(&ts, NULL);
}

static void rec_warn(void *ud, const char *msg)
{
    struct fixture *f = ud;

    f->nwarn++;
    snprintf(f->lastwarn, sizeof f->lastwarn, "%s", msg);
}

static int make_certs(struct fixture *f)
{
    char cakey[128], csr[128], okey[128];
    const char *ca[] = {"openssl",
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        cakey,
                        "-out",
                        f->ca,
                        "-days",
                        "2",
                        "-subj",
                        "/CN=aicp-ontap-test-ca",
                        NULL};
    const char *other[] = {"openssl",
                           "req",
                           "-x509",
                           "-newkey",
                           "ec",
                           "-pkeyopt",
                           "ec_paramgen_curve:P-256",
                           "-nodes",
                           "-keyout",
                           okey,
                           "-out",
                           f->other_ca,
                           "-days",
                           "2",
                           "-subj",
                           "/CN=aicp-other-ca",
                           NULL};
    const char *req[] = {"openssl",
                         "req",
                         "-newkey",
                         "ec",
                         "-pkeyopt",
                         "ec_paramgen_curve:P-256",
                         "-nodes",
                         "-keyout",
                         f->srv_key,
                         "-out",
                         csr,
                         "-subj",
                         "/CN=localhost",
                         "-addext",
                         "subjectAltName=DNS:localhost,IP:127.0.0.1",
                         NULL};
    const char *sign[] = {
        "openssl", "x509", "-req",        "-in", csr,     "-CA", f->ca,
        "-CAkey",  cakey,  "-set_serial", "2",   "-days", "2",   "-copy_extensions",
        "copyall", "-out", f->srv_cert,   NULL};

    snprintf(f->ca, sizeof f->ca, "%s/ca.pem", f->dir);
    snprintf(f->other_ca, sizeof f->other_ca, "%s/other-ca.pem", f->dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", f->dir);
    snprintf(okey, sizeof okey, "%s/other-ca.key", f->dir);
    snprintf(f->srv_cert, sizeof f->srv_cert, "%s/server.pem", f->dir);
    snprintf(f->srv_key, sizeof f->srv_key, "%s/server.key", f->dir);
    snprintf(csr, sizeof csr, "%s/server.csr", f->dir);
    return run_quiet(ca) == 0 && run_quiet(other) == 0 && run_quiet(req) == 0 &&
                   run_quiet(sign) == 0
               ? 0
               : -1;
}

/* Starts a server; writes `input` (may be NULL) on its stdin and keeps the
 * pipe open; reads its port ("PORT n", or a bare number). */
static int server_start(struct fixture *f, const char *const argv[], const char *input)
{
    posix_spawn_file_actions_t fa;
    struct pollfd p;
    int in[2], out[2], rc;
    char buf[128];
    size_t n = 0;

    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    rc = posix_spawnp(&f->srv.pid, "python3", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        f->srv.pid = 0;
        return -1;
    }
    f->srv.in_fd = in[1];
    fcntl(f->srv.in_fd, F_SETFD, FD_CLOEXEC);
    if (input != NULL && write(f->srv.in_fd, input, strlen(input)) != (ssize_t)strlen(input))
        return -1;
    rc = -1;
    p = (struct pollfd){.fd = out[0], .events = POLLIN};
    while (n < sizeof buf - 1 && poll(&p, 1, 20000) == 1) {
        if (read(out[0], buf + n, 1) != 1)
            break;
        if (buf[n] == '\n') {
            buf[n] = '\0';
            f->srv.port = (int)strtol(strncmp(buf, "PORT ", 5) == 0 ? buf + 5 : buf, NULL, 10);
            rc = f->srv.port > 0 ? 0 : -1;
            break;
        }
        n++;
    }
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
    kill(s->pid, SIGTERM);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
}

/* A client of the fixture's server. */
static struct aicp_ontap *client(struct fixture *f, const char *password, const char *ca,
                                 int validate)
{
    char host[64];
    struct aicp_ontap_config cfg = {.hostname = host,
                                    .username = "admin",
                                    .password = password,
                                    .ca_file = ca,
                                    .validate_certs = validate};
    struct aicp_ontap *o = NULL;
    struct aicp_err err = {0};

    snprintf(host, sizeof host, "127.0.0.1:%d", f->srv.port);
    if (aicp_ontap_new(&o, f->http, &cfg, &err) != 0)
        fail_msg("aicp_ontap_new: %s", err.msg);
    aicp_ontap_set_sleep(o, rec_sleep, f);
    return o;
}

static int common_setup(struct fixture *f, const char *script_rel)
{
    const char *py[] = {"python3", "-c", "import ssl", NULL};
    const char *ossl[] = {"openssl", "version", NULL};
    struct aicp_http_hooks hooks = {.sleep = http_sleep, .warn = rec_warn, .warn_ud = f};
    struct aicp_err err = {0};
    char script[512];

    signal(SIGPIPE, SIG_IGN);
    snprintf(script, sizeof script, "%s/%s", srcdir(), script_rel);
    if (access(script, R_OK) != 0) {
        f->why = script_rel[0] != '\0' && strstr(script_rel, "ontap_server") != NULL
                     ? "tests/fakes/ontap_server.py does not exist yet"
                     : "tests/fakes/https_server.py is missing";
        return 1;
    }
    if (run_quiet(py) != 0 || run_quiet(ossl) != 0) {
        f->why = "python3 (with ssl) or openssl is missing";
        return 1;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/aicp-test-ontap-XXXXXX");
    if (mkdtemp(f->dir) == NULL || make_certs(f) != 0) {
        f->why = "cannot make test certificates";
        return 1;
    }
    if (aicp_http_new(&f->http, &hooks, &err) != 0)
        return -1;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;

    server_stop(&f->srv);
    aicp_ontap_free(f->o);
    aicp_http_free(f->http);
    if (f->dir[0] != '\0')
        rm_tree(f->dir);
    return 0;
}

#define LIVE(state)                                                                                \
    struct fixture *f = *(state);                                                                  \
    if (!f->live) {                                                                                \
        if (!f->said++)                                                                            \
            fprintf(stderr, "SKIP live ONTAP tests (%s): %s\n", f->name,                           \
                    f->why ? f->why : "no server");                                                \
        skip();                                                                                    \
        return;                                                                                    \
    }                                                                                              \
    f->nslept = 0

/* A request to the server's control endpoints (no auth). */
static json_t *ctl(struct fixture *f, const char *method, const char *path, json_t *body)
{
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    char url[256];
    struct aicp_http_req req = {.method = method, .url = url, .json = body, .parse_json = 1};
    json_t *out;

    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", f->srv.port, path);
    if (aicp_http_request(f->http, &o, &req, &r, &err) != 0)
        fail_msg("%s %s: %s", method, path, err.msg);
    out = json_incref(r.json);
    aicp_http_resp_free(&r);
    json_decref(body);
    return out;
}

/* The server's request log (new reference): the canned server answers a
 * list, the fake ONTAP server a list or {"requests": [...]}. */
static json_t *request_log(struct fixture *f)
{
    json_t *all = ctl(f, "GET", "/_fake/requests", NULL);

    if (json_is_object(all)) {
        json_t *l = json_incref(json_object_get(all, "requests"));
        json_decref(all);
        all = l;
    }
    return all;
}

static int count_req(const json_t *log, const char *method, const char *path)
{
    const json_t *r;
    size_t i;
    int n = 0;

    json_array_foreach(log, i, r)
    {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        if (m != NULL && p != NULL && strcmp(m, method) == 0 && strcmp(p, path) == 0)
            n++;
    }
    return n;
}

/* The first value of a query parameter in a logged request: the canned
 * server logs {"k": ["v"]}, the fake may log a string. */
static const char *logged_param(const json_t *r, const char *key)
{
    const json_t *q = json_object_get(r, "query"), *v;

    if (json_is_string(q)) {
        static char val[256];
        const char *s = json_string_value(q), *p;
        size_t kl = strlen(key);
        for (p = s; p != NULL && *p != '\0'; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
            if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
                size_t n = strcspn(p + kl + 1, "&");
                snprintf(val, sizeof val, "%.*s", (int)n, p + kl + 1);
                return val;
            }
        }
        return NULL;
    }
    v = json_object_get(q, key);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_string_value(v);
}

static const json_t *last_req(const json_t *log, const char *method, const char *path)
{
    const json_t *r, *found = NULL;
    size_t i;

    json_array_foreach(log, i, r)
    {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        if (m != NULL && p != NULL && strcmp(m, method) == 0 && strcmp(p, path) == 0)
            found = r;
    }
    return found;
}

/* ---- canned server ------------------------------------------------------------- */

#define JOB(u)                                                                                     \
    "{\"job\": {\"uuid\": \"" u "\", \"_links\": {\"self\": {\"href\": \"/api/cluster/jobs/" u     \
    "\"}}}}"
#define LOCKED                                                                                     \
    "{\"status\": 409, \"json\": {\"error\": {\"message\": \"This Vserver is temporarily locked "  \
    "from changes while recording the configuration baseline.\", \"code\": \"2621573\"}}}"

static const char
    canned_routes[] = "[{\"method\": \"GET\", \"path\": \"/api/cluster\", \"auth\": \"basic\", "
                      "\"responses\": "
                      "[{\"status\": 200, \"json\": {\"name\": \"c\", \"version\": {\"full\": "
                      "\"NetApp Release "
                      "9.8.0: Fri Aug 07 2020\", \"generation\": 9, \"major\": 8, \"minor\": "
                      "0}}}]},"
                      " {\"method\": \"GET\", \"path\": \"/api/t/zero\", \"auth\": \"basic\", "
                      "\"responses\": "
                      "[{\"json\": {\"records\": [], \"num_records\": 0}}]},"
                      " {\"method\": \"GET\", \"path\": \"/api/t/one\", \"auth\": \"basic\", "
                      "\"responses\": "
                      "[{\"json\": {\"records\": [{\"name\": \"vol1\", \"uuid\": \"u1\"}], "
                      "\"num_records\": 1}}]},"
                      " {\"method\": \"GET\", \"path\": \"/api/t/two\", \"auth\": \"basic\", "
                      "\"responses\": "
                      "[{\"json\": {\"records\": [{\"name\": \"vol1\"}, {\"name\": \"vol1\"}], "
                      "\"num_records\": "
                      "2}}]},"
                      " {\"method\": \"GET\", \"path\": \"/api/t/paged\", \"auth\": \"basic\", "
                      "\"responses\": "
                      "[{\"json\": {\"records\": [{\"name\": \"a\"}], \"num_records\": 1, "
                      "\"_links\": {\"next\": "
                      "{\"href\": \"/api/t/paged?start.name=b&fields=name\"}}}},"
                      "  {\"json\": {\"records\": [{\"name\": \"b\"}], \"num_records\": 1}}]},"
                      " {\"method\": \"GET\", \"path\": \"/api/t/notrecords\", \"auth\": "
                      "\"basic\", \"responses\": "
                      "[{\"json\": {\"name\": \"x\"}}]},"
                      " {\"method\": \"GET\", \"path\": \"/api/t/gone\", \"auth\": \"basic\", "
                      "\"responses\": "
                      "[{\"status\": 404, \"json\": {\"error\": {\"message\": \"entry doesn't "
                      "exist\", \"code\": "
                      "\"4\"}}}]},"
                      " {\"method\": \"POST\", \"path\": \"/api/t/jobok\", \"auth\": \"basic\", "
                      "\"responses\": "
                      "[{\"status\": 202, \"json\": " JOB(
                          "1111aaaa-0000-0000-0000-000000000001") "}]},"
                                                                  " {\"method\": \"GET\", "
                                                                  "\"path\": "
                                                                  "\"/api/cluster/jobs/"
                                                                  "1111aaaa-0000-0000-0000-"
                                                                  "000000000001\","
                                                                  " \"auth\": \"basic\", "
                                                                  "\"responses\": [{\"json\": "
                                                                  "{\"state\": \"queued\"}}, "
                                                                  "{\"json\": "
                                                                  "{\"state\": \"running\"}}, "
                                                                  "{\"json\": {\"state\": "
                                                                  "\"running\"}}, {\"json\": "
                                                                  "{\"state\": "
                                                                  "\"success\", \"message\": "
                                                                  "\"success\", \"code\": 0}}]},"
                                                                  " {\"method\": \"POST\", "
                                                                  "\"path\": \"/api/t/jobfail\", "
                                                                  "\"auth\": \"basic\", "
                                                                  "\"responses\": "
                                                                  "[{\"status\": 202, "
                                                                  "\"json\": " JOB(
                                                                      "2222bbbb-0000-0000-0000-"
                                                                      "000000000002") "}]},"
                                                                                      " {"
                                                                                      "\"method\": "
                                                                                      "\"GET\", "
                                                                                      "\"path\": "
                                                                                      "\"/api/"
                                                                                      "cluster/"
                                                                                      "jobs/"
                                                                                      "2222bbbb-"
                                                                                      "0000-0000-"
                                                                                      "0000-"
                                                                                      "000000000002"
                                                                                      "\","
                                                                                      " \"auth\": "
                                                                                      "\"basic\", "
                                                                                      "\"responses"
                                                                                      "\": "
                                                                                      "[{\"json\": "
                                                                                      "{\"state\": "
                                                                                      "\"running\"}"
                                                                                      "}, "
                                                                                      "{\"json\": "
                                                                                      "{\"state\": "
                                                                                      "\"failure\","
                                                                                      " \"message\""
                                                                                      ": \"Failed "
                                                                                      "to create "
                                                                                      "the volume "
                                                                                      "because "
                                                                                      "aggregate "
                                                                                      "\\\"aggr9\\"
                                                                                      "\" does not "
                                                                                      "exist.\", "
                                                                                      "\"code\": "
                                                                                      "917888}}]},"
                                                                                      " {"
                                                                                      "\"method\": "
                                                                                      "\"DELETE\", "
                                                                                      "\"path\": "
                                                                                      "\"/api/t/"
                                                                                      "jobvanish\","
                                                                                      " \"auth\": "
                                                                                      "\"basic\", "
                                                                                      "\"responses"
                                                                                      "\": "
                                                                                      "[{"
                                                                                      "\"status\": "
                                                                                      "202, "
                                                                                      "\"json\":"
                                                                                      " " JOB(
                                                                                          "3333cccc"
                                                                                          "-0000-"
                                                                                          "0000-"
                                                                                          "0000-"
                                                                                          "00000000"
                                                                                          "0003") "}]},"
                                                                                                  " {\"method\": \"GET\", \"path\": \"/api/cluster/jobs/3333cccc-0000-0000-0000-000000000003\","
                                                                                                  " \"auth\": \"basic\", \"responses\": [{\"status\": 404, \"json\": {\"error\": {\"message\": "
                                                                                                  "\"entry doesn't exist\", \"code\": \"4\"}}}]},"
                                                                                                  " {\"method\": \"PATCH\", \"path\": \"/api/t/jobslow\", \"auth\": \"basic\", \"responses\": "
                                                                                                  "[{\"status\": 202, \"json\": " JOB(
                                                                                                      "4444dddd-0000-0000-0000-000000000004") "}]},"
                                                                                                                                              " {\"method\": \"GET\", \"path\": \"/api/cluster/jobs/4444dddd-0000-0000-0000-000000000004\","
                                                                                                                                              " \"auth\": \"basic\", \"responses\": [{\"json\": {\"state\": \"running\"}}]},"
                                                                                                                                              " {\"method\": \"POST\", \"path\": \"/api/t/badjob\", \"auth\": \"basic\", \"responses\": "
                                                                                                                                              "[{\"status\": 202, \"json\": {\"job\": {\"uuid\": \"../../x\"}}}]},"
                                                                                                                                              " {\"method\": \"PATCH\", \"path\": \"/api/t/locked\", \"auth\": \"basic\", \"responses\": "
                                                                                                                                              "[" LOCKED
                                                                                                                                              ", " LOCKED
                                                                                                                                              ", {\"status\": 200, \"json\": {}}]},"
                                                                                                                                              " {\"method\": \"PATCH\", \"path\": \"/api/t/alwayslocked\", \"auth\": \"basic\", "
                                                                                                                                              "\"responses\": [" LOCKED
                                                                                                                                              "]},"
                                                                                                                                              " {\"method\": \"POST\", \"path\": \"/api/t/sync\", \"auth\": \"basic\", \"responses\": "
                                                                                                                                              "[{\"status\": 201, \"json\": {\"num_records\": 1, \"records\": [{\"name\": \"v\", \"uuid\": "
                                                                                                                                              "\"u9\"}]}}]},"
                                                                                                                                              " {\"method\": \"POST\", \"path\": \"/api/t/dup\", \"auth\": \"basic\", \"responses\": "
                                                                                                                                              "[{\"status\": 409, \"json\": {\"error\": {\"message\": \"Duplicate volume name vol1.\", "
                                                                                                                                              "\"code\": \"917536\", \"target\": \"name\"}}}]}]";

static int canned_setup(void **state)
{
    struct fixture *f = &canned_fx;
    char script[512];
    struct aicp_buf cfg = AICP_BUF_INIT;
    const char *argv[] = {"python3", script, NULL};
    int rc;

    *state = f;
    if ((rc = common_setup(f, "tests/fakes/https_server.py")) != 0)
        return rc > 0 ? 0 : -1;
    snprintf(script, sizeof script, "%s/tests/fakes/https_server.py", srcdir());
    if (aicp_buf_printf(&cfg,
                        "{\"cert\": \"%s\", \"key\": \"%s\", \"basic\": {\"user\": \"admin\", "
                        "\"password\": \"%s\"}, \"routes\": %s}\n",
                        f->srv_cert, f->srv_key, PASSWORD, canned_routes) != 0)
        return -1;
    rc = server_start(f, argv, cfg.data);
    aicp_buf_free_secret(&cfg);
    if (rc != 0) {
        f->why = "tests/fakes/https_server.py did not start (no port line)";
        return 0;
    }
    f->o = client(f, PASSWORD, f->ca, 1);
    f->live = 1;
    return 0;
}

static void t_canned_version_once(void **state)
{
    LIVE(state);
    struct aicp_err err = {0};
    json_t *log;
    int g = 0, ma = 0, mi = -1;

    json_decref(ctl(f, "POST", "/_fake/reset", NULL));
    assert_int_equal(aicp_ontap_version(f->o, &g, &ma, &mi, &err), 0);
    assert_int_equal(g, 9);
    assert_int_equal(ma, 8);
    assert_int_equal(mi, 0);
    assert_int_equal(aicp_ontap_require(f->o, 9, 8, "FlexGroup tiering", &err), 0);
    assert_int_equal(aicp_ontap_require(f->o, 9, 7, "x", &err), 0);
    assert_int_equal(aicp_ontap_require(f->o, 8, 3, "x", &err), 0);
    assert_int_equal(aicp_ontap_require(f->o, 9, 10, "snapshot expiry_time", &err), AICP_EINVAL);
    assert_string_equal(err.msg,
                        "ONTAP 9.8 does not support snapshot expiry_time (needs 9.10 or later)");
    assert_int_equal(aicp_ontap_require(f->o, 10, 0, "x", &err), AICP_EINVAL);
    log = request_log(f);
    assert_int_equal(count_req(log, "GET", "/api/cluster"), 1);
    assert_string_equal(logged_param(last_req(log, "GET", "/api/cluster"), "fields"), "version");
    json_decref(log);
}

static void t_canned_records(void **state)
{
    LIVE(state);
    struct aicp_err err = {0};
    struct aicp_buf q = AICP_BUF_INIT;
    json_t *rec = NULL, *recs = NULL, *log;

    json_decref(ctl(f, "POST", "/_fake/reset", NULL));
    assert_int_equal(aicp_ontap_qadd(&q, "name", "vol1"), 0);
    assert_int_equal(aicp_ontap_qadd(&q, "svm.name", "svm 1"), 0);
    assert_int_equal(
        aicp_ontap_get_one(f->o, "/api/t/zero", q.data, "name,uuid", "volume", &rec, &err), 0);
    assert_null(rec);
    assert_int_equal(
        aicp_ontap_get_one(f->o, "/api/t/one", q.data, "name,uuid", "volume", &rec, &err), 0);
    assert_non_null(rec);
    assert_string_equal(json_string_value(json_object_get(rec, "uuid")), "u1");
    json_decref(rec);
    assert_int_equal(
        aicp_ontap_get_one(f->o, "/api/t/two", q.data, "name,uuid", "volume", &rec, &err),
        AICP_EINVAL);
    assert_null(rec);
    assert_non_null(strstr(err.msg, "2 volumes match name=vol1&svm.name=svm%201"));
    log = request_log(f);
    {
        const json_t *r = last_req(log, "GET", "/api/t/one");
        assert_string_equal(logged_param(r, "name"), "vol1");
        assert_string_equal(logged_param(r, "svm.name"), "svm 1");
        assert_string_equal(logged_param(r, "fields"), "name,uuid");
    }
    json_decref(log);
    /* Pages are followed. */
    assert_int_equal(aicp_ontap_list(f->o, "/api/t/paged", NULL, "name", &recs, &err), 0);
    assert_int_equal(json_array_size(recs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 1), "name")), "b");
    json_decref(recs);
    assert_int_equal(aicp_ontap_list(f->o, "/api/t/notrecords", NULL, NULL, &recs, &err),
                     AICP_EREMOTE);
    assert_non_null(strstr(err.msg, "records"));
    /* A single object that is not there is NULL, not an error. */
    assert_int_equal(aicp_ontap_get(f->o, "/api/t/gone", "name", &rec, &err), 0);
    assert_null(rec);
    assert_int_equal(aicp_ontap_get(f->o, "/api/cluster", "version", &rec, &err), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "name")), "c");
    json_decref(rec);
    aicp_buf_free(&q);
}

static void t_canned_jobs(void **state)
{
    LIVE(state);
    struct aicp_err err = {0};
    json_t *res = NULL, *body = json_pack("{s:s}", "name", "vol1"), *log;
    const json_t *r;
    int i;

    json_decref(ctl(f, "POST", "/_fake/reset", NULL));
    /* A job that succeeds after three polls, with 0.5, 1, 2 s between. */
    assert_int_equal(aicp_ontap_call(f->o, "POST", "/api/t/jobok", NULL, body, 0, &res, &err), 0);
    assert_string_equal(json_string_value(json_object_get(res, "state")), "success");
    json_decref(res);
    assert_int_equal(f->nslept, 3);
    assert_true(f->slept[0] == 0.5 && f->slept[1] == 1.0 && f->slept[2] == 2.0);
    log = request_log(f);
    r = last_req(log, "POST", "/api/t/jobok");
    assert_non_null(r);
    assert_string_equal(logged_param(r, "return_timeout"), "30");
    r = last_req(log, "GET", "/api/cluster/jobs/1111aaaa-0000-0000-0000-000000000001");
    assert_string_equal(logged_param(r, "fields"), "state,message,code,error");
    assert_int_equal(
        count_req(log, "GET", "/api/cluster/jobs/1111aaaa-0000-0000-0000-000000000001"), 4);
    json_decref(log);

    /* A job that fails: ONTAP's message and code as it wrote them. */
    assert_int_equal(
        aicp_ontap_call(f->o, "POST", "/api/t/jobfail", "return_records=true", body, 0, &res, &err),
        AICP_EREMOTE);
    assert_null(res);
    assert_string_equal(err.msg, "POST /api/t/jobfail: job 2222bbbb-0000-0000-0000-000000000002 "
                                 "failed: ONTAP error 917888: Failed to create the volume because "
                                 "aggregate \"aggr9\" does not exist.");
    log = request_log(f);
    r = last_req(log, "POST", "/api/t/jobfail");
    assert_string_equal(logged_param(r, "return_records"), "true");
    assert_string_equal(logged_param(r, "return_timeout"), "30");
    json_decref(log);

    /* A job that vanished: re-read, never assume. */
    assert_int_equal(aicp_ontap_call(f->o, "DELETE", "/api/t/jobvanish", NULL, NULL, 0, NULL, &err),
                     AICP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "job 3333cccc-0000-0000-0000-000000000003 vanished: re-read "
                                    "the resource"));

    /* A job that never ends: the budget is counted in waits (0.5, 1, 2, 4,
     * 5, 5 ...), so 12 s of budget is 6 waits. */
    f->nslept = 0;
    assert_int_equal(aicp_ontap_call(f->o, "PATCH", "/api/t/jobslow", NULL, body, 12, NULL, &err),
                     AICP_ETIMEOUT);
    assert_non_null(strstr(err.msg, "still running after 12 s"));
    assert_int_equal(f->nslept, 5);
    for (i = 0; i < f->nslept; i++)
        assert_true(f->slept[i] <= 5.0);
    assert_true(f->slept[4] == 5.0);

    /* A job id that is not a UUID never reaches a path. */
    assert_int_equal(aicp_ontap_call(f->o, "POST", "/api/t/badjob", NULL, body, 0, NULL, &err),
                     AICP_EREMOTE);
    assert_non_null(strstr(err.msg, "not a UUID"));

    /* Synchronous answers are the result. */
    assert_int_equal(aicp_ontap_call(f->o, "POST", "/api/t/sync", NULL, body, 0, &res, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(res, "num_records")), 1);
    json_decref(res);
    json_decref(body);
}

static void t_canned_errors(void **state)
{
    LIVE(state);
    struct aicp_err err = {0};
    struct aicp_ontap *o;
    json_t *body = json_pack("{s:s}", "comment", "x"), *log;
    int g;

    json_decref(ctl(f, "POST", "/_fake/reset", NULL));
    /* Locked twice, then done: retried with backoff. */
    assert_int_equal(aicp_ontap_call(f->o, "PATCH", "/api/t/locked", NULL, body, 0, NULL, &err), 0);
    assert_int_equal(f->nslept, 2);
    assert_true(f->slept[0] == 0.5 && f->slept[1] == 1.0);
    /* Locked for good: 5 retries, then ONTAP's message. */
    f->nslept = 0;
    assert_int_equal(
        aicp_ontap_call(f->o, "PATCH", "/api/t/alwayslocked", NULL, body, 0, NULL, &err),
        AICP_EREMOTE);
    assert_int_equal(f->nslept, 5);
    assert_non_null(strstr(err.msg, "PATCH /api/t/alwayslocked: ONTAP error 2621573: This Vserver "
                                    "is temporarily locked"));
    assert_non_null(strstr(err.msg, "after 6 attempts"));
    log = request_log(f);
    assert_int_equal(count_req(log, "PATCH", "/api/t/alwayslocked"), 6);
    assert_int_equal(count_req(log, "PATCH", "/api/t/locked"), 3);
    json_decref(log);
    /* An error body verbatim, with its target. */
    assert_int_equal(aicp_ontap_call(f->o, "POST", "/api/t/dup", NULL, body, 0, NULL, &err),
                     AICP_EREMOTE);
    assert_string_equal(err.msg, "POST /api/t/dup: ONTAP error 917536: Duplicate volume name "
                                 "vol1. (target: name)");
    json_decref(body);

    /* A wrong password: refused, the message names the user, never a
     * password. */
    o = client(f, "wrong-" CANARY, f->ca, 1);
    assert_int_equal(aicp_ontap_version(o, &g, NULL, NULL, &err), AICP_EAUTH);
    assert_non_null(strstr(err.msg, "admin"));
    assert_null(strstr(err.msg, CANARY));
    aicp_ontap_free(o);

    /* The wrong CA: the certificate is not trusted. */
    o = client(f, PASSWORD, f->other_ca, 1);
    assert_int_equal(aicp_ontap_version(o, &g, NULL, NULL, &err), AICP_EHOSTKEY);
    assert_null(strstr(err.msg, CANARY));
    aicp_ontap_free(o);

    /* validate_certs: false works with any CA, and warns once. */
    f->nwarn = 0;
    o = client(f, PASSWORD, f->other_ca, 0);
    assert_int_equal(aicp_ontap_version(o, &g, NULL, NULL, &err), 0);
    assert_int_equal(aicp_ontap_call(o, "POST", "/api/t/sync", NULL, NULL, 0, NULL, &err), 0);
    assert_int_equal(f->nwarn, 1);
    assert_non_null(strstr(f->lastwarn, "validate_certs"));
    aicp_ontap_free(o);
}

/* ---- the fake ONTAP server ---------------------------------------------------- */

static int fake_setup(void **state)
{
    struct fixture *f = &fake_fx;
    char script[512];
    const char *argv[] = {"python3",  script,         "--cert", f->srv_cert, "--key",
                          f->srv_key, "--users-file", f->users, NULL};
    int rc;

    *state = f;
    if ((rc = common_setup(f, "tests/fakes/ontap_server.py")) != 0)
        return rc > 0 ? 0 : -1;
    snprintf(script, sizeof script, "%s/tests/fakes/ontap_server.py", srcdir());
    snprintf(f->users, sizeof f->users, "%.63s/users", f->dir);
    write_file(f->users, "admin:" PASSWORD "\n");
    chmod(f->users, 0600);
    if (server_start(f, argv, NULL) != 0) {
        f->why = "tests/fakes/ontap_server.py did not start (no PORT line)";
        return 0;
    }
    f->o = client(f, PASSWORD, f->ca, 1);
    f->live = 1;
    return 0;
}

static void t_fake_version_once(void **state)
{
    LIVE(state);
    struct aicp_ontap *o = client(f, PASSWORD, f->ca, 1);
    struct aicp_err err = {0};
    json_t *before = request_log(f), *log;
    int g = 0, ma = 0, mi = -1, n0;

    n0 = count_req(before, "GET", "/api/cluster");
    json_decref(before);
    assert_int_equal(aicp_ontap_version(o, &g, &ma, &mi, &err), 0);
    assert_int_equal(g, 9);
    assert_int_equal(ma, 8);
    assert_int_equal(mi, 0);
    assert_int_equal(aicp_ontap_version(o, &g, &ma, &mi, &err), 0);
    assert_int_equal(aicp_ontap_require(o, 9, 6, "x", &err), 0);
    assert_int_equal(aicp_ontap_require(o, 9, 12, "snapshot locking", &err), AICP_EINVAL);
    assert_string_equal(err.msg,
                        "ONTAP 9.8 does not support snapshot locking (needs 9.12 or later)");
    log = request_log(f);
    assert_int_equal(count_req(log, "GET", "/api/cluster") - n0, 1);
    json_decref(log);
    aicp_ontap_free(o);
}

static void t_fake_records(void **state)
{
    LIVE(state);
    struct aicp_err err = {0};
    struct aicp_buf q = AICP_BUF_INIT;
    json_t *recs = NULL, *rec = NULL;

    assert_int_equal(aicp_ontap_list(f->o, "/api/svm/svms", NULL, "name,uuid", &recs, &err), 0);
    assert_true(json_array_size(recs) >= 2);
    json_decref(recs);
    assert_int_equal(aicp_ontap_qadd(&q, "name", "aggr*"), 0);
    assert_int_equal(aicp_ontap_list(f->o, "/api/storage/aggregates", q.data, "name", &recs, &err),
                     0);
    assert_int_equal(json_array_size(recs), 2);
    json_decref(recs);
    aicp_buf_free(&q);
    /* 0, 1 and 2 records for a get_one. */
    assert_int_equal(aicp_ontap_qadd(&q, "name", "no_such_svm"), 0);
    assert_int_equal(aicp_ontap_get_one(f->o, "/api/svm/svms", q.data, "name", "SVM", &rec, &err),
                     0);
    assert_null(rec);
    aicp_buf_free(&q);
    assert_int_equal(aicp_ontap_qadd(&q, "name", "ontapai_nfs"), 0);
    assert_int_equal(
        aicp_ontap_get_one(f->o, "/api/svm/svms", q.data, "name,uuid", "SVM", &rec, &err), 0);
    assert_non_null(rec);
    assert_string_equal(json_string_value(json_object_get(rec, "name")), "ontapai_nfs");
    assert_non_null(json_object_get(rec, "uuid"));
    json_decref(rec);
    aicp_buf_free(&q);
    assert_int_equal(aicp_ontap_qadd(&q, "name", "aggr1|aggr2"), 0);
    assert_int_equal(aicp_ontap_get_one(f->o, "/api/storage/aggregates", q.data, "name",
                                        "aggregate", &rec, &err),
                     AICP_EINVAL);
    assert_non_null(strstr(err.msg, "2 aggregates match"));
    aicp_buf_free(&q);
}

static json_t *vol_body(const char *name, const char *aggr)
{
    return json_pack("{s:s, s:{s:s}, s:[{s:s}], s:I}", "name", name, "svm", "name", "ontapai_nfs",
                     "aggregates", "name", aggr, "size", (json_int_t)(1LL << 30));
}

static void t_fake_jobs(void **state)
{
    LIVE(state);
    struct aicp_err err = {0};
    struct aicp_buf q = AICP_BUF_INIT;
    json_t *body, *res = NULL, *rec = NULL, *log;
    const char *uuid;
    char path[128];

    json_decref(ctl(f, "POST", "/_fake/reset", NULL));
    /* A job that outlives return_timeout (0 here, so the fake answers 202
     * at once) is polled until it succeeds. */
    json_decref(ctl(f, "POST", "/_fake/config", json_pack("{s:f}", "job_delay", 0.5)));
    body = vol_body("aicp_t_vol1", "aggr1");
    assert_int_equal(aicp_ontap_call(f->o, "POST", "/api/storage/volumes", "return_timeout=0", body,
                                     0, &res, &err),
                     0);
    assert_string_equal(json_string_value(json_object_get(res, "state")), "success");
    assert_true(f->nslept >= 1);
    json_decref(res);
    log = request_log(f);
    assert_string_equal(
        logged_param(last_req(log, "POST", "/api/storage/volumes"), "return_timeout"), "0");
    assert_true(count_req(log, "GET", "/api/cluster/jobs/") == 0);
    json_decref(log);
    json_decref(body);
    assert_int_equal(aicp_ontap_qadd(&q, "name", "aicp_t_vol1"), 0);
    assert_int_equal(aicp_ontap_get_one(f->o, "/api/storage/volumes", q.data, "name,uuid,size",
                                        "volume", &rec, &err),
                     0);
    assert_non_null(rec);
    assert_int_equal(aicp_ontap_size(json_object_get(rec, "size")), 1LL << 30);
    uuid = json_string_value(json_object_get(rec, "uuid"));
    assert_non_null(uuid);
    snprintf(path, sizeof path, "/api/storage/volumes/%s", uuid);
    json_decref(ctl(f, "POST", "/_fake/config", json_pack("{s:f}", "job_delay", 0.0)));

    /* A job that fails: the message as ONTAP wrote it. */
    json_decref(
        ctl(f, "POST", "/_fake/fault",
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "path_regex", "^/api/storage/volumes/",
                      "method", "PATCH", "job", "fail", "error_code", "917888", "message",
                      "injected job failure", "count", 1)));
    body = json_pack("{s:s}", "comment", "x");
    assert_int_equal(aicp_ontap_call(f->o, "PATCH", path, NULL, body, 0, NULL, &err), AICP_EREMOTE);
    assert_non_null(strstr(err.msg, "injected job failure"));
    assert_non_null(strstr(err.msg, "917888"));

    /* A job that vanished. */
    json_decref(ctl(f, "POST", "/_fake/fault",
                    json_pack("{s:s, s:s, s:s, s:i}", "path_regex", "^/api/storage/volumes/",
                              "method", "PATCH", "job", "vanish", "count", 1)));
    assert_int_equal(aicp_ontap_call(f->o, "PATCH", path, NULL, body, 0, NULL, &err),
                     AICP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "vanished: re-read the resource"));

    /* Temporarily locked twice, then it works. */
    f->nslept = 0;
    json_decref(ctl(f, "POST", "/_fake/fault",
                    json_pack("{s:s, s:s, s:s, s:i}", "path_regex", "^/api/storage/volumes/",
                              "method", "PATCH", "locked", "true", "count", 2)));
    assert_int_equal(aicp_ontap_call(f->o, "PATCH", path, NULL, body, 0, NULL, &err), 0);
    assert_true(f->nslept >= 2);
    json_decref(body);

    /* A duplicate: ONTAP's error verbatim. */
    body = vol_body("aicp_t_vol1", "aggr1");
    assert_int_equal(
        aicp_ontap_call(f->o, "POST", "/api/storage/volumes", NULL, body, 0, NULL, &err),
        AICP_EREMOTE);
    assert_non_null(strstr(err.msg, "POST /api/storage/volumes: ONTAP error "));
    json_decref(body);
    json_decref(rec);
    aicp_buf_free(&q);
}

static void t_fake_auth_tls(void **state)
{
    LIVE(state);
    struct aicp_err err = {0};
    struct aicp_ontap *o;
    json_t *obj = NULL;
    int g;

    o = client(f, "wrong-" CANARY, f->ca, 1);
    assert_int_equal(aicp_ontap_version(o, &g, NULL, NULL, &err), AICP_EAUTH);
    assert_non_null(strstr(err.msg, "admin"));
    assert_null(strstr(err.msg, CANARY));
    aicp_ontap_free(o);
    o = client(f, PASSWORD, f->other_ca, 1);
    assert_int_equal(aicp_ontap_version(o, &g, NULL, NULL, &err), AICP_EHOSTKEY);
    aicp_ontap_free(o);
    f->nwarn = 0;
    o = client(f, PASSWORD, NULL, 0);
    assert_int_equal(aicp_ontap_version(o, &g, NULL, NULL, &err), 0);
    assert_int_equal(aicp_ontap_get(o, "/api/cluster", "name", &obj, &err), 0);
    json_decref(obj);
    assert_int_equal(f->nwarn, 1);
    aicp_ontap_free(o);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(t_size),          cmocka_unit_test(t_size_fuzz),
        cmocka_unit_test(t_enum_eq),       cmocka_unit_test(t_qadd),
        cmocka_unit_test(t_provenance),    cmocka_unit_test(t_drift),
        cmocka_unit_test(t_config_errors), cmocka_unit_test(t_pool),
        cmocka_unit_test(t_ou_client),
    };
    const struct CMUnitTest canned[] = {
        cmocka_unit_test(t_canned_version_once),
        cmocka_unit_test(t_canned_records),
        cmocka_unit_test(t_canned_jobs),
        cmocka_unit_test(t_canned_errors),
    };
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(t_fake_version_once),
        cmocka_unit_test(t_fake_records),
        cmocka_unit_test(t_fake_jobs),
        cmocka_unit_test(t_fake_auth_tls),
    };
    int rc = 0;

    rc += cmocka_run_group_tests_name("ontap_pure", pure, NULL, NULL);
    rc += cmocka_run_group_tests_name("ontap_canned", canned, canned_setup, fixture_teardown);
    rc += cmocka_run_group_tests_name("ontap_fake", fake, fake_setup, fixture_teardown);
    return rc;
}
