/*
 * pam_mamori.so: terminal logins through mamorid (password, then the one-time code, in one
 * request), with the account, session and password phases. A thin glue over mamori_client.c;
 * every secret is wiped with explicit_bzero before its memory is released and never logged.
 *
 * Module arguments: socket=PATH (default /run/mamori/mamori.sock), timeout=MS (default 5000),
 * password_prompt=TEXT, code_prompt=TEXT (a space as '_'), use_first_pass, try_first_pass, debug.
 */
#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD

#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "mamori_client.h"

#define DATA_TICKET "pam_mamori_ticket"
#define DATA_SESSION "pam_mamori_session"
#define MAX_USER 64
#define MAX_PASSWORD 1024
#define MAX_CODE 64

struct options {
    const char *socket_path;
    int timeout_ms;
    char password_prompt[128];
    char code_prompt[128];
    bool use_first_pass;
    bool try_first_pass;
    bool debug;
};

static void copy_prompt(char *out, size_t size, const char *value) {
    snprintf(out, size, "%s", value);
    for (char *p = out; *p != '\0'; p++) if (*p == '_') *p = ' ';
}

static void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *options) {
    options->socket_path = "/run/mamori/mamori.sock";
    options->timeout_ms = 5000;
    snprintf(options->password_prompt, sizeof options->password_prompt, "Password: ");
    snprintf(options->code_prompt, sizeof options->code_prompt, "Verification code: ");
    options->use_first_pass = false;
    options->try_first_pass = false;
    options->debug = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "socket=", 7) == 0) options->socket_path = arg + 7;
        else if (strncmp(arg, "timeout=", 8) == 0) {
            int value = atoi(arg + 8);
            if (value >= 10 && value <= 120000) options->timeout_ms = value;
            else pam_syslog(pamh, LOG_WARNING, "ignoring timeout=%s (10 to 120000 ms)", arg + 8);
        } else if (strncmp(arg, "password_prompt=", 16) == 0) copy_prompt(options->password_prompt, sizeof options->password_prompt, arg + 16);
        else if (strncmp(arg, "code_prompt=", 12) == 0) copy_prompt(options->code_prompt, sizeof options->code_prompt, arg + 12);
        else if (strcmp(arg, "use_first_pass") == 0) options->use_first_pass = true;
        else if (strcmp(arg, "try_first_pass") == 0) options->try_first_pass = true;
        else if (strcmp(arg, "debug") == 0) options->debug = true;
        else pam_syslog(pamh, LOG_WARNING, "unknown option: %s", arg);
    }
}

static const char *item(pam_handle_t *pamh, int type) {
    const void *value = NULL;
    if (pam_get_item(pamh, type, &value) != PAM_SUCCESS || value == NULL) return NULL;
    return (const char *)value;
}

static void free_secret(pam_handle_t *pamh, void *data, int error_status) {
    (void)pamh;
    (void)error_status;
    if (data != NULL) {
        explicit_bzero(data, strlen((char *)data));
        free(data);
    }
}

static void wipe_and_free(char *secret) {
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

/* Asks the conversation for a secret without echo; NULL if it could not. */
static char *ask(pam_handle_t *pamh, const char *prompt) {
    char *answer = NULL;
    if (pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, "%s", prompt) != PAM_SUCCESS) return NULL;
    return answer;
}

/* The usual authentication-failure line, as pam_unix writes it; never a secret. */
static void log_failure(pam_handle_t *pamh, const char *user, const char *why) {
    const char *tty = item(pamh, PAM_TTY);
    const char *ruser = item(pamh, PAM_RUSER);
    const char *rhost = item(pamh, PAM_RHOST);
    const char *logname = pam_modutil_getlogin(pamh);
    pam_syslog(pamh, LOG_NOTICE, "authentication failure; logname=%s uid=%d euid=%d tty=%s ruser=%s rhost=%s user=%s (%s)",
               logname ? logname : "", (int)getuid(), (int)geteuid(), tty ? tty : "", ruser ? ruser : "",
               rhost ? rhost : "", user ? user : "", why);
}

/* Sends a request; maps transport failures. Returns PAM_SUCCESS with the reply, or an error. */
static int call(pam_handle_t *pamh, const struct options *options, struct mamori_request *request, char *reply,
                size_t reply_size) {
    mamori_request_end(request);
    enum mamori_status status = mamori_call(options->socket_path, options->timeout_ms, request, reply, reply_size);
    mamori_request_wipe(request);
    switch (status) {
    case MAMORI_OK: return PAM_SUCCESS;
    case MAMORI_TOO_LONG: return PAM_AUTH_ERR;
    case MAMORI_TIMEOUT:
        pam_syslog(pamh, LOG_ERR, "mamorid at %s did not answer within %d ms", options->socket_path, options->timeout_ms);
        return PAM_AUTHINFO_UNAVAIL;
    default:
        pam_syslog(pamh, LOG_ERR, "cannot reach mamorid at %s", options->socket_path);
        return PAM_AUTHINFO_UNAVAIL;
    }
}

static bool needs_code(pam_handle_t *pamh, const struct options *options, int *error) {
    struct mamori_request request;
    char reply[4096];
    mamori_request_begin(&request, "status");
    *error = call(pamh, options, &request, reply, sizeof reply);
    if (*error != PAM_SUCCESS) return true;
    if (!mamori_reply_ok(reply)) {
        *error = PAM_AUTHINFO_UNAVAIL;
        return true;
    }
    return mamori_reply_array_contains(reply, "login_factors", "totp");
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)flags;
    struct options options;
    parse_options(pamh, argc, argv, &options);
    const char *user = NULL;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL) return PAM_USER_UNKNOWN;

    int error = PAM_SUCCESS;
    bool code_needed = needs_code(pamh, &options, &error);
    if (error != PAM_SUCCESS) return error;

    /* The password: from an earlier module, or asked for. */
    char *password = NULL;
    const char *earlier = item(pamh, PAM_AUTHTOK);
    if ((options.use_first_pass || options.try_first_pass) && earlier != NULL) {
        password = strdup(earlier);
    } else if (options.use_first_pass) {
        return PAM_AUTH_ERR;
    } else {
        password = ask(pamh, options.password_prompt);
        if (password != NULL) pam_set_item(pamh, PAM_AUTHTOK, password);
    }
    if (password == NULL) return PAM_CONV_ERR;

    /* The code: asked for whenever the zone needs one, whoever the user is. */
    char *code = NULL;
    if (code_needed) {
        code = ask(pamh, options.code_prompt);
        if (code == NULL) {
            wipe_and_free(password);
            return PAM_CONV_ERR;
        }
    }

    int result = PAM_AUTH_ERR;
    if (strlen(user) > MAX_USER || strlen(password) > MAX_PASSWORD || (code != NULL && strlen(code) > MAX_CODE)) {
        log_failure(pamh, user, "input too long");
    } else if (code_needed && (code == NULL || code[0] == '\0')) {
        log_failure(pamh, user, "empty code");
    } else {
        struct mamori_request request;
        char reply[MAMORI_MAX_LINE];
        mamori_request_begin(&request, "authenticate");
        mamori_request_string(&request, "user", user);
        mamori_request_string(&request, "password", password);
        mamori_request_string(&request, "code", code);
        mamori_request_string(&request, "service", item(pamh, PAM_SERVICE));
        mamori_request_string(&request, "tty", item(pamh, PAM_TTY));
        mamori_request_string(&request, "rhost", item(pamh, PAM_RHOST));
        result = call(pamh, &options, &request, reply, sizeof reply);
        if (result == PAM_SUCCESS) {
            char ticket[128];
            char code_text[64];
            if (mamori_reply_ok(reply) && mamori_reply_string(reply, "ticket", ticket, sizeof ticket)) {
                char *kept = strdup(ticket);
                explicit_bzero(ticket, sizeof ticket);
                if (kept == NULL || pam_set_data(pamh, DATA_TICKET, kept, free_secret) != PAM_SUCCESS) {
                    wipe_and_free(kept);
                    result = PAM_BUF_ERR;
                } else if (options.debug) {
                    pam_syslog(pamh, LOG_DEBUG, "authenticated %s", user);
                }
            } else if (mamori_reply_error_code(reply, code_text, sizeof code_text) && strcmp(code_text, "busy") == 0) {
                result = PAM_AUTHINFO_UNAVAIL;
                pam_syslog(pamh, LOG_ERR, "mamorid is busy");
            } else {
                result = PAM_AUTH_ERR;
                log_failure(pamh, user, "refused by mamorid");
            }
        }
        explicit_bzero(reply, sizeof reply);
    }
    wipe_and_free(password);
    wipe_and_free(code);
    return result;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)pamh; (void)flags; (void)argc; (void)argv;
    return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)flags;
    struct options options;
    parse_options(pamh, argc, argv, &options);
    const char *user = NULL;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL) return PAM_USER_UNKNOWN;
    if (strlen(user) > MAX_USER) return PAM_USER_UNKNOWN;
    struct mamori_request request;
    char reply[MAMORI_MAX_LINE];
    mamori_request_begin(&request, "account");
    mamori_request_string(&request, "user", user);
    mamori_request_string(&request, "service", item(pamh, PAM_SERVICE));
    int error = call(pamh, &options, &request, reply, sizeof reply);
    if (error != PAM_SUCCESS) return error;
    char result[64];
    if (!mamori_reply_ok(reply) || !mamori_reply_string(reply, "result", result, sizeof result)) return PAM_PERM_DENIED;
    if (strcmp(result, "allowed") == 0) return PAM_SUCCESS;
    if (strcmp(result, "password_change_required") == 0) return PAM_NEW_AUTHTOK_REQD;
    if (strcmp(result, "expired") == 0) return PAM_ACCT_EXPIRED;
    if (strcmp(result, "unknown_user") == 0) return PAM_USER_UNKNOWN;
    pam_syslog(pamh, LOG_NOTICE, "account refused by mamorid: user=%s", user);
    return PAM_PERM_DENIED;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)flags;
    struct options options;
    parse_options(pamh, argc, argv, &options);
    const void *ticket = NULL;
    if (pam_get_data(pamh, DATA_TICKET, &ticket) != PAM_SUCCESS || ticket == NULL) {
        pam_syslog(pamh, LOG_ERR, "no Mamori authentication in this PAM transaction to open a session with");
        return PAM_SESSION_ERR;
    }
    struct mamori_request request;
    char reply[MAMORI_MAX_LINE];
    mamori_request_begin(&request, "session.open");
    mamori_request_string(&request, "ticket", (const char *)ticket);
    mamori_request_string(&request, "service", item(pamh, PAM_SERVICE));
    mamori_request_string(&request, "tty", item(pamh, PAM_TTY));
    mamori_request_string(&request, "rhost", item(pamh, PAM_RHOST));
    int error = call(pamh, &options, &request, reply, sizeof reply);
    pam_set_data(pamh, DATA_TICKET, NULL, NULL);
    if (error != PAM_SUCCESS) return PAM_SESSION_ERR;
    char session[128];
    if (!mamori_reply_ok(reply) || !mamori_reply_string(reply, "session", session, sizeof session)) return PAM_SESSION_ERR;
    char variable[160];
    snprintf(variable, sizeof variable, "MAMORI_SESSION=%s", session);
    char *kept = strdup(session);
    if (kept == NULL || pam_set_data(pamh, DATA_SESSION, kept, free_secret) != PAM_SUCCESS) {
        free(kept);
        return PAM_BUF_ERR;
    }
    return pam_putenv(pamh, variable) == PAM_SUCCESS ? PAM_SUCCESS : PAM_SESSION_ERR;
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)flags;
    struct options options;
    parse_options(pamh, argc, argv, &options);
    const void *session = NULL;
    if (pam_get_data(pamh, DATA_SESSION, &session) != PAM_SUCCESS || session == NULL) {
        session = pam_getenv(pamh, "MAMORI_SESSION");
        if (session == NULL) return PAM_SUCCESS;
    }
    struct mamori_request request;
    char reply[4096];
    mamori_request_begin(&request, "session.close");
    mamori_request_string(&request, "session", (const char *)session);
    int error = call(pamh, &options, &request, reply, sizeof reply);
    if (error != PAM_SUCCESS) return PAM_SESSION_ERR;
    return mamori_reply_ok(reply) ? PAM_SUCCESS : PAM_SESSION_ERR;
}

PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    struct options options;
    parse_options(pamh, argc, argv, &options);
    if (flags & PAM_PRELIM_CHECK) return PAM_SUCCESS;
    const char *user = NULL;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL || strlen(user) > MAX_USER) return PAM_USER_UNKNOWN;
    char *old = NULL;
    const char *earlier = item(pamh, PAM_OLDAUTHTOK);
    if (earlier == NULL) earlier = item(pamh, PAM_AUTHTOK);
    old = earlier != NULL ? strdup(earlier) : ask(pamh, "Current password: ");
    char *new_password = ask(pamh, "New password: ");
    char *again = new_password != NULL ? ask(pamh, "Retype new password: ") : NULL;
    int result = PAM_AUTHTOK_ERR;
    if (old == NULL || new_password == NULL || again == NULL) {
        result = PAM_CONV_ERR;
    } else if (strcmp(new_password, again) != 0) {
        pam_error(pamh, "The passwords do not match.");
    } else if (strlen(old) <= MAX_PASSWORD && strlen(new_password) <= MAX_PASSWORD) {
        struct mamori_request request;
        char reply[MAMORI_MAX_LINE];
        mamori_request_begin(&request, "password.change");
        mamori_request_string(&request, "user", user);
        mamori_request_string(&request, "old_password", old);
        mamori_request_string(&request, "new_password", new_password);
        result = call(pamh, &options, &request, reply, sizeof reply);
        if (result == PAM_SUCCESS) {
            char message[512];
            if (mamori_reply_ok(reply)) {
                result = PAM_SUCCESS;
            } else {
                if (mamori_reply_string(reply, "message", message, sizeof message)) pam_error(pamh, "%s", message);
                result = PAM_AUTHTOK_ERR;
            }
        } else if (result == PAM_AUTH_ERR) {
            result = PAM_AUTHTOK_ERR;
        } else {
            result = PAM_AUTHTOK_LOCK_BUSY;
        }
        explicit_bzero(reply, sizeof reply);
    }
    wipe_and_free(old);
    wipe_and_free(new_password);
    wipe_and_free(again);
    return result;
}
