#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* struct ucred */
#endif
#include "mamori_client.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- building requests ---- */

static void append(struct mamori_request *request, const char *text, size_t length) {
    if (request->overflow || length >= sizeof request->text - request->length) {
        request->overflow = true;
        return;
    }
    memcpy(request->text + request->length, text, length);
    request->length += length;
    request->text[request->length] = '\0';
}

/* A JSON string: '"' and '\' escaped, control bytes and DEL as \u00XX; other bytes as they are. */
static void append_escaped(struct mamori_request *request, const char *value) {
    static const char hex[] = "0123456789abcdef";
    append(request, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0' && !request->overflow; p++) {
        char escaped[6];
        if (*p == '"' || *p == '\\') {
            escaped[0] = '\\';
            escaped[1] = (char)*p;
            append(request, escaped, 2);
        } else if (*p < 0x20 || *p == 0x7F) {
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

void mamori_request_integer(struct mamori_request *request, const char *key, long long value) {
    char digits[24];
    int length = snprintf(digits, sizeof digits, "%lld", value);
    if (length <= 0 || (size_t)length >= sizeof digits) {
        request->overflow = true;
        return;
    }
    append(request, ",", 1);
    append_escaped(request, key);
    append(request, ":", 1);
    append(request, digits, (size_t)length);
}

void mamori_request_deadline(struct mamori_request *request, const struct mamori_endpoint *endpoint) {
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) return; /* then mamorid waits as long as it takes */
    mamori_request_integer(request, "deadline",
                           (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + endpoint->timeout_ms);
}

void mamori_request_end(struct mamori_request *request) { append(request, "}\n", 2); }

void mamori_request_wipe(struct mamori_request *request) {
    explicit_bzero(request->text, sizeof request->text);
    request->length = 0;
}

/* ---- the call ---- */

static long remaining_ms(const struct timespec *deadline) {
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) return 0;
    long ms = (long)(deadline->tv_sec - now.tv_sec) * 1000L + (deadline->tv_nsec - now.tv_nsec) / 1000000L;
    return ms > 0 ? ms : 0;
}

/* Waits for events on fd until the deadline; false on time-out or error. */
static bool wait_for(int fd, short events, const struct timespec *deadline) {
    for (;;) {
        long ms = remaining_ms(deadline);
        if (ms <= 0) return false;
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int ready = poll(&p, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
        if (ready > 0) return (p.revents & events) != 0 || (p.revents & (POLLHUP | POLLERR)) != 0;
        if (ready == 0) return false;
        if (errno != EINTR) return false;
    }
}

/* Connects the non-blocking socket within the deadline. */
static enum mamori_status connect_within(int fd, const struct sockaddr_un *address, const struct timespec *deadline) {
    for (;;) {
        if (connect(fd, (const struct sockaddr *)address, sizeof *address) == 0) return MAMORI_OK;
        if (errno == EAGAIN) {
            /* A Unix socket's backlog is full: nothing is in progress; try again shortly. */
            long ms = remaining_ms(deadline);
            if (ms <= 0) return MAMORI_TIMEOUT;
            struct timespec pause = {.tv_sec = 0, .tv_nsec = (ms < 10 ? ms : 10) * 1000000L};
            (void)nanosleep(&pause, NULL);
            continue;
        }
        if (errno != EINPROGRESS && errno != EINTR) return MAMORI_UNREACHABLE;
        if (!wait_for(fd, POLLOUT, deadline)) return MAMORI_TIMEOUT;
        int error = 0;
        socklen_t length = sizeof error;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) return MAMORI_UNREACHABLE;
        return MAMORI_OK;
    }
}

/* A deadline timeout_ms from now on the monotonic clock; false when the clock cannot be read. */
static bool deadline_after(const struct mamori_endpoint *endpoint, struct timespec *deadline) {
    if (clock_gettime(CLOCK_MONOTONIC, deadline) != 0) return false;
    int timeout_ms = endpoint->timeout_ms > 0 ? endpoint->timeout_ms : 1;
    deadline->tv_sec += timeout_ms / 1000;
    deadline->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline->tv_nsec >= 1000000000L) { deadline->tv_sec += 1; deadline->tv_nsec -= 1000000000L; }
    return true;
}

enum mamori_status mamori_open(const struct mamori_endpoint *endpoint, struct mamori_connection *connection,
                               uid_t *peer_uid) {
    connection->fd = -1;
    if (peer_uid != NULL) *peer_uid = (uid_t)-1;
    if (endpoint->socket_path == NULL || endpoint->socket_path[0] != '/') return MAMORI_UNREACHABLE;
    struct timespec deadline;
    if (!deadline_after(endpoint, &deadline)) return MAMORI_UNREACHABLE;

    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    size_t path_length = strlen(endpoint->socket_path);
    if (path_length >= sizeof address.sun_path) return MAMORI_UNREACHABLE;
    memcpy(address.sun_path, endpoint->socket_path, path_length + 1);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return MAMORI_UNREACHABLE;
    enum mamori_status status = connect_within(fd, &address, &deadline);
    if (status != MAMORI_OK) {
        (void)close(fd);
        return status;
    }
    /* Whom are we talking to? The kernel's word, read before a byte of any request leaves. */
    struct ucred credentials;
    memset(&credentials, 0, sizeof credentials);
    socklen_t credentials_length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &credentials_length) != 0 ||
        credentials_length != sizeof credentials) {
        (void)close(fd);
        return MAMORI_UNTRUSTED;
    }
    if (peer_uid != NULL) *peer_uid = credentials.uid;
    if (credentials.uid != 0 && !(endpoint->trust_uid && credentials.uid == endpoint->trusted_uid)) {
        (void)close(fd);
        return MAMORI_UNTRUSTED;
    }
    connection->fd = fd;
    return MAMORI_OK;
}

enum mamori_status mamori_exchange(struct mamori_connection *connection, const struct mamori_endpoint *endpoint,
                                   const struct mamori_request *request, char *reply, size_t reply_size) {
    enum mamori_status early = MAMORI_OK;
    if (reply == NULL || reply_size < 2) early = MAMORI_PROTOCOL;
    else reply[0] = '\0';
    if (early == MAMORI_OK && request->overflow) early = MAMORI_TOO_LONG;
    if (early == MAMORI_OK && connection->fd < 0) early = MAMORI_UNREACHABLE;
    struct timespec deadline;
    if (early == MAMORI_OK && !deadline_after(endpoint, &deadline)) early = MAMORI_UNREACHABLE;
    if (early != MAMORI_OK) {
        mamori_close(connection); /* as every failure: the connection is not used again */
        return early;
    }
    int fd = connection->fd;
    size_t used = 0;
    enum mamori_status status = MAMORI_OK;
    size_t written = 0;
    while (written < request->length) {
        if (!wait_for(fd, POLLOUT, &deadline)) { status = MAMORI_TIMEOUT; goto done; }
        ssize_t n = send(fd, request->text + written, request->length - written, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) { status = MAMORI_UNREACHABLE; goto done; }
        written += (size_t)n;
    }
    for (;;) {
        if (used + 1 >= reply_size) { status = MAMORI_PROTOCOL; goto done; }
        if (!wait_for(fd, POLLIN, &deadline)) { status = MAMORI_TIMEOUT; goto done; }
        ssize_t n = recv(fd, reply + used, reply_size - used - 1, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) { status = MAMORI_PROTOCOL; goto done; }
        size_t start = used;
        used += (size_t)n;
        reply[used] = '\0';
        char *newline = memchr(reply + start, '\n', used - start);
        if (newline != NULL) {
            /* One request, one line: bytes past it mean the stream is not what we think it is. */
            if ((size_t)(newline - reply) + 1 != used) { status = MAMORI_PROTOCOL; goto done; }
            /* A NUL inside the line would hide the rest of it from the scanner. */
            if (memchr(reply, '\0', (size_t)(newline - reply)) != NULL) { status = MAMORI_PROTOCOL; goto done; }
            if (newline > reply && newline[-1] == '\r') newline[-1] = '\0';
            *newline = '\0';
            break;
        }
    }
done:
    if (status != MAMORI_OK) {
        explicit_bzero(reply, used < reply_size ? used + 1 : reply_size);
        /* A connection that failed mid-exchange is not used again. */
        mamori_close(connection);
    }
    return status;
}

void mamori_close(struct mamori_connection *connection) {
    if (connection->fd >= 0) (void)close(connection->fd);
    connection->fd = -1;
}

enum mamori_status mamori_call(const struct mamori_endpoint *endpoint, const struct mamori_request *request, char *reply,
                               size_t reply_size, uid_t *peer_uid) {
    if (peer_uid != NULL) *peer_uid = (uid_t)-1;
    if (reply == NULL || reply_size < 2) return MAMORI_PROTOCOL;
    reply[0] = '\0';
    if (request->overflow) return MAMORI_TOO_LONG;
    struct mamori_connection connection;
    enum mamori_status status = mamori_open(endpoint, &connection, peer_uid);
    if (status != MAMORI_OK) return status;
    status = mamori_exchange(&connection, endpoint, request, reply, reply_size);
    mamori_close(&connection);
    return status;
}
