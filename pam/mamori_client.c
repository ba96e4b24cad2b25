#include "mamori_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- building requests ---- */

static void append(struct mamori_request *request, const char *text, size_t length) {
    if (request->overflow || request->length + length + 1 > sizeof request->text) {
        request->overflow = true;
        return;
    }
    memcpy(request->text + request->length, text, length);
    request->length += length;
    request->text[request->length] = '\0';
}

static void append_escaped(struct mamori_request *request, const char *value) {
    static const char hex[] = "0123456789abcdef";
    append(request, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        char escaped[6];
        if (*p == '"' || *p == '\\') {
            escaped[0] = '\\';
            escaped[1] = (char)*p;
            append(request, escaped, 2);
        } else if (*p < 0x20) {
            escaped[0] = '\\'; escaped[1] = 'u'; escaped[2] = '0'; escaped[3] = '0';
            escaped[4] = hex[*p >> 4]; escaped[5] = hex[*p & 0x0F];
            append(request, escaped, 6);
        } else {
            append(request, (const char *)p, 1);
        }
    }
    append(request, "\"", 1);
}

void mamori_request_begin(struct mamori_request *request, const char *op) {
    request->length = 0;
    request->overflow = false;
    request->text[0] = '\0';
    append(request, "{\"op\":", 6);
    append_escaped(request, op);
}

void mamori_request_string(struct mamori_request *request, const char *key, const char *value) {
    if (value == NULL) return;
    append(request, ",", 1);
    append_escaped(request, key);
    append(request, ":", 1);
    append_escaped(request, value);
}

void mamori_request_end(struct mamori_request *request) { append(request, "}\n", 2); }

void mamori_request_wipe(struct mamori_request *request) {
    explicit_bzero(request->text, sizeof request->text);
    request->length = 0;
}

/* ---- the call ---- */

static long remaining_ms(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000L + (deadline->tv_nsec - now.tv_nsec) / 1000000L;
    return ms > 0 ? ms : 0;
}

static bool wait_for(int fd, short events, const struct timespec *deadline) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int ready = poll(&p, 1, (int)remaining_ms(deadline));
        if (ready > 0) return true;
        if (ready == 0) return false;
        if (errno != EINTR) return false;
    }
}

enum mamori_status mamori_call(const char *socket_path, int timeout_ms, const struct mamori_request *request,
                               char *reply, size_t reply_size) {
    if (request->overflow) return MAMORI_TOO_LONG;
    if (reply_size == 0) return MAMORI_PROTOCOL;
    reply[0] = '\0';
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec += 1; deadline.tv_nsec -= 1000000000L; }

    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(socket_path) >= sizeof address.sun_path) return MAMORI_UNREACHABLE;
    memcpy(address.sun_path, socket_path, strlen(socket_path) + 1);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return MAMORI_UNREACHABLE;
    enum mamori_status status = MAMORI_OK;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) { close(fd); return MAMORI_UNREACHABLE; }
        if (!wait_for(fd, POLLOUT, &deadline)) { close(fd); return MAMORI_TIMEOUT; }
        int error = 0;
        socklen_t length = sizeof error;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) { close(fd); return MAMORI_UNREACHABLE; }
    }
    size_t written = 0;
    while (written < request->length) {
        if (!wait_for(fd, POLLOUT, &deadline)) { status = MAMORI_TIMEOUT; goto done; }
        ssize_t n = send(fd, request->text + written, request->length - written, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) { status = MAMORI_UNREACHABLE; goto done; }
        written += (size_t)n;
    }
    size_t used = 0;
    for (;;) {
        if (used + 1 >= reply_size) { status = MAMORI_PROTOCOL; goto done; }
        if (!wait_for(fd, POLLIN, &deadline)) { status = MAMORI_TIMEOUT; goto done; }
        ssize_t n = recv(fd, reply + used, reply_size - used - 1, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) { status = MAMORI_PROTOCOL; goto done; }
        used += (size_t)n;
        reply[used] = '\0';
        char *newline = memchr(reply, '\n', used);
        if (newline != NULL) { *newline = '\0'; break; }
    }
done:
    close(fd);
    return status;
}

/* ---- reading replies: a small scanner over one JSON object ---- */

/* Skips white space. */
static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return p;
}

/* Skips a string starting at its opening quote; returns the character after the closing quote. */
static const char *skip_string(const char *p) {
    if (*p != '"') return NULL;
    for (p++; *p != '\0'; p++) {
        if (*p == '\\') {
            if (p[1] == '\0') return NULL;
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Skips any value; returns the character after it, or NULL if malformed. */
static const char *skip_value(const char *p) {
    p = skip_space(p);
    if (*p == '"') return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p != '\0') {
            if (*p == '"') {
                p = skip_string(p);
                if (p == NULL) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') {
                depth--;
                if (depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (*p != '\0' && *p != ',' && *p != '}' && *p != ']' && *p != ' ') p++;
    return p;
}

/* Finds the value of a key in the object starting at object (its '{'); NULL if absent. */
static const char *find_key(const char *object, const char *key) {
    const char *p = skip_space(object);
    if (*p != '{') return NULL;
    p = skip_space(p + 1);
    size_t key_length = strlen(key);
    while (*p == '"') {
        const char *end = skip_string(p);
        if (end == NULL) return NULL;
        bool match = (size_t)(end - p - 2) == key_length && memcmp(p + 1, key, key_length) == 0;
        p = skip_space(end);
        if (*p != ':') return NULL;
        const char *value = skip_space(p + 1);
        if (match) return value;
        p = skip_value(value);
        if (p == NULL) return NULL;
        p = skip_space(p);
        if (*p == ',') p = skip_space(p + 1);
    }
    return NULL;
}

/* Unescapes the string at p (its opening quote) into out; \uXXXX above ASCII becomes '?'. */
static bool copy_string(const char *p, char *out, size_t out_size) {
    if (p == NULL || *p != '"' || out_size == 0) return false;
    size_t used = 0;
    for (p++; *p != '"'; p++) {
        if (*p == '\0' || used + 1 >= out_size) return false;
        char c = *p;
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'u':
                for (int i = 1; i <= 4; i++) if (p[i] == '\0') return false;
                c = '?';
                p += 4;
                break;
            case '\0': return false;
            default: c = *p;
            }
        }
        out[used++] = c;
    }
    out[used] = '\0';
    return true;
}

bool mamori_reply_ok(const char *reply) { return mamori_reply_bool(reply, "ok"); }

bool mamori_reply_string(const char *reply, const char *key, char *out, size_t out_size) {
    return copy_string(find_key(reply, key), out, out_size);
}

bool mamori_reply_bool(const char *reply, const char *key) {
    const char *value = find_key(reply, key);
    return value != NULL && strncmp(value, "true", 4) == 0;
}

bool mamori_reply_error_code(const char *reply, char *out, size_t out_size) {
    const char *error = find_key(reply, "error");
    if (error == NULL || *error != '{') return false;
    return copy_string(find_key(error, "code"), out, out_size);
}

bool mamori_reply_array_contains(const char *reply, const char *key, const char *value) {
    const char *p = find_key(reply, key);
    if (p == NULL || *p != '[') return false;
    p = skip_space(p + 1);
    char item[64];
    while (*p == '"') {
        if (copy_string(p, item, sizeof item) && strcmp(item, value) == 0) return true;
        p = skip_string(p);
        if (p == NULL) return false;
        p = skip_space(p);
        if (*p == ',') p = skip_space(p + 1);
    }
    return false;
}
