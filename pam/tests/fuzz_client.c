/*
 * libFuzzer over the PAM module's reply scanner and request escaping (`make -C pam fuzz`).
 *
 * Each input is used twice:
 *   1. as a reply line from mamorid (NUL-terminated): every reader must return without reading
 *      outside the buffer, and a string it returns must fit and be NUL-terminated;
 *   2. as a value (up to its first NUL) escaped into a request and read back with the reply
 *      scanner: what comes back must be exactly what went in (the daemon sees the caller's bytes,
 *      no more and no fewer).
 */
#include "../mamori_client.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const keys[] = {"ok", "ticket", "user", "zone", "factors", "error", "code", "message", "v", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > MAMORI_MAX_LINE) return 0;
    char *line = malloc(size + 1);
    if (line == NULL) abort();
    memcpy(line, data, size);
    line[size] = '\0';

    /* 1. The input as a reply. */
    char out[64];
    (void)mamori_reply_ok(line);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        memset(out, 'x', sizeof out);
        if (mamori_reply_string(line, keys[k], out, sizeof out)) {
            if (memchr(out, '\0', sizeof out) == NULL) abort();
        } else if (out[0] != '\0') {
            abort(); /* a failed read leaves the empty string */
        }
        (void)mamori_reply_bool(line, keys[k]);
        (void)mamori_reply_array_contains(line, keys[k], "totp");
        (void)mamori_reply_has_array(line, keys[k]);
    }
    memset(out, 'x', sizeof out);
    if (mamori_reply_error_code(line, out, sizeof out) && memchr(out, '\0', sizeof out) == NULL) abort();
    char tiny[1];
    if (mamori_reply_string(line, "ticket", tiny, sizeof tiny) && tiny[0] != '\0') abort();

    /* 2. The input (to its first NUL) as a value: escaped, then scanned back, unchanged. */
    static struct mamori_request request;
    mamori_request_begin(&request, "fuzz");
    mamori_request_string(&request, "v", line);
    mamori_request_end(&request);
    if (!request.overflow) {
        if (request.length < 2 || request.text[request.length - 1] != '\n') abort();
        for (size_t i = 0; i + 1 < request.length; i++) {
            /* One line: no raw newline or control byte inside the request. */
            if ((unsigned char)request.text[i] < 0x20) abort();
        }
        request.text[request.length - 1] = '\0';
        size_t value_length = strlen(line);
        char *back = malloc(value_length + 1);
        if (back == NULL) abort();
        if (!mamori_reply_string(request.text, "v", back, value_length + 1)) abort();
        if (strcmp(back, line) != 0) abort();
        char op[8];
        if (!mamori_reply_string(request.text, "op", op, sizeof op) || strcmp(op, "fuzz") != 0) abort();
        free(back);
    }
    mamori_request_wipe(&request);
    free(line);
    return 0;
}
