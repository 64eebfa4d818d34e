"""The local sandbox's keeper: runs one command and takes everything it started down
with it. Run as a script (`python -I _reap.py STATUS_FD -- ARGV...`), never imported.

It marks itself a child subreaper (PR_SET_CHILD_SUBREAPER), so every process the
command starts stays its descendant, whatever it does: `setsid`, a double fork, a
cleared environment. When the command exits, or the keeper gets SIGTERM (the harness
stopping the attempt), it kills its children with SIGKILL and reaps them until none
are left: an orphan of a dying child is reparented to the keeper and found in the
next round. Only then does it exit, so when the keeper is gone, the attempt is.

It writes "ok\\n" to STATUS_FD once the command started, or the reason it could not
start, then closes it; its exit status is the command's (a signal is re-raised).
"""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def children() -> list[int]:
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            out.append(int(name))
    return out


def reap_all() -> None:
    while True:
        kids = children()
        if not kids:
            return
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in kids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def main() -> None:
    status_fd = int(sys.argv[1])
    argv = sys.argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        os.write(status_fd, b"cannot become a child subreaper\n")
        os._exit(125)

    def stop(signum, frame):
        reap_all()
        os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        proc = subprocess.Popen(argv)
    except OSError as exc:
        os.write(status_fd, f"{exc}\n".encode())
        os._exit(127)
    os.write(status_fd, b"ok\n")
    os.close(status_fd)
    code = proc.wait()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reap_all()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


if __name__ == "__main__":
    main()
