/*
 * pam_harness: runs PAM phases through the real Linux-PAM library with a service file from a
 * folder of the test's own (pam_start_confdir), answering prompts from the command line.
 *
 *   pam_harness CONFDIR SERVICE USER PHASES [ANSWER ...]
 *
 * PHASES is a comma-separated list of
 *   auth, account, open, close, chauthtok      pam_authenticate … pam_chauthtok(0)
 *   chauthtok-expired                          pam_chauthtok(PAM_CHANGE_EXPIRED_AUTHTOK)
 *   setcred, delcred                           pam_setcred(PAM_ESTABLISH_CRED / PAM_DELETE_CRED)
 *   env                                        prints the whole PAM environment
 *   forked-auth                                as OpenSSH's sshd: pam_authenticate, pam_acct_mgmt
 *                                              and (when a new password is required)
 *                                              pam_chauthtok(PAM_CHANGE_EXPIRED_AUTHTOK) in a
 *                                              forked child, which sends back only its PAM
 *                                              environment; the parent puts it into its own
 *                                              and prints "forked-done CODE NAME"
 * The run stops at the first phase that fails, unless that phase is written with a '?' after
 * it ("auth?,env"). Each prompt is answered with the next ANSWER; with none left the
 * conversation fails (as a script that does not expect the prompt would). Prints one line per
 * event:
 *   prompt-off TEXT | prompt-on TEXT | error TEXT | info TEXT
 *   PHASE CODE NAME          (e.g. "auth 0 PAM_SUCCESS")
 *   env MAMORI_SESSION=…     (after open)
 *   pamenv NAME=VALUE …      (for env; "pamenv -" when it is empty)
 */
#include <security/pam_appl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char **answers;
static int answer_count;
static int next_answer;

static int converse(int count, const struct pam_message **messages, struct pam_response **responses, void *data) {
    (void)data;
    if (count <= 0) return PAM_CONV_ERR;
    struct pam_response *reply = calloc((size_t)count, sizeof *reply);
    if (reply == NULL) return PAM_BUF_ERR;
    for (int i = 0; i < count; i++) {
        const struct pam_message *message = messages[i];
        switch (message->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
        case PAM_PROMPT_ECHO_ON:
            printf("%s %s\n", message->msg_style == PAM_PROMPT_ECHO_OFF ? "prompt-off" : "prompt-on", message->msg);
            if (next_answer >= answer_count || (reply[i].resp = strdup(answers[next_answer])) == NULL) {
                for (int j = 0; j < i; j++) free(reply[j].resp);
                free(reply);
                fflush(stdout);
                return PAM_CONV_ERR;
            }
            next_answer++;
            break;
        case PAM_ERROR_MSG: printf("error %s\n", message->msg); break;
        default: printf("info %s\n", message->msg); break;
        }
    }
    *responses = reply;
    fflush(stdout);
    return PAM_SUCCESS;
}

static const char *name(int code) {
    switch (code) {
    case PAM_SUCCESS: return "PAM_SUCCESS";
    case PAM_AUTH_ERR: return "PAM_AUTH_ERR";
    case PAM_AUTHINFO_UNAVAIL: return "PAM_AUTHINFO_UNAVAIL";
    case PAM_USER_UNKNOWN: return "PAM_USER_UNKNOWN";
    case PAM_PERM_DENIED: return "PAM_PERM_DENIED";
    case PAM_ACCT_EXPIRED: return "PAM_ACCT_EXPIRED";
    case PAM_NEW_AUTHTOK_REQD: return "PAM_NEW_AUTHTOK_REQD";
    case PAM_CONV_ERR: return "PAM_CONV_ERR";
    case PAM_SESSION_ERR: return "PAM_SESSION_ERR";
    case PAM_AUTHTOK_ERR: return "PAM_AUTHTOK_ERR";
    case PAM_AUTHTOK_LOCK_BUSY: return "PAM_AUTHTOK_LOCK_BUSY";
    case PAM_TRY_AGAIN: return "PAM_TRY_AGAIN";
    case PAM_BUF_ERR: return "PAM_BUF_ERR";
    case PAM_SYSTEM_ERR: return "PAM_SYSTEM_ERR";
    case PAM_SERVICE_ERR: return "PAM_SERVICE_ERR";
    case PAM_MAXTRIES: return "PAM_MAXTRIES";
    default: return "OTHER";
    }
}

static void print_env(pam_handle_t *pamh) {
    char **list = pam_getenvlist(pamh);
    if (list == NULL || list[0] == NULL) printf("pamenv -\n");
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        printf("pamenv %s\n", list[i]);
        free(list[i]);
    }
    free(list);
}

static int write_all(int fd, const void *data, size_t length) {
    const char *p = data;
    while (length > 0) {
        ssize_t n = write(fd, p, length);
        if (n <= 0) return -1;
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *data, size_t length) {
    char *p = data;
    while (length > 0) {
        ssize_t n = read(fd, p, length);
        if (n <= 0) return -1;
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

/* sshd's authentication child: its PAM data dies with it; only the environment comes back. */
static int forked_auth(pam_handle_t *pamh) {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return PAM_SYSTEM_ERR;
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) return PAM_SYSTEM_ERR;
    if (child == 0) {
        close(pipe_fds[0]);
        int status = pam_authenticate(pamh, 0);
        printf("forked-auth %d %s\n", status, name(status));
        if (status == PAM_SUCCESS) {
            status = pam_acct_mgmt(pamh, 0);
            printf("forked-account %d %s\n", status, name(status));
            if (status == PAM_NEW_AUTHTOK_REQD) {
                status = pam_chauthtok(pamh, PAM_CHANGE_EXPIRED_AUTHTOK);
                printf("forked-chauthtok %d %s\n", status, name(status));
            }
        }
        fflush(stdout);
        char **list = pam_getenvlist(pamh);
        uint32_t count = 0;
        while (list != NULL && list[count] != NULL) count++;
        int32_t header[2] = {status, next_answer};
        int failed = write_all(pipe_fds[1], header, sizeof header) || write_all(pipe_fds[1], &count, sizeof count);
        for (uint32_t i = 0; i < count; i++) {
            uint32_t length = (uint32_t)strlen(list[i]);
            failed = failed || write_all(pipe_fds[1], &length, sizeof length) || write_all(pipe_fds[1], list[i], length);
            free(list[i]);
        }
        free(list);
        pam_end(pamh, status | PAM_DATA_SILENT);
        _exit(failed ? 1 : 0);
    }
    close(pipe_fds[1]);
    int32_t header[2] = {PAM_SYSTEM_ERR, next_answer};
    uint32_t count = 0;
    int status = PAM_SYSTEM_ERR;
    if (read_all(pipe_fds[0], header, sizeof header) == 0 && read_all(pipe_fds[0], &count, sizeof count) == 0 && count <= 1024) {
        status = header[0];
        next_answer = header[1];
        for (uint32_t i = 0; i < count; i++) {
            uint32_t length = 0;
            char *entry = NULL;
            if (read_all(pipe_fds[0], &length, sizeof length) != 0 || length > 65536 || (entry = calloc(1, length + 1)) == NULL ||
                read_all(pipe_fds[0], entry, length) != 0) {
                free(entry);
                status = PAM_SYSTEM_ERR;
                break;
            }
            if (pam_putenv(pamh, entry) != PAM_SUCCESS) status = PAM_SYSTEM_ERR;
            free(entry);
        }
    }
    close(pipe_fds[0]);
    int child_status = 0;
    if (waitpid(child, &child_status, 0) != child || !WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0) status = PAM_SYSTEM_ERR;
    return status;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: pam_harness CONFDIR SERVICE USER PHASES [ANSWER ...]\n");
        return 64;
    }
    answers = argv + 5;
    answer_count = argc - 5;
    struct pam_conv conversation = {converse, NULL};
    pam_handle_t *pamh = NULL;
    int status = pam_start_confdir(argv[2], argv[3], &conversation, argv[1], &pamh);
    if (status != PAM_SUCCESS) {
        printf("start %d %s\n", status, name(status));
        return 1;
    }
    if (pam_set_item(pamh, PAM_TTY, "tty7") != PAM_SUCCESS) {
        fprintf(stderr, "pam_set_item failed\n");
        pam_end(pamh, PAM_SYSTEM_ERR);
        return 1;
    }
    char *phases = strdup(argv[4]);
    if (phases == NULL) {
        pam_end(pamh, PAM_BUF_ERR);
        return 1;
    }
    int last = PAM_SUCCESS;
    int exit_code = 0;
    char *saved = NULL;
    for (char *phase = strtok_r(phases, ",", &saved); phase != NULL; phase = strtok_r(NULL, ",", &saved)) {
        size_t length = strlen(phase);
        int keep_going = length > 0 && phase[length - 1] == '?';
        if (keep_going) phase[length - 1] = '\0';
        int printed = 1;
        if (strcmp(phase, "auth") == 0) last = pam_authenticate(pamh, 0);
        else if (strcmp(phase, "account") == 0) last = pam_acct_mgmt(pamh, 0);
        else if (strcmp(phase, "open") == 0) last = pam_open_session(pamh, 0);
        else if (strcmp(phase, "close") == 0) last = pam_close_session(pamh, 0);
        else if (strcmp(phase, "chauthtok") == 0) last = pam_chauthtok(pamh, 0);
        else if (strcmp(phase, "chauthtok-expired") == 0) last = pam_chauthtok(pamh, PAM_CHANGE_EXPIRED_AUTHTOK);
        else if (strcmp(phase, "setcred") == 0) last = pam_setcred(pamh, PAM_ESTABLISH_CRED);
        else if (strcmp(phase, "delcred") == 0) last = pam_setcred(pamh, PAM_DELETE_CRED);
        else if (strcmp(phase, "forked-auth") == 0) {
            last = forked_auth(pamh);
            printf("forked-done %d %s\n", last, name(last));
            printed = 0;
        }
        else if (strcmp(phase, "env") == 0) { print_env(pamh); printed = 0; }
        else { fprintf(stderr, "unknown phase %s\n", phase); exit_code = 64; break; }
        if (printed) printf("%s %d %s\n", phase, last, name(last));
        if (strcmp(phase, "open") == 0 && last == PAM_SUCCESS) {
            const char *session = pam_getenv(pamh, "MAMORI_SESSION");
            printf("env MAMORI_SESSION=%s\n", session ? session : "");
        }
        fflush(stdout);
        if (last != PAM_SUCCESS && !keep_going) break;
    }
    free(phases);
    pam_end(pamh, last);
    return exit_code;
}
