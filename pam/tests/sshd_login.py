#!/usr/bin/env python3
"""A login through a real OpenSSH sshd and ssh client, with pam_mamori.so in sshd's PAM stack.

  pam/tests/sshd_login.py MAMORID MODULE WORK

MAMORID is the daemon binary, MODULE pam_mamori.so, WORK a folder for this run (what the run
makes in it is removed at the end). Run as root: it makes a Unix account for the test user and
the PAM service file /etc/pam.d/mamori-test-sshd, and removes both at the end.

sshd is a copy of /usr/sbin/sshd named mamori-test-sshd (sshd takes its PAM service from its
program name), on a free loopback port with its own host key and configuration; it authenticates
with keyboard-interactive only, so the password and the code are PAM prompts, answered on the
ssh client's terminal through pexpect. sshd runs pam_authenticate in a forked child and copies back only
the PAM environment, which is what this test is about. Checks:

- password then code: the login succeeds, both prompts were asked in that order, the remote
  command sees MAMORI_SESSION and not MAMORI_TICKET, mamorid knows the session while it runs and
  ends it when the connection closes;
- the same code again, a wrong code, a wrong password: refused;
- mamorid stopped (SIGSTOP: the socket accepts, nobody answers) or gone: refused within the
  module's time-out, and the next login after it is back succeeds (with a recovery code).

Prints one line per check; exits 1 on any failure, with mamorid's and sshd's logs.
"""
import io
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mamori_fixture import Checks, Daemon, Failure, print_log, totp_code  # noqa: E402

try:
    import pexpect
except ImportError:
    sys.exit("sshd_login.py: needs pexpect (run it with .build-venv/bin/python3; scripts/ensure-deps test)")

USER = "mamorisshtest"
SERVICE = "mamori-test-sshd"
PAM_FILE = f"/etc/pam.d/{SERVICE}"
TIMEOUT_MS = 2000

# The remote command: prints what the session sees, then waits for its stdin to close.
REMOTE = 'echo "session=${MAMORI_SESSION-unset} ticket=${MAMORI_TICKET-unset}"; cat >/dev/null; echo bye'


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SSHD:
    def __init__(self, folder, port):
        self.folder = folder
        self.port = port
        self.binary = os.path.join(folder, SERVICE)
        self.config = os.path.join(folder, "sshd_config")
        self.log_path = os.path.join(folder, "sshd.log")
        self.process = None

    def start(self):
        shutil.copy2("/usr/sbin/sshd", self.binary)
        key = os.path.join(self.folder, "host_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True, timeout=30)
        with open(self.config, "w", encoding="utf-8") as handle:
            handle.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {key}
PidFile {self.folder}/sshd.pid
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication no
AuthenticationMethods keyboard-interactive
AllowUsers {USER}
PermitRootLogin no
StrictModes no
MaxAuthTries 3
LoginGraceTime 60
LogLevel VERBOSE
""")
        # sshd's privilege separation folder (made by its init script, which is not run here).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary, "-D", "-e", "-f", self.config], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failure(f"sshd exited with {self.process.returncode}: {self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise Failure("sshd did not listen within 20 s")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError as error:
            return f"(no log: {error})"


class Client:
    """The ssh client on a terminal of its own (pexpect), answering the prompts as a person would."""

    def __init__(self, port):
        self.port = port
        self.prompts = []

    def start(self, password, code, timeout=30):
        """Logs in; returns the running ssh (its remote command waits for end of input)."""
        command = ["-F", "/dev/null", "-T", "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                   "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                   "-o", "PreferredAuthentications=keyboard-interactive", "-o", "NumberOfPasswordPrompts=1",
                   "-o", "ConnectTimeout=10", f"{USER}@127.0.0.1", REMOTE]
        child = pexpect.spawn("ssh", command, encoding="utf-8", timeout=timeout)
        self.transcript = io.StringIO()
        child.logfile_read = self.transcript
        self.prompts = []
        answers = {"Password: ": password, "Verification code: ": code}
        while True:
            found = child.expect(["Password: ", "Verification code: ", "session=", "Permission denied",
                                  pexpect.EOF, pexpect.TIMEOUT])
            if found in (0, 1):
                self.prompts.append(child.after)
                child.sendline(answers[child.after])
                continue
            return child, found

    def login(self, password, code, timeout=60):
        """A whole login whose remote command ends at once: (exit status, output, seconds)."""
        started = time.monotonic()
        child, _ = self.start(password, code, timeout=timeout)
        if child.isalive():
            child.sendeof()
        child.expect([pexpect.EOF, pexpect.TIMEOUT])
        child.close()
        return child.exitstatus, self.transcript.getvalue(), time.monotonic() - started


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    if os.geteuid() != 0:
        sys.exit("sshd_login.py: run as root")
    mamorid, module, work = (os.path.abspath(argument) for argument in sys.argv[1:])
    if not os.path.exists("/usr/sbin/sshd"):
        sys.exit("sshd_login.py: /usr/sbin/sshd is missing (Debian package openssh-server; scripts/ensure-deps test)")
    os.makedirs(work, exist_ok=True)
    folder = os.path.join(work, f"sshd-login-{os.getpid()}")
    os.makedirs(folder)
    os.chmod(folder, 0o755)
    checks = Checks()
    daemon = Daemon(mamorid, os.path.join(folder, "mamori"))
    os.makedirs(daemon.folder)
    sshd = SSHD(folder, free_port())
    made_user = False
    try:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", USER],
                           check=True, timeout=30)
            made_user = True
        if os.path.exists(PAM_FILE):
            raise Failure(f"{PAM_FILE} exists already: another run, or not ours to replace")
        with open(PAM_FILE, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{kind} required {module} socket={daemon.socket} timeout={TIMEOUT_MS} daemon_user=\n"
                                 for kind in ("auth", "account", "session")))
        daemon.start()
        sshd.start()
        run_checks(checks, daemon, Client(sshd.port))
    except Failure as failure:
        checks.check("no test error", False, str(failure))
    except subprocess.TimeoutExpired as expired:
        checks.check("no test error", False, f"timed out: {expired.cmd[:5]}")
    finally:
        sshd.stop()
        daemon.stop()
        if checks.failed:
            print_log("mamorid log", daemon.log())
            print_log("sshd log", sshd.log())
        if os.path.exists(PAM_FILE):
            os.unlink(PAM_FILE)
        if made_user:
            subprocess.run(["userdel", USER], timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"sshd_login: {checks.failed} failure(s)")
    sys.exit(1 if checks.failed else 0)


def run_checks(checks, daemon, client):
    check = checks.check
    password = "pw-ssh-login-1"
    secret = daemon.enrol(USER, password)
    recovery = daemon.must({"op": "recovery.issue", "user": USER, "count": 10})["codes"]

    # The login, with the session held open by the remote command.
    code = totp_code(secret, time.time())
    child, found = client.start(password, code)
    line = child.readline().strip() if found == 2 else ""
    session_line = re.fullmatch(r"([0-9a-f]{32}) ticket=unset", line)
    check("password then code: logged in", found == 2, (found, child.before))
    check("password then code: the two prompts, in that order", client.prompts == ["Password: ", "Verification code: "],
          client.prompts)
    check("the session sees MAMORI_SESSION and no MAMORI_TICKET", session_line is not None, line)
    session = session_line.group(1) if session_line else ""
    decision = daemon.call({"op": "authorize", "session": session, "action": "asset.read", "resource": "point.participants"})
    check("mamorid knows the session while it runs", decision.get("effect") == "allow", decision)
    child.sendeof()
    child.expect([pexpect.EOF, pexpect.TIMEOUT])
    child.close()
    check("the remote command ends with the connection", child.exitstatus == 0 and "bye" in client.transcript.getvalue(),
          (child.exitstatus, client.transcript.getvalue()))
    closed = {}
    for _ in range(50):
        closed = daemon.call({"op": "authorize", "session": session, "action": "asset.read", "resource": "point.participants"})
        if closed.get("effect") != "allow":
            break
        time.sleep(0.1)
    check("closing the connection ends the session", closed.get("effect") != "allow", closed)

    status, out, _ = client.login(password, code)
    check("the same code again: refused", status == 255 and "session=" not in out, (status, out))
    status, out, _ = client.login(password, "000000" if code != "000000" else "111111")
    check("a wrong code: refused", status == 255 and "session=" not in out, (status, out))
    status, out, _ = client.login(password + "x", totp_code(secret, time.time()))
    check("a wrong password: refused", status == 255 and "session=" not in out, (status, out))

    # mamorid frozen: the socket takes the connection, nobody answers.
    daemon.pause()
    try:
        status, out, paused = client.login(password, recovery[0])
    finally:
        daemon.resume()
    # Each PAM call the module makes waits at most its time-out; sshd's own work is far smaller.
    check("mamorid not answering: refused", status == 255 and "session=" not in out, (status, out))
    check("mamorid not answering: refused within the module's time-outs", paused < 4 * TIMEOUT_MS / 1000 + 5,
          f"{paused:.1f} s")
    daemon.stop()
    status, out, seconds = client.login(password, recovery[0])
    check("mamorid gone: refused at once", status == 255 and "session=" not in out and seconds < 10, (status, out, seconds))

    daemon.start()
    status, out, _ = client.login(password, recovery[0])
    check("mamorid back: a recovery code logs in", status == 0 and re.search(r"session=[0-9a-f]{32} ticket=unset", out)
          is not None, (status, out))
    print(f"sshd: refused in {paused:.2f} s with mamorid frozen, {seconds:.2f} s with it gone", flush=True)


if __name__ == "__main__":
    main()
