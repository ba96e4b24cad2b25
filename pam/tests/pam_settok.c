/*
 * pam_settok.so: a test module standing for another module of a password stack (pam_unix,
 * pam_pwquality). In pam_chauthtok's update pass it sets PAM_AUTHTOK (authtok=VALUE: an earlier
 * module's new password) and PAM_OLDAUTHTOK (oldauthtok=VALUE: the current password an earlier
 * module asked for). Built by `make check` only; never installed.
 */
#define PAM_SM_PASSWORD
#include <security/pam_modules.h>
#include <string.h>

PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    if (!(flags & PAM_UPDATE_AUTHTOK)) return PAM_SUCCESS;
    for (int i = 0; i < argc; i++) {
        int result = PAM_SUCCESS;
        if (strncmp(argv[i], "authtok=", 8) == 0) result = pam_set_item(pamh, PAM_AUTHTOK, argv[i] + 8);
        else if (strncmp(argv[i], "oldauthtok=", 11) == 0) result = pam_set_item(pamh, PAM_OLDAUTHTOK, argv[i] + 11);
        if (result != PAM_SUCCESS) return result;
    }
    return PAM_SUCCESS;
}
