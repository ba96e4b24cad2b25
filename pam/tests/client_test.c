/*
 * client_test: unit tests of mamori_client.c, meant to run under AddressSanitizer and
 * UndefinedBehaviorSanitizer (`make -C pam check`): the reply scanner on well-formed, malformed,
 * truncated, nested, escaped and over-long replies; the request escaping and its overflow; and
 * mamori_call against servers forked by the test (trusted and untrusted peers, time-outs,
 * replies without a newline, with a NUL, too long). Prints one line per failure and a summary;
 * exits 1 on any failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../mamori_client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
static int checks;

#define CHECK(condition)                                                              \
    do {                                                                              \
        checks++;                                                                     \
        if (!(condition)) {                                                           \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #condition);  \
        }                                                                             \
    } while (0)

/* Copies text into an exactly sized heap block, so ASan sees any read past its end. */
static char *exact(const char *text) {
    size_t length = strlen(text) + 1;
    char *copy = malloc(length);
    if (copy == NULL) abort();
    memcpy(copy, text, length);
    return copy;
}

static bool string_of(const char *reply, const char *key, char *out, size_t size) {
    char *copy = exact(reply);
    bool found = mamori_reply_string(copy, key, out, size);
    free(copy);
    return found;
}

static bool string_is(const char *reply, const char *key, const char *expected) {
    char out[256];
    memset(out, 'X', sizeof out);
    return string_of(reply, key, out, sizeof out) && strcmp(out, expected) == 0;
}

static bool string_absent(const char *reply, const char *key) {
    char out[256];
    memset(out, 'X', sizeof out);
    return !string_of(reply, key, out, sizeof out) && out[0] == '\0';
}

static bool bool_of(const char *reply, const char *key) {
    char *copy = exact(reply);
    bool value = mamori_reply_bool(copy, key);
    free(copy);
    return value;
}

static bool contains(const char *reply, const char *key, const char *value) {
    char *copy = exact(reply);
    bool found = mamori_reply_array_contains(copy, key, value);
    free(copy);
    return found;
}

static bool error_is(const char *reply, const char *expected) {
    char *copy = exact(reply);
    char out[64];
    bool found = mamori_reply_error_code(copy, out, sizeof out);
    free(copy);
    if (expected == NULL) return !found && out[0] == '\0';
    return found && strcmp(out, expected) == 0;
}

static void test_strings(void) {
    CHECK(string_is("{\"ticket\":\"abc\"}", "ticket", "abc"));
    CHECK(string_is(" \t\r\n{ \"a\" : 1 , \"ticket\" \n: \"abc\" }", "ticket", "abc"));
    CHECK(string_is("{\"ticket\":\"\"}", "ticket", ""));
    CHECK(string_is("{\"a\":\"x\",\"b\":\"y\",\"b\":\"z\"}", "b", "y")); /* the first of duplicates */
    /* Escapes. */
    CHECK(string_is("{\"m\":\"a\\\"b\\\\c\\/d\"}", "m", "a\"b\\c/d"));
    CHECK(string_is("{\"m\":\"\\n\\t\\r\\b\\f\"}", "m", "\n\t\r\b\f"));
    CHECK(string_is("{\"m\":\"\\u0041\\u007e\\u001f\"}", "m", "A~\x1f"));
    CHECK(string_is("{\"m\":\"\\u00e9\\u3042\"}", "m", "\xc3\xa9\xe3\x81\x82"));
    CHECK(string_is("{\"m\":\"\\uD83D\\uDE00\"}", "m", "\xf0\x9f\x98\x80"));
    CHECK(string_is("{\"m\":\"\\ud83dx\"}", "m", "?x"));         /* a lone high surrogate */
    CHECK(string_is("{\"m\":\"\\ude00\"}", "m", "?"));           /* a lone low surrogate */
    CHECK(string_is("{\"m\":\"\\ud83d\\u0041\"}", "m", "?A"));   /* high, then no low */
    CHECK(string_is("{\"m\":\"\xe7\xa2\xba\xe8\xaa\x8d\"}", "m", "\xe7\xa2\xba\xe8\xaa\x8d")); /* raw UTF-8 */
    CHECK(string_absent("{\"m\":\"\\u0000\"}", "m"));   /* a NUL would cut the value short */
    CHECK(string_absent("{\"m\":\"\\u00g1\"}", "m"));   /* not hex */
    CHECK(string_absent("{\"m\":\"\\u12\"}", "m"));     /* too few digits */
    CHECK(string_absent("{\"m\":\"\\u12", "m"));        /* truncated inside an escape */
    CHECK(string_absent("{\"m\":\"\\x41\"}", "m"));     /* no such escape */
    CHECK(string_absent("{\"m\":\"\\", "m"));           /* truncated after a backslash */
    CHECK(string_absent("{\"m\":\"a\tb\"}", "m"));      /* a raw control byte */
    CHECK(string_absent("{\"m\":\"abc", "m"));          /* unterminated */
    CHECK(string_absent("{\"m\":", "m"));
    CHECK(string_absent("{\"m\"", "m"));
    CHECK(string_absent("{\"m", "m"));
    CHECK(string_absent("{", "m"));
    CHECK(string_absent("", "m"));
    CHECK(string_absent("[\"m\",\"x\"]", "m"));         /* not an object */
    CHECK(string_absent("\"m\":\"x\"", "m"));
    CHECK(string_absent("{\"m\":12}", "m"));            /* not a string */
    CHECK(string_absent("{\"m\":null}", "m"));
    CHECK(string_absent("{\"m\":{\"a\":\"b\"}}", "m"));
    CHECK(string_absent("{\"m\" \"x\"}", "m"));         /* no colon */
    CHECK(string_absent("{\"a\":1 \"m\":\"x\"}", "m")); /* no comma */
    CHECK(string_absent("{\"a\":,\"m\":\"x\"}", "m"));  /* an empty value */
    CHECK(string_absent("{\"a\":\"x\"}", "m"));
    CHECK(string_absent("{\"mm\":\"x\"}", "m"));
    CHECK(string_absent("{\"M\":\"x\"}", "m"));
    /* Only top-level keys count: not in nested objects, arrays or inside strings. */
    CHECK(string_absent("{\"x\":{\"ticket\":\"a\"}}", "ticket"));
    CHECK(string_is("{\"x\":{\"ticket\":\"a\"},\"ticket\":\"b\"}", "ticket", "b"));
    CHECK(string_is("{\"x\":[{\"ticket\":\"a\"},\"]}\"],\"ticket\":\"b\"}", "ticket", "b"));
    CHECK(string_absent("{\"x\":\"\\\"ticket\\\":\\\"a\\\"\"}", "ticket"));
    CHECK(string_is("{\"x\":\"}\\\"{\",\"ticket\":\"b\"}", "ticket", "b"));
    CHECK(string_absent("{\"x\":{\"a\":[1,2,{\"b\":\"}\"}]", "ticket")); /* unbalanced */
    CHECK(string_absent("{\"x\":\"a\\\"}", "ticket"));                  /* string never closed */
    /* Sizes: a value fills the buffer exactly, or is one byte too long. */
    char out[4];
    CHECK(string_of("{\"m\":\"abc\"}", "m", out, sizeof out) && strcmp(out, "abc") == 0);
    memset(out, 'X', sizeof out);
    CHECK(!string_of("{\"m\":\"abcd\"}", "m", out, sizeof out) && out[0] == '\0' && out[1] == '\0');
    CHECK(!string_of("{\"m\":\"ab\\u3042\"}", "m", out, sizeof out) && out[0] == '\0'); /* 5 bytes of UTF-8 */
    CHECK(string_of("{\"m\":\"a\\u00e9\"}", "m", out, sizeof out) && strcmp(out, "a\xc3\xa9") == 0);
    char one[1];
    CHECK(!string_of("{\"m\":\"a\"}", "m", one, sizeof one) && one[0] == '\0');
    CHECK(string_of("{\"m\":\"\"}", "m", one, sizeof one) && one[0] == '\0');
    CHECK(!string_of("{\"m\":\"a\"}", "m", out, 0));
}

static void test_bools_errors_arrays(void) {
    CHECK(bool_of("{\"ok\":true}", "ok"));
    CHECK(bool_of("{\"ok\" : true , \"x\":1}", "ok"));
    CHECK(bool_of("{\"ok\":true\n}", "ok"));
    CHECK(bool_of("{\"ok\":true", "ok")); /* truncated right after: still the literal */
    CHECK(!bool_of("{\"ok\":false}", "ok"));
    CHECK(!bool_of("{\"ok\":\"true\"}", "ok"));
    CHECK(!bool_of("{\"ok\":truex}", "ok"));
    CHECK(!bool_of("{\"ok\":tru}", "ok"));
    CHECK(!bool_of("{\"ok\":1}", "ok"));
    CHECK(!bool_of("{\"x\":{\"ok\":true}}", "ok"));
    CHECK(!bool_of("{\"x\":\"\\\"ok\\\":true\"}", "ok"));
    CHECK(!bool_of("{}", "ok"));
    CHECK(!bool_of("", "ok"));
    CHECK(mamori_reply_ok("{\"ok\":true,\"ticket\":\"t\"}"));

    CHECK(error_is("{\"error\":{\"code\":\"busy\",\"message\":\"Busy.\"},\"ok\":false}", "busy"));
    CHECK(error_is("{\"ok\":false,\"error\":{\"message\":\"a \\\"code\\\"\",\"code\":\"auth_failed\"}}", "auth_failed"));
    CHECK(error_is("{\"error\":\"busy\",\"ok\":false}", NULL));
    CHECK(error_is("{\"error\":{\"message\":\"x\"},\"ok\":false}", NULL));
    CHECK(error_is("{\"error\":{\"code\":7}}", NULL));
    CHECK(error_is("{\"x\":{\"error\":{\"code\":\"busy\"}}}", NULL));
    CHECK(error_is("{\"error\":{\"code\":\"busy", NULL));
    CHECK(error_is("{\"error\":{\"code\":\"this-error-code-is-much-longer-than-sixty-four-bytes-so-it-does-not-fit\"}}", NULL));
    CHECK(error_is("{\"ok\":true}", NULL));

    const char *status = "{\"audit_chain\":{\"checked\":true,\"login_factors\":[\"nope\"]},\"login_factors\":[\"password\",\"totp\"],\"ok\":true}";
    CHECK(contains(status, "login_factors", "totp"));
    CHECK(contains(status, "login_factors", "password"));
    CHECK(!contains(status, "login_factors", "nope"));
    CHECK(!contains("{\"login_factors\":[\"password\"]}", "login_factors", "totp"));
    CHECK(!contains("{\"login_factors\":[]}", "login_factors", "totp"));
    CHECK(!contains("{\"login_factors\":\"totp\"}", "login_factors", "totp"));
    CHECK(!contains("{\"login_factors\":[1,\"totp\"]}", "login_factors", "totp"));
    CHECK(!contains("{\"login_factors\":[[\"totp\"]]}", "login_factors", "totp"));
    CHECK(!contains("{\"login_factors\":[\"password\" \"totp\"]}", "login_factors", "totp"));
    CHECK(!contains("{\"login_factors\":[\"password\",", "login_factors", "totp"));
    CHECK(!contains("{\"login_factors\":[\"pass", "login_factors", "totp"));
    CHECK(contains("{\"f\":[\"a-very-long-item-of-more-than-sixty-four-bytes-that-does-not-fit-into-the-item\",\"totp\"]}", "f", "totp"));
    CHECK(contains("{\"f\":[ \"t\\u006ftp\" ]}", "f", "totp"));
}

static void test_malformed_and_deep(void) {
    /* Deep nesting is skipped iteratively (no recursion to overflow). */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    if (deep == NULL) abort();
    size_t n = 0;
    n += (size_t)sprintf(deep + n, "{\"x\":");
    for (size_t i = 0; i < depth; i++) deep[n++] = '[';
    for (size_t i = 0; i < depth; i++) deep[n++] = ']';
    n += (size_t)sprintf(deep + n, ",\"ticket\":\"t\"}");
    deep[n] = '\0';
    CHECK(string_is(deep, "ticket", "t"));
    deep[n - 15] = '\0'; /* cut inside the brackets */
    CHECK(string_absent(deep, "ticket"));
    free(deep);

    /* Every prefix of a reply: no read past its end, and a correct answer only when complete. */
    const char *reply = "{\"error\":{\"code\":\"busy\",\"message\":\"a\\\"b\\u3042\"},\"ok\":true,\"ticket\":\"9c1f\",\"f\":[\"totp\"]}";
    size_t length = strlen(reply);
    for (size_t cut = 0; cut < length; cut++) {
        char *prefix = malloc(cut + 1);
        if (prefix == NULL) abort();
        memcpy(prefix, reply, cut);
        prefix[cut] = '\0';
        char out[64];
        bool found = mamori_reply_string(prefix, "ticket", out, sizeof out);
        CHECK(!found || (cut >= length - 15 && strcmp(out, "9c1f") == 0));
        (void)mamori_reply_bool(prefix, "ok");
        (void)mamori_reply_error_code(prefix, out, sizeof out);
        (void)mamori_reply_array_contains(prefix, "f", "totp");
        free(prefix);
    }
    /* Every single byte in every position of a small reply: nothing crashes. */
    const char *base = "{\"a\":[1,{\"b\":\"c\\\\\"}],\"ticket\":\"t\\u0041\"}";
    size_t base_length = strlen(base);
    for (size_t at = 0; at < base_length; at++) {
        for (int byte = 1; byte < 256; byte++) {
            char *variant = exact(base);
            variant[at] = (char)byte;
            char out[16];
            (void)mamori_reply_string(variant, "ticket", out, sizeof out);
            (void)mamori_reply_bool(variant, "a");
            (void)mamori_reply_error_code(variant, out, sizeof out);
            (void)mamori_reply_array_contains(variant, "a", "c");
            free(variant);
        }
    }
}

/* Builds {"op":"t","k":value} and reads value back through the scanner. */
static bool round_trip(const char *value) {
    struct mamori_request request;
    mamori_request_begin(&request, "t");
    mamori_request_string(&request, "k", value);
    mamori_request_end(&request);
    if (request.overflow) return false;
    char *text = exact(request.text);
    char *back = malloc(MAMORI_REQUEST_SIZE);
    if (back == NULL) abort();
    bool same = request.text[request.length - 1] == '\n' && memchr(request.text, '\n', request.length - 1) == NULL &&
                mamori_reply_string(text, "k", back, MAMORI_REQUEST_SIZE) && strcmp(back, value) == 0;
    free(back);
    free(text);
    mamori_request_wipe(&request);
    return same;
}

static void test_requests(void) {
    struct mamori_request request;
    mamori_request_begin(&request, "authenticate");
    mamori_request_string(&request, "user", "tanaka");
    mamori_request_string(&request, "password", "a\"b\\c\x01\x1f\x7f\xe7\xa2\xba");
    mamori_request_string(&request, "code", NULL);
    mamori_request_string(&request, "k\"ey", "v");
    mamori_request_end(&request);
    CHECK(!request.overflow);
    CHECK(strcmp(request.text, "{\"op\":\"authenticate\",\"user\":\"tanaka\",\"password\":\"a\\\"b\\\\c\\u0001\\u001f\\u007f\xe7\xa2\xba\",\"k\\\"ey\":\"v\"}\n") == 0);
    CHECK(request.length == strlen(request.text));
    mamori_request_wipe(&request);
    CHECK(request.length == 0);

    bool zero = true;
    for (size_t i = 0; i < sizeof request.text; i++) zero = zero && request.text[i] == '\0';
    CHECK(zero);

    /* Whole numbers, and the deadline: the endpoint's timeout from now on the wall clock. */
    mamori_request_begin(&request, "status");
    mamori_request_integer(&request, "n", -42);
    mamori_request_end(&request);
    CHECK(strcmp(request.text, "{\"op\":\"status\",\"n\":-42}\n") == 0);
    struct mamori_endpoint endpoint = {.socket_path = "/nowhere", .timeout_ms = 5000};
    struct timespec before, after;
    clock_gettime(CLOCK_REALTIME, &before);
    mamori_request_begin(&request, "status");
    mamori_request_deadline(&request, &endpoint);
    mamori_request_end(&request);
    clock_gettime(CLOCK_REALTIME, &after);
    long long deadline = -1;
    CHECK(sscanf(request.text, "{\"op\":\"status\",\"deadline\":%lld}", &deadline) == 1);
    CHECK(deadline >= (long long)before.tv_sec * 1000 + before.tv_nsec / 1000000 + 5000);
    CHECK(deadline <= (long long)after.tv_sec * 1000 + after.tv_nsec / 1000000 + 5000);

    /* Every byte but NUL survives escaping and unescaping. */
    char all[256];
    for (int i = 1; i < 256; i++) all[i - 1] = (char)i;
    all[255] = '\0';
    CHECK(round_trip(all));
    CHECK(round_trip(""));
    CHECK(round_trip("\\u0041 is not an escape here"));

    /* The limit: {"op":"t","k":"…"}\n is 18 bytes around the value, and the text keeps a NUL. */
    size_t room = MAMORI_REQUEST_SIZE - 1 - 18;
    char *value = malloc(room + 2);
    if (value == NULL) abort();
    memset(value, 'p', room + 1);
    value[room] = '\0';
    mamori_request_begin(&request, "t");
    mamori_request_string(&request, "k", value);
    mamori_request_end(&request);
    CHECK(!request.overflow && request.length == MAMORI_REQUEST_SIZE - 1);
    value[room] = 'p';
    value[room + 1] = '\0';
    mamori_request_begin(&request, "t");
    mamori_request_string(&request, "k", value);
    mamori_request_end(&request);
    CHECK(request.overflow);
    CHECK(request.length < MAMORI_REQUEST_SIZE && request.text[request.length] == '\0');
    /* An escape that would straddle the end overflows too, and nothing more is appended. */
    memset(value, '"', room);
    value[room] = '\0';
    mamori_request_begin(&request, "t");
    mamori_request_string(&request, "k", value);
    CHECK(request.overflow);
    size_t stopped = request.length;
    mamori_request_string(&request, "more", "x");
    mamori_request_end(&request);
    CHECK(request.overflow && request.length == stopped);
    free(value);
    /* An overflowed request is never sent. */
    struct mamori_endpoint nowhere = {.socket_path = "/nonexistent/mamori.sock", .timeout_ms = 100};
    char reply[16];
    uid_t peer = 0;
    CHECK(mamori_call(&nowhere, &request, reply, sizeof reply, &peer) == MAMORI_TOO_LONG && peer == (uid_t)-1);
    mamori_request_wipe(&request);
}

/* ---- mamori_call against servers of the test's own ---- */

static char folder[64];

enum behaviour { ANSWER, ANSWER_CRLF, NO_NEWLINE, WITH_NUL, TOO_LONG, SILENT, COUNT_BYTES, TWO_LINES, TRAILING };

/* Forks a server on folder/NAME that serves one connection; as uid when uid is not -1 (root only). */
static pid_t serve(const char *path, enum behaviour behaviour, uid_t uid, int count_pipe) {
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0) abort();
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    snprintf(address.sun_path, sizeof address.sun_path, "%s", path);
    unlink(path);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0) abort();
    if (chmod(path, 0777) != 0) abort();
    /* The child says when it listens: a connect before listen() is refused, and the peer
     * credentials the client reads are the ones of the process that called listen(). */
    int ready[2];
    if (pipe(ready) != 0) abort();
    pid_t child = fork();
    if (child < 0) abort();
    if (child > 0) {
        close(listener);
        close(ready[1]);
        char byte = 0;
        if (read(ready[0], &byte, 1) != 1) byte = 0;
        close(ready[0]);
        if (byte != 'L') {
            fprintf(stderr, "serve: the test server did not start\n");
            abort();
        }
        return child;
    }
    close(ready[0]);
    alarm(10);
    if (uid != (uid_t)-1 && (setgid((gid_t)uid) != 0 || setuid(uid) != 0)) _exit(3);
    if (listen(listener, 4) != 0) _exit(4);
    if (write(ready[1], "L", 1) != 1) _exit(4);
    close(ready[1]);
    int connection = accept(listener, NULL, NULL);
    if (connection < 0) _exit(5);
    char buffer[4096];
    size_t got = 0;
    if (behaviour == COUNT_BYTES) {
        /* Counts what the client sends until it closes. */
        for (;;) {
            ssize_t n = read(connection, buffer, sizeof buffer);
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (write(count_pipe, &got, sizeof got) != (ssize_t)sizeof got) _exit(6);
        _exit(0);
    }
    while (got == 0 || buffer[got - 1] != '\n') {
        ssize_t n = read(connection, buffer + got, sizeof buffer - got);
        if (n <= 0 || (got += (size_t)n) == sizeof buffer) _exit(7);
    }
    const char *answer = "{\"ok\":true,\"ticket\":\"abc\"}\n";
    switch (behaviour) {
    case ANSWER: break;
    case ANSWER_CRLF: answer = "{\"ok\":true,\"ticket\":\"abc\"}\r\n"; break;
    case NO_NEWLINE: answer = "{\"ok\":true,\"ticket\":\"abc\"}"; break;
    case WITH_NUL: if (write(connection, "{\"ok\":true\0,\"x\":1}\n", 19) != 19) _exit(8); _exit(0);
    case TOO_LONG: {
        char *line = malloc(MAMORI_REPLY_SIZE + 10);
        if (line == NULL) _exit(9);
        memset(line, ' ', MAMORI_REPLY_SIZE + 10);
        line[MAMORI_REPLY_SIZE + 9] = '\n';
        size_t sent = 0;
        while (sent < MAMORI_REPLY_SIZE + 10) {
            ssize_t n = write(connection, line + sent, MAMORI_REPLY_SIZE + 10 - sent);
            if (n <= 0) _exit(0); /* the client gave up: expected */
            sent += (size_t)n;
        }
        _exit(0);
    }
    case SILENT: sleep(5); _exit(0);
    case COUNT_BYTES: break;
    case TWO_LINES: {
        /* One connection, two requests: each answered in turn (a PAM phase's status, then authenticate). */
        if (write(connection, answer, strlen(answer)) != (ssize_t)strlen(answer)) _exit(10);
        got = 0;
        while (got == 0 || buffer[got - 1] != '\n') {
            ssize_t n = read(connection, buffer + got, sizeof buffer - got);
            if (n <= 0 || (got += (size_t)n) == sizeof buffer) _exit(7);
        }
        answer = "{\"ok\":true,\"ticket\":\"def\"}\n";
        break;
    }
    case TRAILING: answer = "{\"ok\":true,\"ticket\":\"abc\"}\n{\"ok\":true}\n"; break;
    }
    size_t length = strlen(answer);
    if (write(connection, answer, length) != (ssize_t)length) _exit(10);
    _exit(0);
}

static void reap(pid_t child) {
    int status = 0;
    kill(child, SIGKILL);
    (void)waitpid(child, &status, 0);
}

static void test_calls(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/s.sock", folder);
    struct mamori_request request;
    mamori_request_begin(&request, "status");
    mamori_request_end(&request);
    char *reply = malloc(MAMORI_REPLY_SIZE);
    if (reply == NULL) abort();
    uid_t me = geteuid();
    struct mamori_endpoint endpoint = {.socket_path = path, .timeout_ms = 3000, .trust_uid = me != 0, .trusted_uid = me};
    uid_t peer = 0;

    pid_t child = serve(path, ANSWER, (uid_t)-1, -1);
    CHECK(mamori_call(&endpoint, &request, reply, MAMORI_REPLY_SIZE, &peer) == MAMORI_OK);
    CHECK(strcmp(reply, "{\"ok\":true,\"ticket\":\"abc\"}") == 0 && peer == me);
    reap(child);

    child = serve(path, ANSWER_CRLF, (uid_t)-1, -1);
    CHECK(mamori_call(&endpoint, &request, reply, MAMORI_REPLY_SIZE, NULL) == MAMORI_OK);
    CHECK(strcmp(reply, "{\"ok\":true,\"ticket\":\"abc\"}") == 0);
    reap(child);

    child = serve(path, NO_NEWLINE, (uid_t)-1, -1);
    CHECK(mamori_call(&endpoint, &request, reply, MAMORI_REPLY_SIZE, NULL) == MAMORI_PROTOCOL && reply[0] == '\0');
    reap(child);

    child = serve(path, WITH_NUL, (uid_t)-1, -1);
    CHECK(mamori_call(&endpoint, &request, reply, MAMORI_REPLY_SIZE, NULL) == MAMORI_PROTOCOL && reply[0] == '\0');
    reap(child);

    child = serve(path, TOO_LONG, (uid_t)-1, -1);
    CHECK(mamori_call(&endpoint, &request, reply, MAMORI_REPLY_SIZE, NULL) == MAMORI_PROTOCOL && reply[0] == '\0');
    reap(child);

    /* A small reply buffer: a reply that does not fit is a protocol error, never an overrun. */
    char small[8];
    child = serve(path, ANSWER, (uid_t)-1, -1);
    CHECK(mamori_call(&endpoint, &request, small, sizeof small, NULL) == MAMORI_PROTOCOL && small[0] == '\0');
    reap(child);

    /* A phase's requests over one connection: the second is answered on the same one. */
    struct mamori_connection connection;
    child = serve(path, TWO_LINES, (uid_t)-1, -1);
    CHECK(mamori_open(&endpoint, &connection, &peer) == MAMORI_OK && connection.fd >= 0 && peer == me);
    CHECK(mamori_exchange(&connection, &endpoint, &request, reply, MAMORI_REPLY_SIZE) == MAMORI_OK);
    CHECK(strcmp(reply, "{\"ok\":true,\"ticket\":\"abc\"}") == 0);
    CHECK(mamori_exchange(&connection, &endpoint, &request, reply, MAMORI_REPLY_SIZE) == MAMORI_OK);
    CHECK(strcmp(reply, "{\"ok\":true,\"ticket\":\"def\"}") == 0);
    mamori_close(&connection);
    mamori_close(&connection);
    CHECK(connection.fd == -1);
    CHECK(mamori_exchange(&connection, &endpoint, &request, reply, MAMORI_REPLY_SIZE) == MAMORI_UNREACHABLE);
    reap(child);

    /* More than one line for one request: the stream is not what it should be; the connection goes. */
    child = serve(path, TRAILING, (uid_t)-1, -1);
    CHECK(mamori_open(&endpoint, &connection, NULL) == MAMORI_OK);
    CHECK(mamori_exchange(&connection, &endpoint, &request, reply, MAMORI_REPLY_SIZE) == MAMORI_PROTOCOL);
    CHECK(reply[0] == '\0' && connection.fd == -1);
    reap(child);

    struct timespec before, after;
    endpoint.timeout_ms = 300;
    child = serve(path, SILENT, (uid_t)-1, -1);
    clock_gettime(CLOCK_MONOTONIC, &before);
    CHECK(mamori_call(&endpoint, &request, reply, MAMORI_REPLY_SIZE, NULL) == MAMORI_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &after);
    long waited = (after.tv_sec - before.tv_sec) * 1000L + (after.tv_nsec - before.tv_nsec) / 1000000L;
    CHECK(waited >= 290 && waited < 1500);
    reap(child);
    endpoint.timeout_ms = 3000;

    unlink(path);
    CHECK(mamori_call(&endpoint, &request, reply, MAMORI_REPLY_SIZE, &peer) == MAMORI_UNREACHABLE && peer == (uid_t)-1);
    struct mamori_endpoint relative = {.socket_path = "mamori.sock", .timeout_ms = 100};
    CHECK(mamori_call(&relative, &request, reply, MAMORI_REPLY_SIZE, NULL) == MAMORI_UNREACHABLE);
    char long_path[200];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[0] = '/';
    long_path[sizeof long_path - 1] = '\0';
    struct mamori_endpoint too_long = {.socket_path = long_path, .timeout_ms = 100};
    CHECK(mamori_call(&too_long, &request, reply, MAMORI_REPLY_SIZE, NULL) == MAMORI_UNREACHABLE);

    /* Untrusted servers: nothing is sent. As root the server drops to uid 65534; otherwise the
     * test's own uid is simply not trusted. */
    uid_t stranger = me == 0 ? 65534 : (uid_t)-1;
    struct mamori_endpoint wary = {.socket_path = path, .timeout_ms = 300, .trust_uid = me == 0, .trusted_uid = 12345};
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) abort();
    child = serve(path, COUNT_BYTES, stranger, pipe_fds[1]);
    CHECK(mamori_call(&wary, &request, reply, MAMORI_REPLY_SIZE, &peer) == MAMORI_UNTRUSTED);
    CHECK(peer == (me == 0 ? 65534 : me));
    size_t received = 99;
    CHECK(read(pipe_fds[0], &received, sizeof received) == (ssize_t)sizeof received && received == 0);
    reap(child);
    if (me == 0) {
        /* daemon_user's uid is trusted. */
        wary.trusted_uid = 65534;
        child = serve(path, COUNT_BYTES, stranger, pipe_fds[1]);
        CHECK(mamori_call(&wary, &request, reply, 32, &peer) != MAMORI_UNTRUSTED && peer == 65534);
        received = 0;
        CHECK(read(pipe_fds[0], &received, sizeof received) == (ssize_t)sizeof received && received == request.length);
        reap(child);
    }
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    unlink(path);
    free(reply);
}

/* Writes text to path with mode (whatever the umask). */
static void write_file(const char *path, const char *text, mode_t mode) {
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fchmod(fd, mode) != 0) abort();
    close(fd);
}

/* The login factors notice beside the socket: believed only whole, and only from its owner. */
static void test_notice(void) {
    char socket_path[128], path[160], link_target[160];
    snprintf(socket_path, sizeof socket_path, "%s/n.sock", folder);
    snprintf(path, sizeof path, "%s.factors", socket_path);
    snprintf(link_target, sizeof link_target, "%s/elsewhere", folder);
    uid_t me = geteuid();
    struct mamori_endpoint endpoint = {.socket_path = socket_path, .timeout_ms = 1000, .trust_uid = me != 0, .trusted_uid = me};
    char notice[256];
    const char *good = "{\"login_factors\":[\"password\",\"totp\"],\"policy_revision\":\"r1\",\"zone\":\"mynumber\"}\n";

    unlink(path);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_UNREACHABLE && notice[0] == '\0');

    write_file(path, good, 0644);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_OK);
    CHECK(mamori_reply_array_contains(notice, "login_factors", "totp") && strchr(notice, '\n') == NULL);
    /* Exactly big enough: the line and its NUL (the newline is dropped). */
    CHECK(mamori_read_notice(&endpoint, notice, strlen(good) + 1) == MAMORI_OK);
    CHECK(mamori_read_notice(&endpoint, notice, strlen(good)) == MAMORI_PROTOCOL && notice[0] == '\0');

    /* Writable by others, or by the group: someone else may have written it. */
    write_file(path, good, 0666);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_UNTRUSTED && notice[0] == '\0');
    write_file(path, good, 0664);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_UNTRUSTED);

    /* Owned by another user: believed only when that is the daemon's user. */
    if (me == 0) {
        write_file(path, good, 0644);
        CHECK(chown(path, 65534, 65534) == 0);
        CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_UNTRUSTED);
        struct mamori_endpoint daemon_user = {.socket_path = socket_path, .timeout_ms = 1000, .trust_uid = true, .trusted_uid = 65534};
        CHECK(mamori_read_notice(&daemon_user, notice, sizeof notice) == MAMORI_OK);
    } else {
        struct mamori_endpoint root_only = {.socket_path = socket_path, .timeout_ms = 1000, .trust_uid = false};
        write_file(path, good, 0644);
        CHECK(mamori_read_notice(&root_only, notice, sizeof notice) == MAMORI_UNTRUSTED);
    }

    /* A second name for the file: a hard link to another instance's notice is not believed. */
    write_file(path, good, 0644);
    CHECK(link(path, link_target) == 0);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_UNTRUSTED);
    unlink(link_target);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_OK);

    /* Never through a link, never a FIFO (which would also block a reader). */
    unlink(path);
    write_file(link_target, good, 0644);
    CHECK(symlink(link_target, path) == 0);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_UNTRUSTED);
    unlink(path);
    unlink(link_target);
    CHECK(mkfifo(path, 0644) == 0);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_UNTRUSTED);
    unlink(path);

    /* Not one line with a login_factors array: not believed. */
    const char *bad[] = {
        "", "\n", "{\"login_factors\":[\"password\"]}",  /* no newline */
        "{\"login_factors\":[\"password\"]}\n{\"login_factors\":[]}\n", "{\"zone\":\"mynumber\"}\n",
        "{\"login_factors\":\"totp\"}\n", "{\"login_factors\":[\"password\"\n", "not json\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i], 0644);
        CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_PROTOCOL && notice[0] == '\0');
    }
    /* A NUL inside. */
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    static const char with_nul[] = "{\"login_factors\":[]}\0x\n";
    CHECK(fd >= 0 && write(fd, with_nul, sizeof with_nul - 1) == (ssize_t)(sizeof with_nul - 1));
    if (fd >= 0) close(fd);
    CHECK(mamori_read_notice(&endpoint, notice, sizeof notice) == MAMORI_PROTOCOL);
    unlink(path);

    /* A socket path with no room for the suffix. */
    char long_path[200];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[0] = '/';
    long_path[sizeof long_path - 1] = '\0';
    struct mamori_endpoint too_long = {.socket_path = long_path, .timeout_ms = 1000};
    CHECK(mamori_read_notice(&too_long, notice, sizeof notice) == MAMORI_TOO_LONG);
}

int main(void) {
    alarm(120); /* a server child that died before answering must not hang the test */
    snprintf(folder, sizeof folder, "/tmp/mamori-client-test-XXXXXX");
    if (mkdtemp(folder) == NULL || chmod(folder, 0711) != 0) {
        perror("mkdtemp");
        return 2;
    }
    test_strings();
    test_bools_errors_arrays();
    test_malformed_and_deep();
    test_requests();
    test_calls();
    test_notice();
    rmdir(folder);
    printf("client_test: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
