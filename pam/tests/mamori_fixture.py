"""A private mamorid for the PAM module's own tests (pam/tests/*.py), with cheap Argon2.

Used by sshd_login.py and pam_phases.py; standard library only (oathtool for TOTP codes).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

REPOSITORY = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Failure(Exception):
    """A check that did not hold."""


class Checks:
    """Prints one line per check; remembers failures."""

    def __init__(self):
        self.failed = 0

    def check(self, name, condition, detail=""):
        print(f"{'ok  ' if condition else 'FAIL'} {name}" + (f" ({detail})" if detail and not condition else ""), flush=True)
        if not condition:
            self.failed += 1
        return condition


def totp_code(secret, at):
    """The RFC 6238 code of the base32 secret at Unix time at (oathtool, as the Swift tests do)."""
    result = subprocess.run(["oathtool", "--totp", "-b", "-N", f"@{int(at)}", secret],
                            capture_output=True, text=True, timeout=10, check=True)
    return result.stdout.strip()


class Daemon:
    """mamorid in folder/, on folder/mamori.sock, with the repository's policies made cheap."""

    def __init__(self, binary, folder):
        self.binary = binary
        self.folder = folder
        self.socket = os.path.join(folder, "mamori.sock")
        self.log_path = os.path.join(folder, "mamorid.log")
        self.process = None
        self.stopped = False

    def start(self, wait=30.0):
        policies = os.path.join(self.folder, "policies")
        if not os.path.isdir(policies):
            shutil.copytree(os.path.join(REPOSITORY, "policies"), policies)
            settings = os.path.join(policies, "settings.yaml")
            with open(settings, encoding="utf-8") as handle:
                text = handle.read()
            for old, new in (("memory-kib: 65536", "memory-kib: 1024"), ("iterations: 3", "iterations: 1"),
                             ("parallelism: 4", "parallelism: 1")):
                if old not in text:
                    raise Failure(f"{settings} has no '{old}' to make cheap")
                text = text.replace(old, new)
            with open(settings, "w", encoding="utf-8") as handle:
                handle.write(text)
        config = os.path.join(self.folder, "mamorid.yaml")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(f"state-directory: {self.folder}/state\nsocket: {self.socket}\npolicies: {policies}\n"
                         "zone: mynumber\nterminal: test-terminal\nlog-level: debug\n")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary, "--config", config], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failure(f"mamorid exited with {self.process.returncode} at start")
            try:
                if self.call({"op": "status"}).get("ok"):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise Failure(f"mamorid did not answer within {wait} s")

    def call(self, request, timeout=30.0):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(self.socket)
            connection.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.decode())

    def must(self, request):
        reply = self.call(request)
        if not reply.get("ok"):
            raise Failure(f"{request.get('op')}: {reply.get('error')}")
        return reply

    def enrol(self, user, password, role="staff", temporary=False):
        """A user with a password, a confirmed TOTP device and a role; returns the TOTP secret.

        The device is confirmed with the code of the step before now, so that the current
        step's code is still unused for the first login.
        """
        self.must({"op": "user.add", "user": user, "kind": "staff", "organisation": "planning"})
        # user.passwd sets a temporary password (account then says password_change_required).
        self.must({"op": "user.passwd", "user": user, "password": password if temporary else password + "-first"})
        if not temporary:
            self.must({"op": "password.change", "user": user, "old_password": password + "-first", "new_password": password})
        secret = self.must({"op": "totp.enroll.begin", "user": user})["secret"]
        for _ in range(3):
            reply = self.call({"op": "totp.enroll.confirm", "user": user, "code": totp_code(secret, time.time() - 30)})
            if reply.get("ok"):
                break
            time.sleep(1)
        else:
            raise Failure(f"totp.enroll.confirm: {reply.get('error')}")
        self.must({"op": "role.grant", "user": user, "role": role})
        return secret

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError as error:
            return f"(no log: {error})"


def print_log(title, text, limit=20000):
    print(f"----- {title} (last {limit} characters) -----", file=sys.stderr)
    print(text[-limit:], file=sys.stderr)
    print(f"----- end of {title} -----", file=sys.stderr, flush=True)
