/* pam_mamori.so's auth phase (password, then the code, in one authenticate request; setcred
   keeps the ticket for the session phase) and its account phase. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "pam_mamori.h"

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
