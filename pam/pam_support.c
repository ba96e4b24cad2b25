/* pam_mamori.so's support: options, PAM data and environment, the conversation, and the
   calls to mamorid that every phase shares. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "pam_mamori.h"

/* ---- small helpers ---- */

/* A copy of untrusted text fit for a log line: bounded, control bytes as '?'. */
const char *printable(const char *in, char *out, size_t size) {
    size_t used = 0;
    if (in != NULL) {
        for (const unsigned char *p = (const unsigned char *)in; *p != '\0' && used + 1 < size; p++)
            out[used++] = (*p < 0x20 || *p == 0x7F) ? '?' : (char)*p;
    }
    out[used] = '\0';
    return out;
}

/* A copy of a message from mamorid fit for the user's terminal: C0 and C1 controls as '?'. */
void terminal_text(const char *in, char *out, size_t size) {
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0' && used + 2 < size; p++) {
        if (*p < 0x20 || *p == 0x7F) {
            out[used++] = '?';
        } else if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
            out[used++] = '?';
            p++;
        } else {
            out[used++] = (char)*p;
        }
    }
    out[used] = '\0';
}

/* Tickets and session ids are short words of letters, digits, '-' and '_'. */
bool is_token(const char *text) {
    size_t length = strlen(text);
    if (length == 0 || length > MAX_TOKEN) return false;
    for (const char *p = text; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_')) return false;
    }
    return true;
}

void copy_prompt(char *out, size_t size, const char *value) {
    size_t length = strnlen(value, size - 1);
    memcpy(out, value, length);
    out[length] = '\0';
    for (char *p = out; *p != '\0'; p++) if (*p == '_') *p = ' ';
}

void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *options) {
    memset(options, 0, sizeof *options);
    options->connection.fd = -1;
    options->endpoint.socket_path = "/run/mamori/mamori.sock";
    options->endpoint.timeout_ms = 5000;
    options->daemon_user = "mamori";
    copy_prompt(options->password_prompt, sizeof options->password_prompt, "Password: ");
    copy_prompt(options->code_prompt, sizeof options->code_prompt, "Verification code: ");
    char shown[160];
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg == NULL) continue;
        if (strncmp(arg, "socket=", 7) == 0) {
            if (arg[7] == '/' && strlen(arg + 7) < 108) options->endpoint.socket_path = arg + 7;
            else {
                pam_syslog(pamh, LOG_ERR, "socket=%s is not an absolute path shorter than 108 bytes", printable(arg + 7, shown, sizeof shown));
                options->endpoint.socket_path = NULL; /* every call then fails: PAM_AUTHINFO_UNAVAIL */
            }
        } else if (strncmp(arg, "timeout=", 8) == 0) {
            char *end = NULL;
            errno = 0;
            long value = strtol(arg + 8, &end, 10);
            if (errno == 0 && end != arg + 8 && *end == '\0' && value >= 10 && value <= 120000) options->endpoint.timeout_ms = (int)value;
            else pam_syslog(pamh, LOG_WARNING, "ignoring timeout=%s (10 to 120000 ms)", printable(arg + 8, shown, sizeof shown));
        } else if (strncmp(arg, "daemon_user=", 12) == 0) {
            if (strlen(arg + 12) <= MAX_DAEMON_USER) options->daemon_user = arg + 12;
            else {
                pam_syslog(pamh, LOG_ERR, "daemon_user= is longer than %d bytes: trusting root only", MAX_DAEMON_USER);
                options->daemon_user = "";
            }
        } else if (strncmp(arg, "password_prompt=", 16) == 0) copy_prompt(options->password_prompt, sizeof options->password_prompt, arg + 16);
        else if (strncmp(arg, "code_prompt=", 12) == 0) copy_prompt(options->code_prompt, sizeof options->code_prompt, arg + 12);
        else if (strcmp(arg, "use_first_pass") == 0) options->use_first_pass = true;
        else if (strcmp(arg, "try_first_pass") == 0) options->try_first_pass = true;
        else if (strcmp(arg, "use_authtok") == 0) options->use_authtok = true;
        else if (strcmp(arg, "debug") == 0) options->debug = true;
        else pam_syslog(pamh, LOG_WARNING, "unknown option: %s", printable(arg, shown, sizeof shown));
    }
}

/* Looks up daemon_user once: its uid is trusted besides root. A missing user trusts root only. */
void resolve_daemon_user(pam_handle_t *pamh, struct options *options) {
    if (options->resolved) return;
    options->resolved = true;
    options->endpoint.trust_uid = false;
    if (options->daemon_user[0] == '\0') return;
    char *buffer = malloc(PASSWD_BUFFER);
    if (buffer == NULL) {
        pam_syslog(pamh, LOG_CRIT, "out of memory looking up daemon_user: trusting root only");
        return;
    }
    struct passwd entry;
    struct passwd *found = NULL;
    int error = getpwnam_r(options->daemon_user, &entry, buffer, PASSWD_BUFFER, &found);
    char shown[MAX_DAEMON_USER + 1];
    if (error == 0 && found != NULL) {
        options->endpoint.trust_uid = true;
        options->endpoint.trusted_uid = found->pw_uid;
    } else if (error == 0 || error == ENOENT || error == ESRCH) {
        if (options->debug)
            pam_syslog(pamh, LOG_DEBUG, "no user %s (daemon_user): trusting a server run by root only",
                       printable(options->daemon_user, shown, sizeof shown));
    } else {
        pam_syslog(pamh, LOG_WARNING, "cannot look up daemon_user %s (%s): trusting a server run by root only",
                   printable(options->daemon_user, shown, sizeof shown), strerror(error));
    }
    explicit_bzero(buffer, PASSWD_BUFFER);
    free(buffer);
}

const char *item(pam_handle_t *pamh, int type) {
    const void *value = NULL;
    if (pam_get_item(pamh, type, &value) != PAM_SUCCESS || value == NULL) return NULL;
    return (const char *)value;
}

void wipe_and_free(char *secret) {
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

/* The cleanup of PAM data holding a NUL-terminated secret. */
void free_secret(pam_handle_t *pamh, void *data, int error_status) {
    (void)pamh;
    (void)error_status;
    wipe_and_free(data);
}


void free_kept_password(pam_handle_t *pamh, void *data, int error_status) {
    (void)pamh;
    (void)error_status;
    if (data != NULL) {
        explicit_bzero(data, sizeof(struct kept_password));
        free(data);
    }
}

/* Drops PAM data of ours, if there is any (the cleanup wipes it). */
void drop_data(pam_handle_t *pamh, const char *name) {
    const void *data = NULL;
    if (pam_get_data(pamh, name, &data) == PAM_SUCCESS && data != NULL) {
        if (pam_set_data(pamh, name, NULL, NULL) != PAM_SUCCESS) pam_syslog(pamh, LOG_ERR, "cannot drop %s", name);
    }
}

/* Deletes a variable from the PAM environment, if it is there (Linux-PAM overwrites it). */
void drop_env(pam_handle_t *pamh, const char *name) {
    if (pam_getenv(pamh, name) == NULL) return;
    if (pam_putenv(pamh, name) != PAM_SUCCESS) pam_syslog(pamh, LOG_ERR, "cannot remove %s from the PAM environment", name);
}

void forget_ticket(pam_handle_t *pamh) {
    drop_data(pamh, DATA_TICKET);
    drop_env(pamh, ENV_TICKET);
}

/* Takes the ticket out of PAM data (preferred) or the PAM environment into out, and forgets it there. */
bool take_ticket(pam_handle_t *pamh, char *out, size_t size) {
    const void *data = NULL;
    const char *found = NULL;
    if (pam_get_data(pamh, DATA_TICKET, &data) == PAM_SUCCESS && data != NULL) found = data;
    else found = pam_getenv(pamh, ENV_TICKET);
    bool ok = found != NULL && is_token(found) && strlen(found) < size;
    if (ok) memcpy(out, found, strlen(found) + 1);
    else if (size > 0) out[0] = '\0';
    forget_ticket(pamh);
    return ok;
}

/* Sets NAME=VALUE in the PAM environment through a wiped buffer. */
int put_env(pam_handle_t *pamh, const char *name, const char *value) {
    char variable[MAX_TOKEN + 32];
    int length = snprintf(variable, sizeof variable, "%s=%s", name, value);
    int result = PAM_BUF_ERR;
    if (length > 0 && (size_t)length < sizeof variable) result = pam_putenv(pamh, variable);
    explicit_bzero(variable, sizeof variable);
    return result;
}

/* Asks the conversation for a secret without echo; NULL if it could not. */
char *ask(pam_handle_t *pamh, const char *prompt) {
    char *answer = NULL;
    if (pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, "%s", prompt) != PAM_SUCCESS) {
        wipe_and_free(answer);
        return NULL;
    }
    return answer;
}

/* A heap copy of a secret; NULL when out of memory. */
char *copy_secret(const char *secret) { return secret != NULL ? strdup(secret) : NULL; }

/* The usual authentication-failure line, as pam_unix writes it; never a secret. */
void log_failure(pam_handle_t *pamh, const char *user, const char *why) {
    char tty[64], ruser[MAX_USER + 1], rhost[256], logname[MAX_USER + 1], shown_user[MAX_USER + 1];
    pam_syslog(pamh, LOG_NOTICE, "authentication failure; logname=%s uid=%d euid=%d tty=%s ruser=%s rhost=%s user=%s (%s)",
               printable(pam_modutil_getlogin(pamh), logname, sizeof logname), (int)getuid(), (int)geteuid(),
               printable(item(pamh, PAM_TTY), tty, sizeof tty), printable(item(pamh, PAM_RUSER), ruser, sizeof ruser),
               printable(item(pamh, PAM_RHOST), rhost, sizeof rhost), printable(user, shown_user, sizeof shown_user), why);
}

/* ---- talking to mamorid ---- */


struct exchange *exchange_new(pam_handle_t *pamh) {
    struct exchange *exchange = calloc(1, sizeof *exchange);
    if (exchange == NULL) pam_syslog(pamh, LOG_CRIT, "out of memory");
    return exchange;
}

void exchange_free(struct exchange *exchange) {
    if (exchange != NULL) {
        explicit_bzero(exchange, sizeof *exchange);
        free(exchange);
    }
}

/*
 * Sends the exchange's request (then wipes it) and reads the reply. PAM_SUCCESS with a reply;
 * PAM_BUF_ERR when the request did not fit; PAM_AUTHINFO_UNAVAIL, logged, when mamorid cannot
 * be reached, is silent past the timeout, answers what is not a reply line, or is not run by a
 * trusted uid (then nothing was sent).
 */
int call(pam_handle_t *pamh, struct options *options, struct exchange *exchange) {
    resolve_daemon_user(pamh, options);
    mamori_request_deadline(&exchange->request, &options->endpoint);
    mamori_request_end(&exchange->request);
    uid_t peer = (uid_t)-1;
    enum mamori_status status = MAMORI_OK;
    struct timespec now;
    bool clock_ok = clock_gettime(CLOCK_MONOTONIC, &now) == 0;
    if (options->connection.fd >= 0 && (!clock_ok || now.tv_sec - options->opened.tv_sec >= CONNECTION_REUSE_SECONDS))
        mamori_close(&options->connection);
    if (exchange->request.overflow) {
        status = MAMORI_TOO_LONG;
    } else if (options->connection.fd < 0) {
        status = mamori_open(&options->endpoint, &options->connection, &peer);
        if (status == MAMORI_OK && clock_ok) options->opened = now;
    }
    if (status == MAMORI_OK)
        status = mamori_exchange(&options->connection, &options->endpoint, &exchange->request, exchange->reply,
                                 sizeof exchange->reply);
    mamori_request_wipe(&exchange->request);
    const char *path = options->endpoint.socket_path != NULL ? options->endpoint.socket_path : "(invalid socket=)";
    char shown[MAX_DAEMON_USER + 1];
    switch (status) {
    case MAMORI_OK: return PAM_SUCCESS;
    case MAMORI_TOO_LONG: return PAM_BUF_ERR;
    case MAMORI_TIMEOUT:
        pam_syslog(pamh, LOG_ERR, "mamorid at %s did not answer within %d ms", path, options->endpoint.timeout_ms);
        return PAM_AUTHINFO_UNAVAIL;
    case MAMORI_PROTOCOL:
        pam_syslog(pamh, LOG_ERR, "mamorid at %s gave no reply line that can be read", path);
        return PAM_AUTHINFO_UNAVAIL;
    case MAMORI_UNTRUSTED:
        if (peer == (uid_t)-1) pam_syslog(pamh, LOG_ERR, "refusing the server at %s: cannot read its peer credentials", path);
        else pam_syslog(pamh, LOG_ERR, "refusing the server at %s: it runs as uid %ld, neither root nor daemon_user %s; nothing was sent",
                        path, (long)peer, options->daemon_user[0] != '\0' ? printable(options->daemon_user, shown, sizeof shown) : "(none)");
        return PAM_AUTHINFO_UNAVAIL;
    case MAMORI_UNREACHABLE:
    default:
        pam_syslog(pamh, LOG_ERR, "cannot reach mamorid at %s", path);
        return PAM_AUTHINFO_UNAVAIL;
    }
}

/*
 * Asks the user, with the phase's connection closed first. A connection held while someone types
 * would be held for as long as they like, and through su or sudo its peer is root, whom mamorid
 * admits without a per-uid limit: any local account could fill the daemon's connections, the
 * ones kept for root included, by leaving prompts open. So requests share a connection only
 * between prompts.
 */
char *prompt(pam_handle_t *pamh, struct options *options, const char *text) {
    mamori_close(&options->connection);
    return ask(pamh, text);
}

/* Ends a phase: its connection to mamorid, if one was opened, is closed. Returns result. */
int end_phase(struct options *options, int result) {
    mamori_close(&options->connection);
    return result;
}

/* The error code of a failed reply, or "" when there is none. */
const char *error_code(const struct exchange *exchange, char *out, size_t size) {
    if (!mamori_reply_error_code(exchange->reply, out, size)) out[0] = '\0';
    return out;
}

/* Asks mamorid's status: whether the zone needs a code. PAM_SUCCESS, or PAM_AUTHINFO_UNAVAIL. */
int daemon_status(pam_handle_t *pamh, struct options *options, bool *code_needed) {
    *code_needed = true;
    struct exchange *exchange = exchange_new(pamh);
    if (exchange == NULL) return PAM_BUF_ERR;
    mamori_request_begin(&exchange->request, "status");
    int result = call(pamh, options, exchange);
    if (result == PAM_SUCCESS) {
        if (mamori_reply_ok(exchange->reply)) {
            *code_needed = mamori_reply_array_contains(exchange->reply, "login_factors", "totp");
        } else {
            char code[64];
            pam_syslog(pamh, LOG_ERR, "mamorid refused the status request (%s)", error_code(exchange, code, sizeof code));
            result = PAM_AUTHINFO_UNAVAIL;
        }
    } else if (result == PAM_BUF_ERR) {
        result = PAM_AUTHINFO_UNAVAIL;
    }
    exchange_free(exchange);
    return result;
}

/*
 * Whether the zone needs a code: from the daemon's notice beside the socket when there is a
 * trusted one (no connection), else from `status`. PAM_SUCCESS, or PAM_AUTHINFO_UNAVAIL. The
 * notice only decides what is asked; authenticate checks every factor the zone needs.
 */
int login_factors(pam_handle_t *pamh, struct options *options, bool *code_needed, bool *from_notice) {
    resolve_daemon_user(pamh, options);
    *from_notice = false;
    char notice[1024];
    enum mamori_status status = mamori_read_notice(&options->endpoint, notice, sizeof notice);
    if (status == MAMORI_OK) {
        *code_needed = mamori_reply_array_contains(notice, "login_factors", "totp");
        *from_notice = true;
        return PAM_SUCCESS;
    }
    if (status != MAMORI_UNREACHABLE)
        pam_syslog(pamh, LOG_WARNING, "ignoring the login factors notice beside %s (%s): asking mamorid",
                   options->endpoint.socket_path, status == MAMORI_UNTRUSTED ? "wrong owner or mode" : "unreadable");
    return daemon_status(pamh, options, code_needed);
}

/*
 * A login refused here, without asking mamorid (an empty code, over-long input): PAM_AUTH_ERR,
 * but only once mamorid is known to answer. When the prompts came from the notice, nothing has
 * asked it yet, and a daemon that is hung must give PAM_AUTHINFO_UNAVAIL, as it did before the
 * prompts, so that a break-glass stack falls through to the local password whatever was typed.
 */
int refuse_locally(pam_handle_t *pamh, struct options *options, bool from_notice) {
    bool unused = false;
    if (from_notice && daemon_status(pamh, options, &unused) != PAM_SUCCESS) return PAM_AUTHINFO_UNAVAIL;
    return PAM_AUTH_ERR;
}
