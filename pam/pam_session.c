/* pam_mamori.so's session phase: opens the Mamori session with the ticket auth got, closes it
   at logout. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "pam_mamori.h"

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
