/*
 * A small client of mamorid's socket for pam_mamori.so: one request line out, one reply line
 * back, within a timeout, into bounded buffers. No allocation beyond the caller's buffers.
 */
#ifndef MAMORI_CLIENT_H
#define MAMORI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

/* The longest reply line read (the protocol's limit on a line). */
#define MAMORI_MAX_LINE 65536

enum mamori_status {
    MAMORI_OK = 0,          /* a reply line was read */
    MAMORI_UNREACHABLE = 1, /* no daemon at the socket */
    MAMORI_TIMEOUT = 2,     /* the daemon did not answer in time */
    MAMORI_PROTOCOL = 3,    /* the reply was not a line we can read */
    MAMORI_TOO_LONG = 4     /* the request would not fit the buffer */
};

/* A request being built: a JSON object in a fixed buffer. */
struct mamori_request {
    char text[8192];
    size_t length;
    bool overflow;
};

void mamori_request_begin(struct mamori_request *request, const char *op);
/* Adds "key":"value" (value escaped); a NULL value is left out. */
void mamori_request_string(struct mamori_request *request, const char *key, const char *value);
void mamori_request_end(struct mamori_request *request);
/* Wipes the request's buffer (it may hold a password). */
void mamori_request_wipe(struct mamori_request *request);

/* Sends the request and reads one reply line into reply (NUL-terminated). */
enum mamori_status mamori_call(const char *socket_path, int timeout_ms, const struct mamori_request *request,
                               char *reply, size_t reply_size);

/* Reads a top-level field of a reply: true when "ok" is true. */
bool mamori_reply_ok(const char *reply);
/* Copies a top-level string field (unescaped) into out; false if absent, not a string or too long. */
bool mamori_reply_string(const char *reply, const char *key, char *out, size_t out_size);
/* A top-level boolean field; false when absent. */
bool mamori_reply_bool(const char *reply, const char *key);
/* The error code of a failed reply ("error":{"code":…}); false if none. */
bool mamori_reply_error_code(const char *reply, char *out, size_t out_size);
/* Whether a top-level array of strings contains value. */
bool mamori_reply_array_contains(const char *reply, const char *key, const char *value);

#endif
