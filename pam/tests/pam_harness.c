/*
 * pam_harness: runs PAM phases through the real Linux-PAM library with a service file from a
 * folder of the test's own (pam_start_confdir), answering prompts from the command line.
 *
 *   pam_harness CONFDIR SERVICE USER PHASES [ANSWER ...]
 *
 * PHASES is a comma-separated list of auth, account, open, close, chauthtok. Each prompt is
 * answered with the next ANSWER; with none left the conversation fails (as a script that does
 * not expect the prompt would). Prints one line per event:
 *   prompt-off TEXT | prompt-on TEXT | error TEXT | info TEXT
 *   PHASE CODE NAME          (e.g. "auth 0 PAM_SUCCESS")
 *   env MAMORI_SESSION=…     (after open)
 */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char **answers;
static int answer_count;
static int next_answer;

static int converse(int count, const struct pam_message **messages, struct pam_response **responses, void *data) {
    (void)data;
    struct pam_response *reply = calloc((size_t)count, sizeof *reply);
    if (reply == NULL) return PAM_BUF_ERR;
    for (int i = 0; i < count; i++) {
        const struct pam_message *message = messages[i];
        switch (message->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
        case PAM_PROMPT_ECHO_ON:
            printf("%s %s\n", message->msg_style == PAM_PROMPT_ECHO_OFF ? "prompt-off" : "prompt-on", message->msg);
            if (next_answer >= answer_count) {
                for (int j = 0; j < i; j++) free(reply[j].resp);
                free(reply);
                return PAM_CONV_ERR;
            }
            reply[i].resp = strdup(answers[next_answer++]);
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
    default: return "OTHER";
    }
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
    pam_set_item(pamh, PAM_TTY, "tty7");
    char *phases = strdup(argv[4]);
    int last = PAM_SUCCESS;
    for (char *phase = strtok(phases, ","); phase != NULL; phase = strtok(NULL, ",")) {
        if (strcmp(phase, "auth") == 0) last = pam_authenticate(pamh, 0);
        else if (strcmp(phase, "account") == 0) last = pam_acct_mgmt(pamh, 0);
        else if (strcmp(phase, "open") == 0) last = pam_open_session(pamh, 0);
        else if (strcmp(phase, "close") == 0) last = pam_close_session(pamh, 0);
        else if (strcmp(phase, "chauthtok") == 0) last = pam_chauthtok(pamh, 0);
        else { fprintf(stderr, "unknown phase %s\n", phase); return 64; }
        printf("%s %d %s\n", phase, last, name(last));
        if (strcmp(phase, "open") == 0 && last == PAM_SUCCESS) {
            const char *session = pam_getenv(pamh, "MAMORI_SESSION");
            printf("env MAMORI_SESSION=%s\n", session ? session : "");
        }
        fflush(stdout);
        if (last != PAM_SUCCESS) break;
    }
    free(phases);
    pam_end(pamh, last);
    return 0;
}
