/* pam_mamori.so's password phase: a change through mamorid, the current password asked only
   when it is not known already. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "pam_mamori.h"

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
