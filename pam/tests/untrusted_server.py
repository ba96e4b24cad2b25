#!/usr/bin/env python3
"""pam_mamori.so facing a server that is not mamorid: nothing is sent, the login is unavailable.

  pam/tests/untrusted_server.py BUILD

BUILD is the folder with pam_harness and pam_mamori.so. Run as root. A local account (uid 65534,
through setpriv) binds the socket the module is configured with, as it could if the daemon were
down and the socket's folder writable, and records every byte it receives. Checks:

- auth and account answer PAM_AUTHINFO_UNAVAIL, no password is asked, and the server gets no
  byte (the module reads the peer's uid before it sends anything);
- with daemon_user=nobody the same server is trusted and gets the request (so the first check
  would see a leak if the module sent one).

Prints one line per check; exits 1 on any failure.
"""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mamori_fixture import Checks  # noqa: E402

# Run as the stranger: accepts connections, reads each until the client closes (or 3 s), and
# prints the number of bytes it got, one line per connection.
SERVER = r"""
import socket, sys
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen(8)
print("listening", flush=True)
while True:
    connection, _ = listener.accept()
    connection.settimeout(3)
    got = 0
    try:
        while True:
            data = connection.recv(65536)
            if not data:
                break
            got += len(data)
            if data.endswith(b"\n"):
                connection.sendall(b'{"ok":true,"zone":"mynumber","factors":["password","totp"]}\n')
    except OSError:
        pass
    connection.close()
    print("received", got, flush=True)
"""


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    if os.geteuid() != 0:
        sys.exit("untrusted_server.py: run as root")
    build = os.path.abspath(sys.argv[1])
    harness = os.path.join(build, "pam_harness")
    module = os.path.join(build, "pam_mamori.so")
    nobody = pwd.getpwnam("nobody")
    checks = Checks()
    folder = tempfile.mkdtemp(prefix="mamori-untrusted-")
    os.chmod(folder, 0o755)
    server = None
    try:
        home = os.path.join(folder, "run")
        os.mkdir(home, 0o755)
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        path = os.path.join(home, "mamori.sock")
        confdir = os.path.join(folder, "pam.d")
        os.mkdir(confdir)
        for service, extra in (("wary", ""), ("trusting", " daemon_user=nobody")):
            with open(os.path.join(confdir, service), "w", encoding="utf-8") as handle:
                for kind in ("auth", "account"):
                    handle.write(f"{kind} required {module} socket={path} timeout=1500{extra}\n")
        server = subprocess.Popen(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                                   "/usr/bin/python3", "-c", SERVER, path], stdout=subprocess.PIPE, text=True)
        checks.check("the stranger's server listens", server.stdout.readline().strip() == "listening")

        def run(service, phases):
            result = subprocess.run([harness, confdir, service, "tanaka", phases, "pw-tanaka-1", "123456"],
                                    capture_output=True, text=True, timeout=30)
            return result.stdout.splitlines(), result.stderr

        def received():
            line = server.stdout.readline().split()
            return int(line[1]) if len(line) == 2 and line[0] == "received" else None

        lines, _ = run("wary", "auth?")
        checks.check("auth facing uid 65534: PAM_AUTHINFO_UNAVAIL", "auth 9 PAM_AUTHINFO_UNAVAIL" in lines, lines)
        checks.check("auth facing uid 65534: no password asked", not any(l.startswith("prompt") for l in lines), lines)
        checks.check("auth facing uid 65534: nothing sent", received() == 0)
        lines, _ = run("wary", "account?")
        checks.check("account facing uid 65534: PAM_AUTHINFO_UNAVAIL", "account 9 PAM_AUTHINFO_UNAVAIL" in lines, lines)
        checks.check("account facing uid 65534: nothing sent", received() == 0)

        # The control: the same server, trusted as daemon_user, does get the request.
        lines, _ = run("trusting", "auth?")
        got = received()
        checks.check("daemon_user=nobody: the server is trusted and gets the request", got is not None and got > 0, (lines, got))
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"untrusted_server: {checks.failed} failure(s)")
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
