/*
 * pam_mamori.so: terminal logins through mamorid (password, then the one-time code, in one
 * request), with the account, session and password phases. A thin glue over mamori_client.c;
 * every secret is wiped with explicit_bzero before its memory is released and never logged.
 *
 * Module arguments: socket=PATH (default /run/mamori/mamori.sock), timeout=MS (default 5000),
 * daemon_user=NAME (default mamori), password_prompt=TEXT, code_prompt=TEXT (a space as '_'),
 * use_first_pass, try_first_pass, use_authtok, debug. See docs/pam.md.
 *
 * The ticket that authenticate returns is kept twice until the session phase: as PAM data (for
 * applications that run every phase in one process) and in the PAM environment as MAMORI_TICKET
 * (OpenSSH's sshd authenticates in a forked child and copies back only the PAM environment).
 * setcred moves it from the environment into PAM data, and open_session takes it out of both
 * before it does anything else, so that it never reaches the user's environment.
 */
#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD

#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mamori_client.h"

#define DATA_TICKET "pam_mamori_ticket"
#define DATA_SESSION "pam_mamori_session"
#define DATA_PASSWORD "pam_mamori_current_password"
#define ENV_TICKET "MAMORI_TICKET"
#define ENV_SESSION "MAMORI_SESSION"
#define MAX_USER 64
#define MAX_PASSWORD 1024
#define MAX_CODE 64
#define MAX_TOKEN 128 /* tickets and session ids */
#define MAX_DAEMON_USER 64
#define PASSWD_BUFFER 16384

struct options {
    char password_prompt[128];
    char code_prompt[128];
    const char *daemon_user; /* "" trusts root only */
    bool use_first_pass;
    bool try_first_pass;
    bool use_authtok;
    bool debug;
    bool resolved; /* daemon_user looked up */
    struct mamori_endpoint endpoint;
    /* The phase's one connection to mamorid, opened by the first request and closed by the
       phase (end_phase); `opened` is when, on the monotonic clock. */
    struct mamori_connection connection;
    struct timespec opened;
};

/*
 * A phase's connection is reused only while younger than this (it is never held across a prompt,
 * see prompt()); an older one is replaced, well inside mamorid's idle timeout.
 */
#define CONNECTION_REUSE_SECONDS 60

/* ---- small helpers ---- */

/* A copy of untrusted text fit for a log line: bounded, control bytes as '?'. */
static const char *printable(const char *in, char *out, size_t size) {
    size_t used = 0;
    if (in != NULL) {
        for (const unsigned char *p = (const unsigned char *)in; *p != '\0' && used + 1 < size; p++)
            out[used++] = (*p < 0x20 || *p == 0x7F) ? '?' : (char)*p;
    }
    out[used] = '\0';
    return out;
}

/* A copy of a message from mamorid fit for the user's terminal: C0 and C1 controls as '?'. */
static void terminal_text(const char *in, char *out, size_t size) {
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
static bool is_token(const char *text) {
    size_t length = strlen(text);
    if (length == 0 || length > MAX_TOKEN) return false;
    for (const char *p = text; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_')) return false;
    }
    return true;
}

static void copy_prompt(char *out, size_t size, const char *value) {
    size_t length = strnlen(value, size - 1);
    memcpy(out, value, length);
    out[length] = '\0';
    for (char *p = out; *p != '\0'; p++) if (*p == '_') *p = ' ';
}

static void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *options) {
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
static void resolve_daemon_user(pam_handle_t *pamh, struct options *options) {
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

static const char *item(pam_handle_t *pamh, int type) {
    const void *value = NULL;
    if (pam_get_item(pamh, type, &value) != PAM_SUCCESS || value == NULL) return NULL;
    return (const char *)value;
}

static void wipe_and_free(char *secret) {
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

/* The cleanup of PAM data holding a NUL-terminated secret. */
static void free_secret(pam_handle_t *pamh, void *data, int error_status) {
    (void)pamh;
    (void)error_status;
    wipe_and_free(data);
}

/* The password this module's auth verified, kept only when mamorid asks for a change. */
struct kept_password {
    char user[MAX_USER + 1];
    char password[MAX_PASSWORD + 1];
};

static void free_kept_password(pam_handle_t *pamh, void *data, int error_status) {
    (void)pamh;
    (void)error_status;
    if (data != NULL) {
        explicit_bzero(data, sizeof(struct kept_password));
        free(data);
    }
}

/* Drops PAM data of ours, if there is any (the cleanup wipes it). */
static void drop_data(pam_handle_t *pamh, const char *name) {
    const void *data = NULL;
    if (pam_get_data(pamh, name, &data) == PAM_SUCCESS && data != NULL) {
        if (pam_set_data(pamh, name, NULL, NULL) != PAM_SUCCESS) pam_syslog(pamh, LOG_ERR, "cannot drop %s", name);
    }
}

/* Deletes a variable from the PAM environment, if it is there (Linux-PAM overwrites it). */
static void drop_env(pam_handle_t *pamh, const char *name) {
    if (pam_getenv(pamh, name) == NULL) return;
    if (pam_putenv(pamh, name) != PAM_SUCCESS) pam_syslog(pamh, LOG_ERR, "cannot remove %s from the PAM environment", name);
}

static void forget_ticket(pam_handle_t *pamh) {
    drop_data(pamh, DATA_TICKET);
    drop_env(pamh, ENV_TICKET);
}

/* Takes the ticket out of PAM data (preferred) or the PAM environment into out, and forgets it there. */
static bool take_ticket(pam_handle_t *pamh, char *out, size_t size) {
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
static int put_env(pam_handle_t *pamh, const char *name, const char *value) {
    char variable[MAX_TOKEN + 32];
    int length = snprintf(variable, sizeof variable, "%s=%s", name, value);
    int result = PAM_BUF_ERR;
    if (length > 0 && (size_t)length < sizeof variable) result = pam_putenv(pamh, variable);
    explicit_bzero(variable, sizeof variable);
    return result;
}

/* Asks the conversation for a secret without echo; NULL if it could not. */
static char *ask(pam_handle_t *pamh, const char *prompt) {
    char *answer = NULL;
    if (pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, "%s", prompt) != PAM_SUCCESS) {
        wipe_and_free(answer);
        return NULL;
    }
    return answer;
}

/* A heap copy of a secret; NULL when out of memory. */
static char *copy_secret(const char *secret) { return secret != NULL ? strdup(secret) : NULL; }

/* The usual authentication-failure line, as pam_unix writes it; never a secret. */
static void log_failure(pam_handle_t *pamh, const char *user, const char *why) {
    char tty[64], ruser[MAX_USER + 1], rhost[256], logname[MAX_USER + 1], shown_user[MAX_USER + 1];
    pam_syslog(pamh, LOG_NOTICE, "authentication failure; logname=%s uid=%d euid=%d tty=%s ruser=%s rhost=%s user=%s (%s)",
               printable(pam_modutil_getlogin(pamh), logname, sizeof logname), (int)getuid(), (int)geteuid(),
               printable(item(pamh, PAM_TTY), tty, sizeof tty), printable(item(pamh, PAM_RUSER), ruser, sizeof ruser),
               printable(item(pamh, PAM_RHOST), rhost, sizeof rhost), printable(user, shown_user, sizeof shown_user), why);
}

/* ---- talking to mamorid ---- */

/* A request and its reply, on the heap (64 KiB is too much for some callers' stacks). */
struct exchange {
    struct mamori_request request;
    char reply[MAMORI_REPLY_SIZE];
};

static struct exchange *exchange_new(pam_handle_t *pamh) {
    struct exchange *exchange = calloc(1, sizeof *exchange);
    if (exchange == NULL) pam_syslog(pamh, LOG_CRIT, "out of memory");
    return exchange;
}

static void exchange_free(struct exchange *exchange) {
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
static int call(pam_handle_t *pamh, struct options *options, struct exchange *exchange) {
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
static char *prompt(pam_handle_t *pamh, struct options *options, const char *text) {
    mamori_close(&options->connection);
    return ask(pamh, text);
}

/* Ends a phase: its connection to mamorid, if one was opened, is closed. Returns result. */
static int end_phase(struct options *options, int result) {
    mamori_close(&options->connection);
    return result;
}

/* The error code of a failed reply, or "" when there is none. */
static const char *error_code(const struct exchange *exchange, char *out, size_t size) {
    if (!mamori_reply_error_code(exchange->reply, out, size)) out[0] = '\0';
    return out;
}

/* Asks mamorid's status: whether the zone needs a code. PAM_SUCCESS, or PAM_AUTHINFO_UNAVAIL. */
static int daemon_status(pam_handle_t *pamh, struct options *options, bool *code_needed) {
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
static int login_factors(pam_handle_t *pamh, struct options *options, bool *code_needed, bool *from_notice) {
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
static int refuse_locally(pam_handle_t *pamh, struct options *options, bool from_notice) {
    bool unused = false;
    if (from_notice && daemon_status(pamh, options, &unused) != PAM_SUCCESS) return PAM_AUTHINFO_UNAVAIL;
    return PAM_AUTH_ERR;
}

/* ---- auth ---- */

/* Keeps the verified password for a password change later in this transaction. */
static void keep_password(pam_handle_t *pamh, const char *user, const char *password) {
    struct kept_password *kept = calloc(1, sizeof *kept);
    if (kept == NULL) return; /* chauthtok will ask for it */
    memcpy(kept->user, user, strlen(user) + 1);             /* bounded by MAX_USER, checked by the caller */
    memcpy(kept->password, password, strlen(password) + 1); /* bounded by MAX_PASSWORD, likewise */
    if (pam_set_data(pamh, DATA_PASSWORD, kept, free_kept_password) != PAM_SUCCESS) free_kept_password(pamh, kept, 0);
}

/* Keeps the ticket for the session phase: as PAM data and in the PAM environment. */
static int keep_ticket(pam_handle_t *pamh, const char *ticket) {
    char *kept = copy_secret(ticket);
    if (kept == NULL) return PAM_BUF_ERR;
    if (pam_set_data(pamh, DATA_TICKET, kept, free_secret) != PAM_SUCCESS) {
        wipe_and_free(kept);
        return PAM_BUF_ERR;
    }
    if (put_env(pamh, ENV_TICKET, ticket) != PAM_SUCCESS) {
        forget_ticket(pamh);
        return PAM_BUF_ERR;
    }
    return PAM_SUCCESS;
}

/* The authenticate phase; its requests share one connection, which pam_sm_authenticate closes. */
static int authenticate_phase(pam_handle_t *pamh, int flags, struct options *options) {
    (void)flags;
    /* Whatever an earlier attempt in this transaction left is no longer good. */
    forget_ticket(pamh);
    drop_data(pamh, DATA_PASSWORD);
    const char *user = NULL;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL) return PAM_USER_UNKNOWN;

    bool code_needed = true;
    bool from_notice = false;
    int status = login_factors(pamh, options, &code_needed, &from_notice);
    if (status != PAM_SUCCESS) return status;

    /* The password: from an earlier module, or asked for. */
    char *password = NULL;
    const char *earlier = item(pamh, PAM_AUTHTOK);
    if ((options->use_first_pass || options->try_first_pass) && earlier != NULL) {
        password = copy_secret(earlier);
        if (password == NULL) return PAM_BUF_ERR;
    } else if (options->use_first_pass) {
        return refuse_locally(pamh, options, from_notice);
    } else {
        password = prompt(pamh, options, options->password_prompt);
        if (password == NULL) return PAM_CONV_ERR;
        if (pam_set_item(pamh, PAM_AUTHTOK, password) != PAM_SUCCESS)
            pam_syslog(pamh, LOG_WARNING, "cannot pass the password on to later modules");
    }

    /* The code: asked for whenever the zone needs one, whoever the user is. */
    char *code = NULL;
    if (code_needed) {
        code = prompt(pamh, options, options->code_prompt);
        if (code == NULL) {
            wipe_and_free(password);
            return PAM_CONV_ERR;
        }
    }

    int result = PAM_AUTH_ERR;
    struct exchange *exchange = NULL;
    if (strlen(user) > MAX_USER || strlen(password) > MAX_PASSWORD || (code != NULL && strlen(code) > MAX_CODE)) {
        log_failure(pamh, user, "input too long");
        result = refuse_locally(pamh, options, from_notice);
    } else if (code_needed && (code == NULL || code[0] == '\0')) {
        log_failure(pamh, user, "empty code");
        result = refuse_locally(pamh, options, from_notice);
    } else if ((exchange = exchange_new(pamh)) == NULL) {
        result = PAM_BUF_ERR;
    } else {
        mamori_request_begin(&exchange->request, "authenticate");
        mamori_request_string(&exchange->request, "user", user);
        mamori_request_string(&exchange->request, "password", password);
        mamori_request_string(&exchange->request, "code", code);
        mamori_request_string(&exchange->request, "service", item(pamh, PAM_SERVICE));
        mamori_request_string(&exchange->request, "tty", item(pamh, PAM_TTY));
        mamori_request_string(&exchange->request, "rhost", item(pamh, PAM_RHOST));
        result = call(pamh, options, exchange);
        if (result == PAM_BUF_ERR) {
            result = PAM_AUTH_ERR;
            log_failure(pamh, user, "input too long");
        } else if (result == PAM_SUCCESS) {
            char ticket[MAX_TOKEN + 1];
            char code_text[64];
            if (mamori_reply_ok(exchange->reply) && mamori_reply_string(exchange->reply, "ticket", ticket, sizeof ticket) &&
                is_token(ticket)) {
                result = keep_ticket(pamh, ticket);
                if (result != PAM_SUCCESS) {
                    pam_syslog(pamh, LOG_CRIT, "cannot keep the session ticket");
                } else {
                    if (mamori_reply_bool(exchange->reply, "password_change_required")) keep_password(pamh, user, password);
                    if (options->debug) {
                        char shown[MAX_USER + 1];
                        pam_syslog(pamh, LOG_DEBUG, "authenticated %s", printable(user, shown, sizeof shown));
                    }
                }
            } else if (!mamori_reply_ok(exchange->reply) &&
                       (strcmp(error_code(exchange, code_text, sizeof code_text), "busy") == 0 || strcmp(code_text, "internal") == 0)) {
                result = PAM_AUTHINFO_UNAVAIL;
                pam_syslog(pamh, LOG_ERR, "mamorid could not answer (%s)", code_text);
            } else {
                result = PAM_AUTH_ERR;
                log_failure(pamh, user, "refused by mamorid");
            }
            explicit_bzero(ticket, sizeof ticket);
        }
    }
    exchange_free(exchange);
    wipe_and_free(password);
    wipe_and_free(code);
    if (result != PAM_SUCCESS) {
        forget_ticket(pamh);
        drop_data(pamh, DATA_PASSWORD);
    }
    return result;
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    struct options options;
    parse_options(pamh, argc, argv, &options);
    return end_phase(&options, authenticate_phase(pamh, flags, &options));
}

/*
 * Establishing credentials: the ticket leaves the PAM environment for PAM data (sshd calls
 * setcred and open_session in the same process, after copying the environment back from its
 * authentication child). Deleting them forgets it. Never fails a login.
 */
PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)argc;
    (void)argv;
    drop_data(pamh, DATA_PASSWORD);
    if (flags & PAM_DELETE_CRED) {
        forget_ticket(pamh);
        return PAM_SUCCESS;
    }
    const void *data = NULL;
    bool have_data = pam_get_data(pamh, DATA_TICKET, &data) == PAM_SUCCESS && data != NULL;
    const char *env = pam_getenv(pamh, ENV_TICKET);
    if (!have_data && env != NULL && is_token(env)) {
        char *kept = copy_secret(env);
        if (kept == NULL || pam_set_data(pamh, DATA_TICKET, kept, free_secret) != PAM_SUCCESS) {
            wipe_and_free(kept);
            pam_syslog(pamh, LOG_CRIT, "cannot keep the session ticket");
        }
    }
    drop_env(pamh, ENV_TICKET);
    return PAM_SUCCESS;
}

/* ---- account ---- */

/* The acct mgmt phase; its requests share one connection, which pam_sm_acct_mgmt closes. */
static int acct_mgmt_phase(pam_handle_t *pamh, int flags, struct options *options) {
    (void)flags;
    const char *user = NULL;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL) return PAM_USER_UNKNOWN;
    if (strlen(user) > MAX_USER) return PAM_USER_UNKNOWN;
    struct exchange *exchange = exchange_new(pamh);
    if (exchange == NULL) return PAM_BUF_ERR;
    mamori_request_begin(&exchange->request, "account");
    mamori_request_string(&exchange->request, "user", user);
    mamori_request_string(&exchange->request, "service", item(pamh, PAM_SERVICE));
    int result = call(pamh, options, exchange);
    char shown[MAX_USER + 1];
    printable(user, shown, sizeof shown);
    if (result == PAM_BUF_ERR) {
        result = PAM_USER_UNKNOWN;
    } else if (result == PAM_SUCCESS) {
        char text[64];
        if (!mamori_reply_ok(exchange->reply)) {
            error_code(exchange, text, sizeof text);
            if (text[0] == '\0' || strcmp(text, "busy") == 0 || strcmp(text, "internal") == 0) {
                /* mamorid could not decide: as if it were unreachable. */
                pam_syslog(pamh, LOG_ERR, "mamorid could not answer the account request for %s (%s)", shown,
                           text[0] != '\0' ? text : "no error code");
                result = PAM_AUTHINFO_UNAVAIL;
            } else {
                pam_syslog(pamh, LOG_NOTICE, "account request for %s refused by mamorid (%s)", shown, text);
                result = PAM_PERM_DENIED;
            }
        } else if (!mamori_reply_string(exchange->reply, "result", text, sizeof text)) {
            pam_syslog(pamh, LOG_ERR, "mamorid's account reply for %s has no result", shown);
            result = PAM_AUTHINFO_UNAVAIL;
        } else if (strcmp(text, "allowed") == 0) {
            result = PAM_SUCCESS;
        } else if (strcmp(text, "password_change_required") == 0) {
            result = PAM_NEW_AUTHTOK_REQD;
        } else if (strcmp(text, "expired") == 0) {
            result = PAM_ACCT_EXPIRED;
        } else if (strcmp(text, "unknown_user") == 0) {
            result = PAM_USER_UNKNOWN;
        } else {
            /* "denied", or anything this module does not know: refused. */
            pam_syslog(pamh, LOG_NOTICE, "account refused by mamorid: user=%s", shown);
            result = PAM_PERM_DENIED;
        }
    }
    exchange_free(exchange);
    return result;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    struct options options;
    parse_options(pamh, argc, argv, &options);
    return end_phase(&options, acct_mgmt_phase(pamh, flags, &options));
}

/* ---- session ---- */

/* Closes a session by id; PAM_SUCCESS also when mamorid no longer knows it. */
static int close_session(pam_handle_t *pamh, struct options *options, const char *session) {
    struct exchange *exchange = exchange_new(pamh);
    if (exchange == NULL) return PAM_BUF_ERR;
    mamori_request_begin(&exchange->request, "session.close");
    mamori_request_string(&exchange->request, "session", session);
    int result = call(pamh, options, exchange);
    if (result == PAM_SUCCESS && !mamori_reply_ok(exchange->reply)) {
        char code[64];
        if (strcmp(error_code(exchange, code, sizeof code), "not_found") != 0) {
            pam_syslog(pamh, LOG_ERR, "mamorid did not close the session (%s)", code);
            result = PAM_SESSION_ERR;
        }
    } else if (result != PAM_SUCCESS) {
        result = PAM_SESSION_ERR;
    }
    exchange_free(exchange);
    return result;
}

/* The open session phase; its requests share one connection, which pam_sm_open_session closes. */
static int open_session_phase(pam_handle_t *pamh, int flags, struct options *options) {
    (void)flags;
    drop_data(pamh, DATA_PASSWORD);
    /* First of all, and on every path: the ticket leaves the PAM environment and PAM data. */
    char ticket[MAX_TOKEN + 1];
    bool have_ticket = take_ticket(pamh, ticket, sizeof ticket);
    const char *user = NULL;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL || strlen(user) > MAX_USER) {
        explicit_bzero(ticket, sizeof ticket);
        return PAM_SESSION_ERR;
    }
    if (!have_ticket) {
        pam_syslog(pamh, LOG_ERR, "no Mamori authentication in this PAM transaction to open a session with");
        return PAM_SESSION_ERR;
    }
    struct exchange *exchange = exchange_new(pamh);
    if (exchange == NULL) {
        explicit_bzero(ticket, sizeof ticket);
        return PAM_BUF_ERR;
    }
    mamori_request_begin(&exchange->request, "session.open");
    mamori_request_string(&exchange->request, "ticket", ticket);
    mamori_request_string(&exchange->request, "service", item(pamh, PAM_SERVICE));
    mamori_request_string(&exchange->request, "tty", item(pamh, PAM_TTY));
    mamori_request_string(&exchange->request, "rhost", item(pamh, PAM_RHOST));
    explicit_bzero(ticket, sizeof ticket);
    int result = call(pamh, options, exchange);
    char session[MAX_TOKEN + 1];
    char owner[MAX_USER + 2];
    session[0] = '\0';
    if (result != PAM_SUCCESS) {
        result = PAM_SESSION_ERR;
    } else if (!mamori_reply_ok(exchange->reply)) {
        char code[64];
        pam_syslog(pamh, LOG_ERR, "mamorid did not open a session (%s)", error_code(exchange, code, sizeof code));
        result = PAM_SESSION_ERR;
    } else if (!mamori_reply_string(exchange->reply, "session", session, sizeof session) || !is_token(session)) {
        pam_syslog(pamh, LOG_ERR, "mamorid's session reply has no session id");
        result = PAM_SESSION_ERR;
    } else if (!mamori_reply_string(exchange->reply, "user", owner, sizeof owner) || strcmp(owner, user) != 0) {
        /* A ticket of someone else's (put into the PAM environment by another module?): refused. */
        pam_syslog(pamh, LOG_ERR, "the ticket was not for this user: session closed");
        (void)close_session(pamh, options, session);
        result = PAM_SESSION_ERR;
    } else {
        char *kept = copy_secret(session);
        if (kept == NULL || pam_set_data(pamh, DATA_SESSION, kept, free_secret) != PAM_SUCCESS) {
            wipe_and_free(kept);
            (void)close_session(pamh, options, session);
            result = PAM_BUF_ERR;
        } else if (put_env(pamh, ENV_SESSION, session) != PAM_SUCCESS) {
            (void)close_session(pamh, options, session);
            drop_data(pamh, DATA_SESSION);
            result = PAM_SESSION_ERR;
        } else {
            result = PAM_SUCCESS;
        }
    }
    exchange_free(exchange);
    return result;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    struct options options;
    parse_options(pamh, argc, argv, &options);
    return end_phase(&options, open_session_phase(pamh, flags, &options));
}

/* The close session phase; its requests share one connection, which pam_sm_close_session closes. */
static int close_session_phase(pam_handle_t *pamh, int flags, struct options *options) {
    (void)flags;
    forget_ticket(pamh);
    const void *data = NULL;
    const char *found = NULL;
    if (pam_get_data(pamh, DATA_SESSION, &data) == PAM_SUCCESS && data != NULL) found = data;
    else found = pam_getenv(pamh, ENV_SESSION);
    if (found == NULL) return PAM_SUCCESS;
    char session[MAX_TOKEN + 1];
    bool valid = is_token(found);
    if (valid) memcpy(session, found, strlen(found) + 1);
    drop_data(pamh, DATA_SESSION);
    drop_env(pamh, ENV_SESSION);
    if (!valid) return PAM_SESSION_ERR;
    return close_session(pamh, options, session);
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    struct options options;
    parse_options(pamh, argc, argv, &options);
    return end_phase(&options, close_session_phase(pamh, flags, &options));
}

/* ---- password ---- */

/* Whether mamorid wants this user's password changed (for PAM_CHANGE_EXPIRED_AUTHTOK). */
static int change_required(pam_handle_t *pamh, struct options *options, const char *user, bool *required) {
    *required = false;
    struct exchange *exchange = exchange_new(pamh);
    if (exchange == NULL) return PAM_BUF_ERR;
    mamori_request_begin(&exchange->request, "account");
    mamori_request_string(&exchange->request, "user", user);
    mamori_request_string(&exchange->request, "service", item(pamh, PAM_SERVICE));
    int result = call(pamh, options, exchange);
    char text[64];
    if (result == PAM_SUCCESS) {
        if (mamori_reply_ok(exchange->reply) && mamori_reply_string(exchange->reply, "result", text, sizeof text)) {
            *required = strcmp(text, "password_change_required") == 0;
        } else {
            pam_syslog(pamh, LOG_ERR, "mamorid could not answer the account request (%s)", error_code(exchange, text, sizeof text));
            result = PAM_AUTHINFO_UNAVAIL;
        }
    } else if (result == PAM_BUF_ERR) {
        result = PAM_AUTHTOK_ERR;
    }
    exchange_free(exchange);
    return result;
}

/*
 * The current password: PAM_OLDAUTHTOK when an earlier module of this password stack set it;
 * else the one this module's auth verified for this user in this transaction (kept only when
 * mamorid asked for a change); else asked. PAM_AUTHTOK is never taken for it: Linux-PAM clears
 * it when pam_chauthtok starts, so any value it has is an earlier module's new password.
 */
static char *current_password(pam_handle_t *pamh, const char *user) {
    const char *old = item(pamh, PAM_OLDAUTHTOK);
    if (old != NULL) return copy_secret(old);
    const void *data = NULL;
    if (pam_get_data(pamh, DATA_PASSWORD, &data) == PAM_SUCCESS && data != NULL) {
        const struct kept_password *kept = data;
        if (strcmp(kept->user, user) == 0) return copy_secret(kept->password);
    }
    return ask(pamh, "Current password: ");
}

/* The chauthtok phase; its requests share one connection, which pam_sm_chauthtok closes. */
static int chauthtok_phase(pam_handle_t *pamh, int flags, struct options *options) {
    const char *user = NULL;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL || strlen(user) > MAX_USER) return PAM_USER_UNKNOWN;

    if (flags & PAM_PRELIM_CHECK) {
        /* Is a trusted mamorid there to take the change? Nothing is asked yet. */
        bool unused = false;
        return daemon_status(pamh, options, &unused) == PAM_SUCCESS ? PAM_SUCCESS : PAM_TRY_AGAIN;
    }
    if (!(flags & PAM_UPDATE_AUTHTOK)) return PAM_SERVICE_ERR;

    if (flags & PAM_CHANGE_EXPIRED_AUTHTOK) {
        bool required = false;
        int status = change_required(pamh, options, user, &required);
        if (status != PAM_SUCCESS) return status;
        if (!required) return PAM_SUCCESS; /* only expired passwords are to change, and ours is not */
    }

    mamori_close(&options->connection); /* never held while the user types: see prompt() */
    char *old = current_password(pamh, user);
    char *new_password = NULL;
    char *again = NULL;
    int result = PAM_AUTHTOK_ERR;
    if (old == NULL) {
        result = PAM_CONV_ERR;
    } else if (options->use_authtok) {
        const char *earlier = item(pamh, PAM_AUTHTOK);
        if (earlier == NULL) {
            pam_syslog(pamh, LOG_ERR, "use_authtok: no new password from an earlier module");
            result = PAM_AUTHTOK_ERR;
        } else if ((new_password = copy_secret(earlier)) == NULL) {
            result = PAM_BUF_ERR;
        } else {
            result = PAM_SUCCESS;
        }
    } else if ((new_password = prompt(pamh, options, "New password: ")) == NULL ||
               (again = prompt(pamh, options, "Retype new password: ")) == NULL) {
        result = PAM_CONV_ERR;
    } else if (strcmp(new_password, again) != 0) {
        if (pam_error(pamh, "The passwords do not match.") != PAM_SUCCESS) pam_syslog(pamh, LOG_NOTICE, "cannot show a message");
        result = PAM_AUTHTOK_ERR;
    } else {
        result = PAM_SUCCESS;
    }

    if (result == PAM_SUCCESS) {
        result = PAM_AUTHTOK_ERR;
        struct exchange *exchange = NULL;
        if (new_password[0] == '\0') {
            if (pam_error(pamh, "No password given.") != PAM_SUCCESS) pam_syslog(pamh, LOG_NOTICE, "cannot show a message");
        } else if (strlen(old) > MAX_PASSWORD || strlen(new_password) > MAX_PASSWORD) {
            if (pam_error(pamh, "The password is too long.") != PAM_SUCCESS) pam_syslog(pamh, LOG_NOTICE, "cannot show a message");
        } else if ((exchange = exchange_new(pamh)) == NULL) {
            result = PAM_BUF_ERR;
        } else {
            mamori_request_begin(&exchange->request, "password.change");
            mamori_request_string(&exchange->request, "user", user);
            mamori_request_string(&exchange->request, "old_password", old);
            mamori_request_string(&exchange->request, "new_password", new_password);
            result = call(pamh, options, exchange);
            if (result == PAM_BUF_ERR) {
                result = PAM_AUTHTOK_ERR;
            } else if (result == PAM_SUCCESS && mamori_reply_ok(exchange->reply)) {
                drop_data(pamh, DATA_PASSWORD);
                /* For later modules of the stack (use_authtok), as pam_unix does. */
                if (pam_set_item(pamh, PAM_OLDAUTHTOK, old) != PAM_SUCCESS || pam_set_item(pamh, PAM_AUTHTOK, new_password) != PAM_SUCCESS)
                    pam_syslog(pamh, LOG_WARNING, "cannot pass the passwords on to later modules");
            } else if (result == PAM_SUCCESS) {
                char code[64];
                char message[512];
                char shown[512];
                if (strcmp(error_code(exchange, code, sizeof code), "busy") == 0) {
                    result = PAM_AUTHTOK_LOCK_BUSY;
                } else {
                    result = PAM_AUTHTOK_ERR;
                }
                if (mamori_reply_string(exchange->reply, "message", message, sizeof message)) {
                    terminal_text(message, shown, sizeof shown);
                    if (pam_error(pamh, "%s", shown) != PAM_SUCCESS) pam_syslog(pamh, LOG_NOTICE, "cannot show a message");
                }
                char shown_user[MAX_USER + 1];
                pam_syslog(pamh, LOG_NOTICE, "password change for %s refused by mamorid (%s)",
                           printable(user, shown_user, sizeof shown_user), code[0] != '\0' ? code : "no error code");
                explicit_bzero(message, sizeof message);
                explicit_bzero(shown, sizeof shown);
            }
        }
        exchange_free(exchange);
    }
    wipe_and_free(old);
    wipe_and_free(new_password);
    wipe_and_free(again);
    return result;
}

PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    struct options options;
    parse_options(pamh, argc, argv, &options);
    return end_phase(&options, chauthtok_phase(pamh, flags, &options));
}
