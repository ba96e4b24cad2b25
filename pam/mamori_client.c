#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* struct ucred */
#endif
#include "mamori_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* ---- reading replies: a small scanner over one JSON object ---- */

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static const char *skip_space(const char *p) {
    while (is_space(*p)) p++;
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
        size_t depth = 0;
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
    /* A number, true, false or null: up to the next delimiter; never empty. */
    const char *start = p;
    while (*p != '\0' && *p != ',' && *p != '}' && *p != ']' && *p != '"' && *p != '{' && *p != '[' && !is_space(*p)) p++;
    return p == start ? NULL : p;
}

/* Finds the value of a key in the object starting at object (its '{'); NULL if absent or malformed. */
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
        else if (*p != '}') return NULL;
    }
    return NULL;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits at p; -1 if they are not. */
static long read_hex4(const char *p) {
    long value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_value(p[i]); /* stops at a NUL: it is no digit */
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    return value;
}

/* Puts code point cp as UTF-8 at out[*used]; false if it does not fit with a NUL after it. */
static bool put_utf8(char *out, size_t out_size, size_t *used, unsigned long cp) {
    unsigned char bytes[4];
    size_t n;
    if (cp < 0x80) { bytes[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { bytes[0] = (unsigned char)(0xC0 | (cp >> 6)); bytes[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        bytes[0] = (unsigned char)(0xE0 | (cp >> 12)); bytes[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        bytes[2] = (unsigned char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        bytes[0] = (unsigned char)(0xF0 | (cp >> 18)); bytes[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        bytes[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); bytes[3] = (unsigned char)(0x80 | (cp & 0x3F)); n = 4;
    }
    if (n >= out_size - *used) return false;
    memcpy(out + *used, bytes, n);
    *used += n;
    return true;
}

/* Unescapes the string at p (its opening quote) into out. */
static bool copy_string(const char *p, char *out, size_t out_size) {
    if (out_size == 0) return false;
    out[0] = '\0';
    if (p == NULL || *p != '"') return false;
    size_t used = 0;
    for (p++; *p != '"'; p++) {
        unsigned char c = (unsigned char)*p;
        unsigned long cp;
        if (c == '\0' || c < 0x20) goto fail; /* unterminated, or a raw control byte */
        if (c != '\\') {
            if (used + 1 >= out_size) goto fail;
            out[used++] = (char)c;
            continue;
        }
        p++;
        switch (*p) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u': {
            long high = read_hex4(p + 1);
            if (high < 0) goto fail;
            p += 4;
            cp = (unsigned long)high;
            if (high >= 0xD800 && high <= 0xDBFF && p[1] == '\\' && p[2] == 'u') {
                long low = read_hex4(p + 3);
                if (low >= 0xDC00 && low <= 0xDFFF) {
                    cp = 0x10000UL + (((unsigned long)high - 0xD800UL) << 10) + ((unsigned long)low - 0xDC00UL);
                    p += 6;
                }
            }
            if (cp == 0) goto fail;                      /* a NUL would cut the value short */
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = '?'; /* a lone surrogate */
            break;
        }
        default: goto fail; /* no such escape, or the end of the text */
        }
        if (!put_utf8(out, out_size, &used, cp)) goto fail;
    }
    out[used] = '\0';
    return true;
fail:
    explicit_bzero(out, used < out_size ? used + 1 : out_size);
    out[0] = '\0';
    return false;
}

bool mamori_reply_ok(const char *reply) { return mamori_reply_bool(reply, "ok"); }

bool mamori_reply_string(const char *reply, const char *key, char *out, size_t out_size) {
    return copy_string(find_key(reply, key), out, out_size);
}

bool mamori_reply_bool(const char *reply, const char *key) {
    const char *value = find_key(reply, key);
    if (value == NULL || strncmp(value, "true", 4) != 0) return false;
    char after = value[4];
    return after == '\0' || after == ',' || after == '}' || is_space(after);
}

bool mamori_reply_error_code(const char *reply, char *out, size_t out_size) {
    if (out_size > 0) out[0] = '\0';
    const char *error = find_key(reply, "error");
    if (error == NULL || *error != '{') return false;
    return copy_string(find_key(error, "code"), out, out_size);
}

bool mamori_reply_array_contains(const char *reply, const char *key, const char *value) {
    const char *p = find_key(reply, key);
    if (p == NULL || *p != '[') return false;
    p = skip_space(p + 1);
    char item[64];
    bool found = false;
    while (*p == '"') {
        if (copy_string(p, item, sizeof item) && strcmp(item, value) == 0) { found = true; break; }
        p = skip_string(p);
        if (p == NULL) break;
        p = skip_space(p);
        if (*p == ',') p = skip_space(p + 1);
        else break;
    }
    explicit_bzero(item, sizeof item);
    return found;
}

bool mamori_reply_has_array(const char *reply, const char *key) {
    const char *p = find_key(reply, key);
    return p != NULL && *p == '[' && skip_value(p) != NULL;
}

/* ---- the login factors notice ---- */

#define NOTICE_SUFFIX ".factors"

enum mamori_status mamori_read_notice(const struct mamori_endpoint *endpoint, char *notice, size_t size) {
    if (size == 0) return MAMORI_TOO_LONG;
    notice[0] = '\0';
    if (endpoint->socket_path == NULL || endpoint->socket_path[0] != '/') return MAMORI_UNREACHABLE;
    char path[sizeof ((struct sockaddr_un *)0)->sun_path + sizeof NOTICE_SUFFIX];
    size_t length = strlen(endpoint->socket_path);
    if (length + sizeof NOTICE_SUFFIX > sizeof path) return MAMORI_TOO_LONG;
    memcpy(path, endpoint->socket_path, length);
    memcpy(path + length, NOTICE_SUFFIX, sizeof NOTICE_SUFFIX);

    /* Non-blocking, so that a FIFO put there cannot hold the login; never through a link. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return errno == ENOENT ? MAMORI_UNREACHABLE : MAMORI_UNTRUSTED;
    struct stat info;
    enum mamori_status status = MAMORI_OK;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        status = MAMORI_UNTRUSTED;
    } else if (info.st_uid != 0 && !(endpoint->trust_uid && info.st_uid == endpoint->trusted_uid)) {
        status = MAMORI_UNTRUSTED; /* someone else could have written it */
    } else if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0 || info.st_nlink != 1) {
        status = MAMORI_UNTRUSTED; /* others may write it, or it is a link to another's notice */
    } else if (info.st_size <= 0 || info.st_size >= (off_t)size) {
        status = MAMORI_PROTOCOL;
    } else {
        size_t used = 0;
        while (used < (size_t)info.st_size) {
            ssize_t got = read(fd, notice + used, (size_t)info.st_size - used);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            used += (size_t)got;
        }
        notice[used] = '\0';
        /* One whole line: read to its newline, with no NUL and nothing after it. */
        if (used != (size_t)info.st_size || used == 0 || notice[used - 1] != '\n' || strlen(notice) != used ||
            memchr(notice, '\n', used - 1) != NULL) {
            status = MAMORI_PROTOCOL;
        } else {
            notice[used - 1] = '\0';
            if (!mamori_reply_has_array(notice, "login_factors")) status = MAMORI_PROTOCOL;
        }
    }
    (void)close(fd);
    if (status != MAMORI_OK) notice[0] = '\0';
    return status;
}
