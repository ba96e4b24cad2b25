#!/usr/bin/env python3
"""pam_mamori.so's phases through the real Linux-PAM library (pam_harness) and a real mamorid.

  pam/tests/pam_phases.py MAMORID BUILD WORK

MAMORID is the daemon binary, BUILD the folder with pam_harness, pam_mamori.so and pam_settok.so
(`make -C pam check` builds them with ASan and UBSan), WORK a folder for this run (made if
missing; what the run makes in it is removed at the end). Run as root. Checks:

- the ticket: kept in the PAM environment (MAMORI_TICKET) after auth, gone after setcred and after
  open_session on every path (success, no ticket, a refused ticket, someone else's ticket), never
  left by a failed auth; an sshd-like run (auth in a forked child that sends back only the PAM
  environment) opens the session;
- the account phase: busy, internal, silent, garbage and a closed socket give
  PAM_AUTHINFO_UNAVAIL; a denied result and a denied error give PAM_PERM_DENIED;
- the password phase: no current-password prompt right after a login with a temporary password
  (also in the sshd-like child); an earlier module's new PAM_AUTHTOK is never sent as the old
  password; PAM_OLDAUTHTOK is; use_authtok; PAM_CHANGE_EXPIRED_AUTHTOK with nothing to change asks
  nothing; the preliminary check fails with PAM_TRY_AGAIN, asking nothing, when mamorid is down.

Prints one line per check; exits 1 on any failure, with mamorid's log.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mamori_fixture import Checks, Daemon, Failure, print_log  # noqa: E402


class Harness:
    def __init__(self, build, confdir):
        self.binary = os.path.join(build, "pam_harness")
        self.module = os.path.join(build, "pam_mamori.so")
        self.settok = os.path.join(build, "pam_settok.so")
        self.confdir = confdir

    def service(self, name, text):
        with open(os.path.join(self.confdir, name), "w", encoding="utf-8") as handle:
            handle.write(text)

    def stack(self, name, socket_path, extra="", before="", types=("auth", "account", "session", "password")):
        lines = [before] if before else []
        lines += [f"{kind} required {self.module} socket={socket_path} timeout=1500 {extra}".rstrip() for kind in types]
        self.service(name, "\n".join(lines) + "\n")

    def run(self, service, user, phases, *answers, timeout=60):
        result = subprocess.run([self.binary, self.confdir, service, user, phases, *answers], capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode != 0 or "runtime error" in result.stderr or "Sanitizer" in result.stderr:
            raise Failure(f"pam_harness {phases} exited {result.returncode}: {result.stderr[-3000:]}")
        return result.stdout.splitlines()


def env_of(lines):
    """The PAM environment of each 'env' phase, in order."""
    found, current = [], None
    for line in lines:
        if line.startswith("pamenv "):
            if current is None:
                current = {}
                found.append(current)
            entry = line[len("pamenv "):]
            if entry != "-":
                name, _, value = entry.partition("=")
                current[name] = value
        else:
            current = None
    return found


class ScriptedServer:
    """A server run by root (so trusted) that answers every connection with one scripted line."""

    def __init__(self, path, reply):
        self.path = path
        self.reply = reply  # bytes, or None: accept and stay silent
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.held = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                connection, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            connection.settimeout(5)
            try:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if self.reply is None:
                    self.held.append(connection)
                    continue
                connection.sendall(self.reply)
            except OSError:
                pass
            connection.close()

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        for connection in self.held:
            connection.close()
        self.listener.close()
        os.unlink(self.path)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    if os.geteuid() != 0:
        sys.exit("pam_phases.py: run as root")
    mamorid, build, work = (os.path.abspath(argument) for argument in sys.argv[1:])
    os.makedirs(work, exist_ok=True)
    folder = os.path.join(work, f"pam-phases-{os.getpid()}")
    os.makedirs(folder)
    confdir = os.path.join(folder, "pam.d")
    os.makedirs(confdir)
    checks = Checks()
    daemon = Daemon(mamorid, folder)
    try:
        daemon.start()
        run_checks(checks, daemon, Harness(build, confdir), folder)
    except Failure as failure:
        checks.check("no test error", False, str(failure))
    except subprocess.TimeoutExpired as expired:
        checks.check("no test error", False, f"timed out: {expired.cmd[:5]}")
    finally:
        daemon.stop()
        checks.check("a stopped mamorid leaves no login factors notice", not os.path.exists(daemon.socket + ".factors"))
        if checks.failed:
            print_log("mamorid log", daemon.log())
        shutil.rmtree(folder, ignore_errors=True)
    print(f"pam_phases: {checks.failed} failure(s)")
    sys.exit(1 if checks.failed else 0)


def run_checks(checks, daemon, harness, folder):
    check = checks.check
    harness.stack("mamori", daemon.socket)
    secret_unused = daemon.enrol("tanaka", "pw-tanaka-1")
    del secret_unused
    codes = daemon.must({"op": "recovery.issue", "user": "tanaka", "count": 10})["codes"]

    # --- the ticket ---
    lines = harness.run("mamori", "tanaka", "auth,env,open,env,close,env", "pw-tanaka-1", codes[0])
    envs = env_of(lines)
    check("auth: success", "auth 0 PAM_SUCCESS" in lines, lines)
    check("auth: MAMORI_TICKET in the PAM environment", len(envs) == 3 and re.fullmatch(r"[0-9a-f]{48}", envs[0].get("MAMORI_TICKET", "")) is not None, envs)
    check("open: success", "open 0 PAM_SUCCESS" in lines, lines)
    check("open: MAMORI_TICKET removed, MAMORI_SESSION set", len(envs) == 3 and "MAMORI_TICKET" not in envs[1]
          and re.fullmatch(r"[0-9a-f]{32}", envs[1].get("MAMORI_SESSION", "")) is not None, envs)
    check("close: success, MAMORI_SESSION removed", "close 0 PAM_SUCCESS" in lines and len(envs) == 3 and envs[2] == {}, envs)

    # --- no connection is held while the user types ---
    # Through su or sudo the module's connections come from root, whom mamorid admits without a
    # per-uid limit: one held across a prompt would let any account fill the daemon. The zone's
    # factors come from the notice beside the socket, so auth prompts first and then uses one
    # connection for authenticate, and account one of its own.
    def connections():
        return len(re.findall(r"\] connection$", daemon.log(), re.M))
    notice_path = daemon.socket + ".factors"
    notice_stat = os.stat(notice_path)
    with open(notice_path, encoding="utf-8") as handle:
        notice = json.loads(handle.read())
    check("the login factors notice: the zone's factors, mode 0644, owned by the daemon's user",
          notice.get("login_factors") == ["password", "totp"] and notice.get("zone") == "mynumber"
          and notice_stat.st_mode & 0o777 == 0o644 and notice_stat.st_uid == os.geteuid(), (notice, oct(notice_stat.st_mode)))
    before = connections()
    lines = harness.run("mamori", "tanaka", "auth,account", "pw-tanaka-1", codes[6])
    after = connections()
    check("one connection a phase: auth (prompts | authenticate) and account, two",
          "auth 0 PAM_SUCCESS" in lines and "account 0 PAM_SUCCESS" in lines and after - before == 2,
          (before, after, lines))

    # A notice anyone may write is not believed: the module asks status first (a second connection).
    os.chmod(notice_path, 0o666)
    before = connections()
    lines = harness.run("mamori", "tanaka", "auth", "pw-tanaka-1", codes[7])
    after = connections()
    check("a notice others may write is ignored: auth asks status, two connections",
          lines == ["prompt-off Password: ", "prompt-off Verification code: ", "auth 0 PAM_SUCCESS"] and after - before == 2,
          (before, after, lines))
    # One that says "password only" where the zone needs a code skips the prompt, and the login fails.
    os.chmod(notice_path, 0o644)
    with open(notice_path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"login_factors": ["password"], "zone": "mynumber"}) + "\n")
    lines = harness.run("mamori", "tanaka", "auth", "pw-tanaka-1")
    check("a notice decides only the prompts: without the code mamorid refuses",
          lines == ["prompt-off Password: ", "auth 7 PAM_AUTH_ERR"], lines)
    # A reload publishes it again.
    daemon.must({"op": "policy.reload"})
    with open(notice_path, encoding="utf-8") as handle:
        check("policy.reload publishes the notice again", json.loads(handle.read()).get("login_factors") == ["password", "totp"])
    # A hung mamorid with the notice in place: the prompts come first, and an empty code still
    # gives PAM_AUTHINFO_UNAVAIL (a break-glass stack falls through), never PAM_AUTH_ERR.
    daemon.pause()
    try:
        lines = harness.run("mamori", "tanaka", "auth", "pw-tanaka-1", "")
    finally:
        daemon.resume()
    check("a hung mamorid, an empty code: PAM_AUTHINFO_UNAVAIL after the prompts",
          lines == ["prompt-off Password: ", "prompt-off Verification code: ", "auth 9 PAM_AUTHINFO_UNAVAIL"], lines)
    lines = harness.run("mamori", "tanaka", "auth", "pw-tanaka-1", "")
    check("a live mamorid, an empty code: PAM_AUTH_ERR",
          lines == ["prompt-off Password: ", "prompt-off Verification code: ", "auth 7 PAM_AUTH_ERR"], lines)
    os.unlink(notice_path)
    before = connections()
    lines = harness.run("mamori", "tanaka", "auth", "pw-tanaka-1", codes[8])
    after = connections()
    check("without a notice: status, then authenticate", "auth 0 PAM_SUCCESS" in lines and after - before == 2,
          (before, after, lines))
    daemon.must({"op": "policy.reload"})

    lines = harness.run("mamori", "tanaka", "forked-auth,env,setcred,env,open,env", "pw-tanaka-1", codes[1])
    envs = env_of(lines)
    check("sshd-like: auth in a forked child", "forked-auth 0 PAM_SUCCESS" in lines and "forked-done 0 PAM_SUCCESS" in lines, lines)
    check("sshd-like: the ticket comes back in the environment", len(envs) == 3 and "MAMORI_TICKET" in envs[0], envs)
    check("sshd-like: setcred takes it out of the environment", len(envs) == 3 and "MAMORI_TICKET" not in envs[1], envs)
    check("sshd-like: open_session opens the session with it", "open 0 PAM_SUCCESS" in lines and len(envs) == 3
          and "MAMORI_SESSION" in envs[2] and "MAMORI_TICKET" not in envs[2], lines)
    session = envs[2].get("MAMORI_SESSION", "") if len(envs) == 3 else ""
    decision = daemon.call({"op": "authorize", "session": session, "action": "asset.read", "resource": "point.participants"})
    # Opened with a recovery code: a session mamorid knows, whose factors lack totp.
    check("sshd-like: the session is known to mamorid", decision.get("ok") is True and decision.get("effect") == "step-up"
          and decision.get("missing_factors") == ["totp"], decision)
    unknown = daemon.call({"op": "authorize", "session": "0" * 32, "action": "asset.read", "resource": "point.participants"})
    check("an unknown session is not mistaken for one", unknown.get("effect") != "step-up", unknown)

    lines = harness.run("mamori", "tanaka", "forked-auth,open,env", "pw-tanaka-1", codes[2])
    envs = env_of(lines)
    check("without setcred: open_session takes the ticket from the environment", "open 0 PAM_SUCCESS" in lines
          and len(envs) == 1 and "MAMORI_TICKET" not in envs[0], lines)

    lines = harness.run("mamori", "tanaka", "auth?,env", "pw-tanaka-1", "000000")
    envs = env_of(lines)
    check("failed auth: no ticket", "auth 7 PAM_AUTH_ERR" in lines and envs == [{}], lines)
    lines = harness.run("mamori", "tanaka", "auth,auth?,env", "pw-tanaka-1", codes[3], "wrong", "000000")
    envs = env_of(lines)
    check("failed auth after a good one: the earlier ticket is gone", lines.count("auth 0 PAM_SUCCESS") == 1
          and "auth 7 PAM_AUTH_ERR" in lines and envs == [{}], lines)
    lines = harness.run("mamori", "tanaka", "auth,delcred,env,open?", "pw-tanaka-1", codes[4])
    envs = env_of(lines)
    check("delcred forgets the ticket", envs == [{}] and "open 14 PAM_SESSION_ERR" in lines, lines)
    lines = harness.run("mamori", "tanaka", "open?,env")
    check("open without auth: PAM_SESSION_ERR", "open 14 PAM_SESSION_ERR" in lines and env_of(lines) == [{}], lines)

    # A ticket put into the environment by another module: a bogus one, then someone else's.
    inject = os.path.join(folder, "inject.conf")

    def injecting(ticket):
        with open(inject, "w", encoding="utf-8") as handle:
            handle.write(f"MAMORI_TICKET DEFAULT={ticket}\n")
        harness.stack("mamori-inject", daemon.socket, types=("session",),
                      before=f"session required pam_env.so readenv=0 user_readenv=0 conffile={inject}")

    injecting("0123456789abcdef0123456789abcdef0123456789abcdef")
    lines = harness.run("mamori-inject", "tanaka", "open?,env")
    check("refused ticket: PAM_SESSION_ERR and MAMORI_TICKET removed", "open 14 PAM_SESSION_ERR" in lines
          and env_of(lines) == [{}], lines)
    daemon.enrol("suzuki", "pw-suzuki-1")
    lines = harness.run("mamori", "tanaka", "auth,env", "pw-tanaka-1", codes[5])
    envs = env_of(lines)
    theirs = envs[0].get("MAMORI_TICKET", "") if envs else ""
    injecting(theirs)
    lines = harness.run("mamori-inject", "suzuki", "open?,env")
    check("someone else's ticket: refused, removed", bool(theirs) and "open 14 PAM_SESSION_ERR" in lines
          and env_of(lines) == [{}], lines)
    sessions = [entry for entry in daemon.must({"op": "audit.read", "last": 20})["entries"] if entry["event"] == "session.close"]
    check("someone else's ticket: the session it opened was closed", len(sessions) >= 1, sessions[-1:] if sessions else "none")

    # --- the account phase against scripted servers (run by root: trusted) ---
    cases = [
        ('{"error":{"code":"busy","message":"Busy."},"ok":false}\n', "PAM_AUTHINFO_UNAVAIL", "busy"),
        ('{"error":{"code":"internal","message":"x"},"ok":false}\n', "PAM_AUTHINFO_UNAVAIL", "internal"),
        ('this is not json\n', "PAM_AUTHINFO_UNAVAIL", "garbage"),
        ('{"ok":true}\n', "PAM_AUTHINFO_UNAVAIL", "no result"),
        ('{"ok":true,"result":"allowed"', "PAM_AUTHINFO_UNAVAIL", "no newline, then closed"),
        (None, "PAM_AUTHINFO_UNAVAIL", "silent past the timeout"),
        ('{"error":{"code":"denied","message":"No."},"ok":false}\n', "PAM_PERM_DENIED", "denied error"),
        ('{"ok":true,"reasons":["x"],"result":"denied"}\n', "PAM_PERM_DENIED", "denied result"),
        ('{"ok":true,"reasons":[],"result":"something-new"}\n', "PAM_PERM_DENIED", "unknown result"),
        ('{"ok":true,"reasons":[],"result":"allowed"}\n', "PAM_SUCCESS", "allowed"),
        ('{"ok":true,"reasons":[],"result":"expired"}\n', "PAM_ACCT_EXPIRED", "expired"),
    ]
    scripted = os.path.join(folder, "scripted.sock")
    for reply, expected, what in cases:
        server = ScriptedServer(scripted, reply.encode() if reply is not None else None)
        try:
            harness.stack("scripted", scripted, types=("account",))
            began = time.monotonic()
            lines = harness.run("scripted", "tanaka", "account")
            took = time.monotonic() - began
        finally:
            server.close()
        check(f"account, {what}: {expected}", bool(lines) and lines[-1].endswith(" " + expected) and took < 5, f"{lines} in {took:.1f} s")
    harness.stack("gone", os.path.join(folder, "nothing.sock"), types=("account", "password"))
    lines = harness.run("gone", "tanaka", "account")
    check("account, nothing at the socket: PAM_AUTHINFO_UNAVAIL", lines == ["account 9 PAM_AUTHINFO_UNAVAIL"], lines)

    # --- the password phase ---
    lines = harness.run("gone", "tanaka", "chauthtok")
    check("chauthtok, mamorid down: PAM_TRY_AGAIN, nothing asked", lines == ["chauthtok 24 PAM_TRY_AGAIN"], lines)

    daemon.enrol("sato", "pw-sato-temp", temporary=True)
    sato = daemon.must({"op": "recovery.issue", "user": "sato", "count": 4})["codes"]
    lines = harness.run("mamori", "sato", "auth,account?,chauthtok-expired,account", "pw-sato-temp", sato[0], "pw-sato-new1", "pw-sato-new1")
    check("forced change after login: the current password is not asked again", lines == [
        "prompt-off Password: ", "prompt-off Verification code: ", "auth 0 PAM_SUCCESS", "account 12 PAM_NEW_AUTHTOK_REQD",
        "prompt-off New password: ", "prompt-off Retype new password: ", "chauthtok-expired 0 PAM_SUCCESS", "account 0 PAM_SUCCESS",
    ], lines)

    daemon.enrol("ito", "pw-ito-temp", temporary=True)
    ito = daemon.must({"op": "recovery.issue", "user": "ito", "count": 4})["codes"]
    lines = harness.run("mamori", "ito", "forked-auth,setcred,open,env", "pw-ito-temp", ito[0], "pw-ito-new-1", "pw-ito-new-1")
    envs = env_of(lines)
    check("sshd-like forced change: asked only for the new password, then the session opens", lines[:7] == [
        "prompt-off Password: ", "prompt-off Verification code: ", "forked-auth 0 PAM_SUCCESS", "forked-account 12 PAM_NEW_AUTHTOK_REQD",
        "prompt-off New password: ", "prompt-off Retype new password: ", "forked-chauthtok 0 PAM_SUCCESS",
    ] and "open 0 PAM_SUCCESS" in lines and len(envs) == 1 and "MAMORI_TICKET" not in envs[0], lines)
    lines = harness.run("mamori", "ito", "auth", "pw-ito-new-1", ito[1])
    check("sshd-like forced change: the new password works", lines[-1:] == ["auth 0 PAM_SUCCESS"], lines)

    lines = harness.run("mamori", "tanaka", "chauthtok-expired")
    check("PAM_CHANGE_EXPIRED_AUTHTOK with nothing to change: success, nothing asked", lines == ["chauthtok-expired 0 PAM_SUCCESS"], lines)

    # Another module's new PAM_AUTHTOK is never the old password.
    harness.stack("settok", daemon.socket, types=("password",), before=f"password required {harness.settok} authtok=an-evil-new-token")
    lines = harness.run("settok", "suzuki", "chauthtok", "pw-suzuki-1", "pw-suzuki-2", "pw-suzuki-2")
    check("an earlier module's PAM_AUTHTOK: the current password is asked for", lines == [
        "prompt-off Current password: ", "prompt-off New password: ", "prompt-off Retype new password: ", "chauthtok 0 PAM_SUCCESS",
    ], lines)
    harness.stack("settok-use", daemon.socket, types=("password",), extra="use_authtok",
                  before=f"password required {harness.settok} authtok=pw-suzuki-3")
    lines = harness.run("settok-use", "suzuki", "chauthtok", "pw-suzuki-2")
    check("use_authtok: the new password is the earlier module's", lines == ["prompt-off Current password: ", "chauthtok 0 PAM_SUCCESS"], lines)
    harness.stack("settok-old", daemon.socket, types=("password",), before=f"password required {harness.settok} oldauthtok=pw-suzuki-3")
    lines = harness.run("settok-old", "suzuki", "chauthtok", "pw-suzuki-4", "pw-suzuki-4")
    check("PAM_OLDAUTHTOK from an earlier module is the current password", lines == [
        "prompt-off New password: ", "prompt-off Retype new password: ", "chauthtok 0 PAM_SUCCESS"], lines)
    suzuki = daemon.must({"op": "recovery.issue", "user": "suzuki", "count": 2})["codes"]
    lines = harness.run("mamori", "suzuki", "auth", "pw-suzuki-4", suzuki[0])
    check("after the three changes the last password works", lines[-1:] == ["auth 0 PAM_SUCCESS"], lines)
    harness.stack("use-nothing", daemon.socket, types=("password",), extra="use_authtok")
    lines = harness.run("use-nothing", "suzuki", "chauthtok", "pw-suzuki-4")
    check("use_authtok without an earlier new password: PAM_AUTHTOK_ERR", lines[-1:] == ["chauthtok 20 PAM_AUTHTOK_ERR"], lines)
    lines = harness.run("mamori", "suzuki", "chauthtok", "pw-suzuki-4", "one new password", "another one")
    check("mismatched new passwords: PAM_AUTHTOK_ERR with a message", "error The passwords do not match." in lines
          and lines[-1] == "chauthtok 20 PAM_AUTHTOK_ERR", lines)
    lines = harness.run("mamori", "suzuki", "chauthtok", "not the password", "pw-suzuki-5", "pw-suzuki-5")
    check("wrong current password: PAM_AUTHTOK_ERR", lines[-1:] == ["chauthtok 20 PAM_AUTHTOK_ERR"], lines)


if __name__ == "__main__":
    main()
