/*
 * A small client of mamorid's socket for pam_mamori.so: one request line out, one reply line
 * back, within a timeout, into bounded buffers, and only to a server run by a trusted uid.
 * No allocation beyond the caller's buffers.
 */
#ifndef MAMORI_CLIENT_H
#define MAMORI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The longest line of the protocol (docs/protocol.md). */
#define MAMORI_MAX_LINE 65536
/* A reply buffer that holds such a line, its newline and a NUL. */
#define MAMORI_REPLY_SIZE (MAMORI_MAX_LINE + 2)
/* The largest request built (every request of the PAM module is far smaller). */
#define MAMORI_REQUEST_SIZE 8192

enum mamori_status {
    MAMORI_OK = 0,          /* a reply line was read */
    MAMORI_UNREACHABLE = 1, /* no daemon at the socket */
    MAMORI_TIMEOUT = 2,     /* the daemon did not answer in time */
    MAMORI_PROTOCOL = 3,    /* the reply was not a line we can read */
    MAMORI_TOO_LONG = 4,    /* the request would not fit the buffer */
    MAMORI_UNTRUSTED = 5    /* the server's uid is neither root nor the daemon's: nothing was sent */
};

/* Where mamorid listens and whom to believe there. */
struct mamori_endpoint {
    const char *socket_path; /* absolute */
    int timeout_ms;          /* for the whole call: connect, send and reply */
    bool trust_uid;          /* besides root, trust trusted_uid */
    uid_t trusted_uid;
};

/* A request being built: a JSON object in a fixed buffer. */
struct mamori_request {
    char text[MAMORI_REQUEST_SIZE];
    size_t length;
    bool overflow;
};

void mamori_request_begin(struct mamori_request *request, const char *op);
/* Adds "key":"value" (both escaped); a NULL value is left out. */
void mamori_request_string(struct mamori_request *request, const char *key, const char *value);
/* Adds "key":value, a whole number. */
void mamori_request_integer(struct mamori_request *request, const char *key, long long value);
/*
 * Adds "deadline": the wall-clock time, in milliseconds since 1970, at which the endpoint's
 * timeout runs out from now. mamorid does nothing for a request it reads later, so a request
 * left behind in a frozen or overloaded daemon spends no one-time code once its caller gave up.
 */
void mamori_request_deadline(struct mamori_request *request, const struct mamori_endpoint *endpoint);
void mamori_request_end(struct mamori_request *request);
/* Wipes the request's buffer (it may hold a password). */
void mamori_request_wipe(struct mamori_request *request);

/* An open connection to a trusted mamorid: the requests of one PAM phase go over one. */
struct mamori_connection {
    int fd; /* -1 when closed */
};

/*
 * Connects within the endpoint's timeout and checks the server's peer credentials (SO_PEERCRED)
 * before anything can be sent. On MAMORI_OK the connection is open; on any other status it is
 * closed (fd -1). peer_uid (may be NULL) receives the server's uid when it could be read.
 */
enum mamori_status mamori_open(const struct mamori_endpoint *endpoint, struct mamori_connection *connection,
                               uid_t *peer_uid);
/*
 * Sends the request and reads one reply line into reply (NUL-terminated, without its newline)
 * within the endpoint's timeout. On any status but MAMORI_OK the reply buffer is wiped and the
 * connection is closed, so that it is never used again in an unknown state.
 */
enum mamori_status mamori_exchange(struct mamori_connection *connection, const struct mamori_endpoint *endpoint,
                                   const struct mamori_request *request, char *reply, size_t reply_size);
/* Closes the connection (if open); safe to call twice. */
void mamori_close(struct mamori_connection *connection);

/*
 * One exchange on a connection of its own: mamori_open, mamori_exchange, mamori_close.
 * Connects, checks the server's peer credentials (SO_PEERCRED) before anything is sent, sends
 * the request and reads one reply line into reply (NUL-terminated, without its newline). On any
 * status but MAMORI_OK the reply buffer is wiped. peer_uid (may be NULL) receives the server's
 * uid when it could be read, else (uid_t)-1.
 */
enum mamori_status mamori_call(const struct mamori_endpoint *endpoint, const struct mamori_request *request, char *reply,
                               size_t reply_size, uid_t *peer_uid);

/*
 * Reads the daemon's notice of its zone's login factors, <socket_path>.factors: one JSON line
 * with a "login_factors" array, written by mamorid at start and at each policy reload. It is
 * believed only from a regular file (one link) owned by root or the trusted uid that no one else may write,
 * of at most size - 1 bytes. MAMORI_OK with the line (NUL-terminated, without its newline) in
 * notice; MAMORI_UNREACHABLE when there is none, MAMORI_UNTRUSTED when its owner or mode is
 * wrong, MAMORI_TOO_LONG when the path is, MAMORI_PROTOCOL when it is not such a line. On any
 * status but MAMORI_OK notice is the empty string. It decides only what a login is asked:
 * mamorid checks every factor the zone needs.
 */
enum mamori_status mamori_read_notice(const struct mamori_endpoint *endpoint, char *notice, size_t size);

/* Reads a top-level field of a reply: true when "ok" is true. */
bool mamori_reply_ok(const char *reply);
/*
 * Copies a top-level string field (unescaped; \uXXXX as UTF-8) into out; false if absent, not a
 * string, malformed, holding a NUL, or too long, and then out is the empty string.
 */
bool mamori_reply_string(const char *reply, const char *key, char *out, size_t out_size);
/* A top-level boolean field; false when absent or anything but the literal true. */
bool mamori_reply_bool(const char *reply, const char *key);
/* The error code of a failed reply ("error":{"code":…}); false if none. */
bool mamori_reply_error_code(const char *reply, char *out, size_t out_size);
/* Whether a top-level array of strings contains value. */
bool mamori_reply_array_contains(const char *reply, const char *key, const char *value);
/* Whether a top-level field is an array. */
bool mamori_reply_has_array(const char *reply, const char *key);

#endif
