/* libFuzzer harness: HTTP requests to a running kvattn server (stories260K,
 * GQA, from $KVATTN_MODELS, with tok512.bin; one thread, and a context of 16
 * tokens bounds each request's work), sent over loopback. The input is a request's parts, framed
 * by the harness so that each is whole (no input waits for a timeout):
 *   byte 0           the method (GET, POST, HEAD, PUT, DELETE, OPTIONS)
 *   up to '\n'       the path (bytes that cannot be in a request line are
 *                    percent-encoded)
 *   lines up to ""   headers "Name: value" (the server's key is "fuzzkey":
 *                    "Authorization: Bearer fuzzkey" gets past the 401)
 *   the rest         the body (Content-Length set to it)
 * Every answer must be an HTTP response with a status the server documents;
 * an error's body must be the OpenAI error object, a 200's a completion or
 * an event stream that ends with [DONE] (or an error event). */
#include "fuzz_util.h"

#include <errno.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

static kvattn_model *model;
static kvattn_server *server;
static int port;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *models = getenv("KVATTN_MODELS");
    char m[1024], z[1024];
    snprintf(m, sizeof m, "%s/stories260K.bin", models && *models ? models : "../shared/models");
    snprintf(z, sizeof z, "%s/tok512.bin", models && *models ? models : "../shared/models");
    /* one thread: the engine's OpenMP team beside the harness and the connection threads would
     * oversubscribe a small machine, and an input's time is then the scheduler's, not the server's */
    kvattn_set_threads(1);
    if (kvattn_model_load(m, z, &model) != KVATTN_OK) {
        fprintf(stderr, "fuzz_http_request: %s\n", kvattn_last_error());
        abort();
    }
    kvattn_server_params p = {
        /* 16 tokens a request at most: the kernels, built unoptimised and instrumented here, take
         * about 20 ms a token, and each input must stay well inside libFuzzer's second */
        .engine = {.n_ctx = 16, .max_batch = 4, .kv_mem = 1 << 20, .kv_type = KVATTN_TYPE_F16},
        .api_key = "fuzzkey",
        .model_id = "stories260K",
        .end_token = 1,
        .sampler = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 1},
        .fixed_seed = 1,
        .chat_format = -1,
        .max_body = 64 * 1024,
        .timeout_s = 2,
    };
    if (kvattn_server_start(model, &p, &server) != KVATTN_OK) {
        fprintf(stderr, "fuzz_http_request: %s\n", kvattn_last_error());
        abort();
    }
    port = kvattn_server_port(server);
    return 0;
}

/* Sends the request and reads the answer until the server closes (it is
 * asked to); the bytes read, or -1 when it did not answer within 5 s. */
static long exchange(const char *req, size_t n, char *resp, size_t cap) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* libFuzzer's -timeout alarm interrupts system calls: each is retried on EINTR */
    int rc;
    while (fd >= 0 && (rc = connect(fd, (struct sockaddr *)&a, sizeof a)) != 0 && errno == EINTR) continue;
    if (fd < 0 || rc != 0) abort();
    for (size_t sent = 0; sent < n;) {
        const ssize_t k = send(fd, req + sent, n - sent, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break; /* the server may answer (413) and close before the body is in */
        sent += (size_t)k;
    }
    size_t got = 0;
    const double deadline = (double)time(NULL) + 5;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        const int ready = poll(&pfd, 1, 1000);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0 && (ready < 0 || (double)time(NULL) > deadline)) {
            close(fd);
            return -1;
        }
        if (ready == 0) continue;
        const ssize_t k = recv(fd, resp + got, cap - 1 - got, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
        if (got == cap - 1) break;
    }
    resp[got] = '\0';
    close(fd);
    return (long)got;
}

static void check_answer(const char *resp, long n, int head) {
    int status = 0;
    if (n < 12 || sscanf(resp, "HTTP/1.%*c %d", &status) != 1) {
        fprintf(stderr, "not an HTTP response: [%.200s]\n", resp);
        abort();
    }
    static const int known[] = {200, 400, 401, 404, 405, 413, 429, 500, 503};
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= status == known[i];
    if (!ok) {
        fprintf(stderr, "status %d is not one the server gives: [%.300s]\n", status, resp);
        abort();
    }
    const char *body = strstr(resp, "\r\n\r\n");
    if (!body || head) return;
    body += 4;
    if (strstr(resp, "text/event-stream")) {
        if (!strstr(body, "data: [DONE]") && !strstr(body, "\"error\"")) {
            fprintf(stderr, "a stream without [DONE] or an error: [%.300s]\n", body);
            abort();
        }
        return;
    }
    if (strstr(resp, "Transfer-Encoding: chunked")) return; /* not a stream: never chunked */
    if (!strstr(resp, "application/json")) return;          /* /metrics */
    cJSON *j = cJSON_Parse(body);
    const int fine =
        j && (status == 200 ? !cJSON_HasObjectItem(j, "error")
                            : cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")));
    if (!fine) {
        fprintf(stderr, "status %d with body [%.300s]\n", status, body);
        abort();
    }
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 32 * 1024) return 0;
    static const char *const methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"};
    const char *method = methods[data[0] % 6];
    size_t i = 1;
    const size_t cap = 3 * size + 512;
    char *req = malloc(cap);
    size_t n = (size_t)snprintf(req, cap, "%s /", method);
    /* the path: up to '\n', percent-encoding what a request line cannot hold */
    for (; i < size && data[i] != '\n'; i++) {
        const uint8_t c = data[i];
        if (c > 0x20 && c < 0x7f && c != '%') req[n++] = (char)c;
        else n += (size_t)snprintf(req + n, cap - n, "%%%02X", c);
    }
    i++;
    n += (size_t)snprintf(req + n, cap - n, " HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    /* headers: "Name: value" lines until an empty one; others dropped */
    while (i < size && data[i] != '\n') {
        size_t e = i;
        while (e < size && data[e] != '\n') e++;
        const char *colon = memchr(data + i, ':', e - i);
        int fine = colon && colon > (const char *)data + i;
        for (size_t k = i; fine && k < e; k++)
            fine = data[k] >= 0x20 && data[k] < 0x7f && !(k < (size_t)(colon - (const char *)data) && data[k] == ' ');
        if (fine && !((e - i >= 15) && !strncasecmp((const char *)data + i, "content-length:", 15)) &&
            !((e - i >= 18) && !strncasecmp((const char *)data + i, "transfer-encoding:", 18)) &&
            !((e - i >= 11) && !strncasecmp((const char *)data + i, "connection:", 11)) &&
            !((e - i >= 5) && !strncasecmp((const char *)data + i, "host:", 5))) {
            memcpy(req + n, data + i, e - i);
            n += e - i;
            req[n++] = '\r', req[n++] = '\n';
        }
        i = e + 1;
    }
    i++;
    const size_t body = i < size ? size - i : 0;
    n += (size_t)snprintf(req + n, cap - n, "Content-Length: %zu\r\n\r\n", body);
    if (body) memcpy(req + n, data + i, body), n += body;
    char *resp = malloc(1 << 20);
    const long got = exchange(req, n, resp, 1 << 20);
    if (got < 0) {
        fprintf(stderr, "no answer in 5 s to [%.300s]\n", req);
        abort();
    }
    check_answer(resp, got, !strcmp(method, "HEAD"));
    free(req), free(resp);
    return 0;
}
