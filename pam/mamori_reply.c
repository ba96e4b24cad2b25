/*
 * The reading half of the client: a small scanner over one reply line (a JSON object), and the
 * login factors notice mamorid publishes beside its socket. Bounded, allocation-free, and fuzzed
 * (tests/fuzz_client.c) with the request escaping.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mamori_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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
