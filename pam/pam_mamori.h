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

/*
 * pam_mamori.so's parts, shared by its source files: the options, the PAM data it keeps, the
 * conversation and the calls to mamorid (pam_support.c), and one file per PAM phase group
 * (pam_auth.c: auth and account; pam_session.c; pam_password.c). Nothing here is exported:
 * exports.map lets out only the pam_sm_* entry points.
 */
#ifndef PAM_MAMORI_H
#define PAM_MAMORI_H

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD

#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

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

/* The password this module's auth verified, kept only when mamorid asks for a change. */
struct kept_password {
    char user[MAX_USER + 1];
    char password[MAX_PASSWORD + 1];
};

/* A request and its reply, on the heap (64 KiB is too much for some callers' stacks). */
struct exchange {
    struct mamori_request request;
    char reply[MAMORI_REPLY_SIZE];
};

const char *printable(const char *in, char *out, size_t size);
void terminal_text(const char *in, char *out, size_t size);
bool is_token(const char *text);
void copy_prompt(char *out, size_t size, const char *value);
void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *options);
void resolve_daemon_user(pam_handle_t *pamh, struct options *options);
const char *item(pam_handle_t *pamh, int type);
void wipe_and_free(char *secret);
void free_secret(pam_handle_t *pamh, void *data, int error_status);
void free_kept_password(pam_handle_t *pamh, void *data, int error_status);
void drop_data(pam_handle_t *pamh, const char *name);
void drop_env(pam_handle_t *pamh, const char *name);
void forget_ticket(pam_handle_t *pamh);
bool take_ticket(pam_handle_t *pamh, char *out, size_t size);
int put_env(pam_handle_t *pamh, const char *name, const char *value);
char *ask(pam_handle_t *pamh, const char *prompt);
char *copy_secret(const char *secret);
void log_failure(pam_handle_t *pamh, const char *user, const char *why);
struct exchange *exchange_new(pam_handle_t *pamh);
void exchange_free(struct exchange *exchange);
int call(pam_handle_t *pamh, struct options *options, struct exchange *exchange);
char *prompt(pam_handle_t *pamh, struct options *options, const char *text);
int end_phase(struct options *options, int result);
const char *error_code(const struct exchange *exchange, char *out, size_t size);
int daemon_status(pam_handle_t *pamh, struct options *options, bool *code_needed);
int login_factors(pam_handle_t *pamh, struct options *options, bool *code_needed, bool *from_notice);
int refuse_locally(pam_handle_t *pamh, struct options *options, bool from_notice);

#endif
