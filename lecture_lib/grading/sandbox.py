"""Run one submission's Jupyter kernel in a throw-away Linux sandbox.

The kernel is started through ``unshare`` (util-linux) in new user, mount, PID and network
namespaces, then ``pivot_root`` into a root built from scratch on a tmpfs:

- read-only: the system (``/usr``, ``/bin``, ``/lib*``, a few files of ``/etc``), the Python installation the
  grader runs on (its prefix and base prefix), and the ``lecture_lib`` package alone;
- writable: an empty ``/tmp`` (tmpfs, size-limited; the kernel's working folder and HOME) and
  the socket folder the grader talks to the kernel through (ZeroMQ over Unix sockets);
- nothing else: not the master notebook, not the hidden tests, not the other submissions, not
  the output folder, not the repository, not /work, /root or /home. The old root is unmounted.
- no network: a new network namespace has only a loopback that is down;
- an unprivileged user: a grader run by an ordinary user builds the jail as root of a new user
  namespace mapped to that user; a grader run as root builds it as the real root (so it can show
  a Python installed under ``/root``) and then runs the kernel as ``nobody`` (uid 65534) in a user
  namespace of its own. Either way the Linux kernel applies RLIMIT_NPROC (it does not to the real
  root user), counted per user namespace, hence per sandbox;
- limits (``prlimit``): address space (RLIMIT_AS), CPU seconds (RLIMIT_CPU), file size,
  processes (RLIMIT_NPROC); the sandbox as a whole (CPU cores, memory of all its processes) is
  watched from outside (``watchdog.py``); wall-clock limits per cell and per submission are the
  grader's (``kernel.py``);
- capabilities dropped (``setpriv``), no new privileges; when memory runs out, the kernel's
  out-of-memory killer picks sandbox processes before any other (``choom``), the grader last;
- tied to the grader: ``setpriv --pdeathsig`` kills the sandbox when the grader's thread that
  started it dies, so a grader killed halfway (``kill -9``, a closed terminal) leaves nothing running.

``Sandbox.kill`` SIGKILLs the namespace's first process: the kernel then kills every process in
the PID namespace, including double-forked, ``setsid`` or ``nohup`` children, and only after
that has happened does the grader write any result.

Where ``unshare`` is missing or unprivileged user namespaces are disabled, ``sandbox_available``
says why; the grader then refuses to run unless told ``--unsafe-no-sandbox``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "Sandbox", "sandbox_available", "SandboxUnavailable"]


class SandboxUnavailable(RuntimeError):
    """Isolation cannot be set up on this machine (the message says why)."""


@dataclass
class Limits:
    """Resource limits for one submission.

    ``memory_mb`` bounds the *address space* of each process: importing torch alone maps about
    3.5 GB of it, so 6 GB leaves roughly 2 GB of real room. ``resident_mb`` bounds the memory of
    all the submission's processes together and ``cpus`` the CPU cores it uses and the processes
    (threads: two more) it keeps busy (over 3 s); both are watched from outside (``watchdog.py``). ``max_processes``
    counts threads too (RLIMIT_NPROC).
    """

    cell_timeout: float = 60.0
    submission_timeout: float = 300.0
    cpu_seconds: int = 300
    memory_mb: int = 6144
    max_processes: int = 64
    tmpfs_mb: int = 256
    output_kb: int = 256
    answer_kb: int = 4096
    resident_mb: int = 4096
    cpus: float = 1.5

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")


# Runs as root (of a new user namespace, or the real root), before the kernel: builds the new
# root and enters it. Arguments: NEWROOT COMMDIR TMPFS_MB LIBDIR OWNER RO_PATH... -- COMMAND...
# (OWNER: the uid that gets the kernel's home and working folder).
_JAIL = r"""
set -eu
R=$1; COMM=$2; TMPMB=$3; LIBDIR=$4; OWNER=$5; shift 5
mount -t tmpfs -o size=16m,mode=755 jailroot "$R"
# The scratch /tmp first: a Python installation that lives under /tmp (a virtual environment in
# a clone under /tmp, as on some CI machines) is then bound on top of it, not hidden by it.
mkdir -p "$R/tmp"
mount -t tmpfs -o size=${TMPMB}m,mode=1777,nosuid,nodev tmp "$R/tmp"
while [ "$1" != "--" ]; do
    if [ -d "$1" ]; then
        mkdir -p "$R$1"
    else
        mkdir -p "$(dirname "$R$1")"
        touch "$R$1"
    fi
    mount --rbind "$1" "$R$1"
    mount -o remount,bind,ro "$R$1"
    shift
done
shift
mkdir -p "$R/opt/lecture_lib/lecture_lib"
mount --rbind "$LIBDIR" "$R/opt/lecture_lib/lecture_lib"
mount -o remount,bind,ro "$R/opt/lecture_lib/lecture_lib"
mkdir -p "$R/proc" "$R/dev/shm" "$R/.oldroot"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t tmpfs -o size=${TMPMB}m,mode=1777,nosuid,nodev shm "$R/dev/shm"
for d in null zero full random urandom; do
    touch "$R/dev/$d"
    mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir -p "$R$COMM" "$R/tmp/home" "$R/tmp/work"
chown "$OWNER:$OWNER" "$R/tmp/home" "$R/tmp/work"
mount --bind "$COMM" "$R$COMM"
cd "$R"
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot
mount -o remount,bind,ro /
cd /tmp/work
exec "$@"
"""

# The user a sandbox runs as when the grader is root (RLIMIT_NPROC does not bind the real root).
NOBODY = 65534

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Only what programs need from /etc: never /etc as a whole (shadow, ssh host keys, tokens).
_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/nsswitch.conf",
        "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/localtime", "/etc/mime.types", "/etc/fonts",
        "/etc/ssl/certs", "/etc/ca-certificates")


def _lecture_lib_dir() -> Path:
    import lecture_lib

    return Path(lecture_lib.__file__).resolve().parent


def _python_dirs() -> list[str]:
    """The folders the kernel's Python needs, read-only (no source checkout, no cwd)."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            str(Path(os.path.realpath(sys.executable)).parent.parent)}
    for entry in sys.path:
        if entry and ("site-packages" in entry or "dist-packages" in entry) and os.path.isdir(entry):
            dirs.add(entry)
    resolved = sorted({os.path.realpath(d) for d in dirs} | {os.path.abspath(d) for d in dirs})
    # keep the outermost folders only; skip what the system folders already hold
    keep: list[str] = []
    for d in resolved:
        if d == "/" or any(d == s or d.startswith(s + "/") for s in _SYSTEM_DIRS):
            continue
        if not any(d.startswith(k + "/") for k in keep):
            keep = [k for k in keep if not k.startswith(d + "/")] + [d]
    return keep


def _system_dirs() -> list[str]:
    return [d for d in _SYSTEM_DIRS + _ETC if os.path.exists(d)]


class Sandbox:
    """A private temporary folder plus the command line that runs a program isolated in it.

    Args:
        limits: resource limits.
        isolate: False for ``--unsafe-no-sandbox``: limits only, no namespaces (says so).
        protected: paths that must not be visible inside; ``ValueError`` if one of them lies in
            a folder the sandbox has to show (e.g. a master notebook inside the Python prefix).
    """

    def __init__(self, limits: Limits, isolate: bool = True, protected: list[str | Path] = ()):
        self.limits = limits
        self.isolate = isolate
        self.ro_dirs = _system_dirs() + _python_dirs()
        self.lib_dir = _lecture_lib_dir()
        for path in protected:
            real = os.path.realpath(path)
            for shown in self.ro_dirs + [str(self.lib_dir)]:
                if real == shown or real.startswith(shown.rstrip("/") + "/"):
                    raise ValueError(f"{path} lies inside {shown}, which the sandbox must show; move it elsewhere")
        self.base = Path(tempfile.mkdtemp(prefix="lecture-grade-"))
        self.comm = self.base / "comm"
        self.root = self.base / "root"
        self.comm.mkdir()
        self.root.mkdir()
        (self.base / "home").mkdir()  # HOME when there is no sandbox
        # a grader running as root runs the sandboxed kernel as nobody; the socket folder is theirs
        self.uid = NOBODY if isolate and os.geteuid() == 0 else None
        self.share(self.comm)
        self.process: subprocess.Popen | None = None
        self.inits: list[int] = []  # the PID namespace's first process(es), seen from outside

    def share(self, path: str | Path) -> None:
        """Let the sandbox's user read (and, for folders, write) ``path``, made by the grader."""
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)

    def roots(self) -> list[int]:
        """The sandbox's first process(es) as seen from outside (all its processes descend from them)."""
        if self.process is None:
            return []
        return list(self.inits) if self.isolate else [self.process.pid]

    def started(self, process: subprocess.Popen | None) -> None:
        """Remember the launched process and its namespace's init (to kill and wait for)."""
        self.process = process
        if process is not None and self.isolate:
            self.inits = _children(process.pid)

    def _limits(self) -> list[str]:
        """prlimit's per-process limits, behind choom (out of memory, these processes go first)."""
        mb = 1024 * 1024
        prlimit = [
            "prlimit",
            f"--as={self.limits.memory_mb * mb}",
            f"--cpu={int(self.limits.cpu_seconds)}:{int(self.limits.cpu_seconds) + 5}",
            f"--fsize={self.limits.tmpfs_mb * mb}",
            f"--nproc={self.limits.max_processes}",
            "--core=0",
            "--",
        ]
        return (["choom", "-n", "1000", "--"] if shutil.which("choom") else []) + prlimit

    def wrap(self, argv: list[str]) -> list[str]:
        """The command line that runs ``argv`` inside this sandbox, with the limits applied."""
        setpriv, unshare = shutil.which("setpriv"), shutil.which("unshare")
        # outermost: the sandbox dies with the grader's thread that started it
        outer = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        if not self.isolate:
            return outer + self._limits() + argv
        if not unshare or not setpriv:
            raise SandboxUnavailable("util-linux 'unshare' and 'setpriv' are needed for the sandbox")
        namespaces = ["--mount", "--propagation", "private", "--net", "--pid", "--fork", "--kill-child=SIGKILL",
                      "--ipc", "--uts"]
        jail = ["sh", "-c", _JAIL, "lecture-grade-jail", str(self.root), str(self.comm), str(int(self.limits.tmpfs_mb)),
                str(self.lib_dir), str(self.uid or 0), *self.ro_dirs, "--"]
        # setsid: the kernel gets a session and process group of its own, inside the namespace,
        # so kill(0, ...) from student code reaches nothing outside it.
        drop = [setpriv, "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--", "setsid", "--"]
        if self.uid is None:  # an ordinary user: a user namespace makes the mounts possible
            return [*outer, unshare, "--user", "--map-root-user", *namespaces, *jail, *drop, *self._limits(), *argv]
        # root: the real root builds the jail (it can read a Python under /root), then the kernel
        # runs as nobody in a user namespace of its own, where RLIMIT_NPROC counts this sandbox
        # only; --pdeathsig again, as changing the user clears it
        become = [setpriv, f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--pdeathsig", "KILL", "--",
                  unshare, "--user", "--map-root-user", "--"]
        return [*outer, unshare, *namespaces, *jail, *become, *drop, *self._limits(), *argv]

    def env(self) -> dict[str, str]:
        """A clean environment: nothing of the grader's (tokens, paths) leaks in."""
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": "/tmp/home" if self.isolate else str(self.base / "home"),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        if self.isolate:
            env["PYTHONPATH"] = "/opt/lecture_lib"
        else:
            env["PYTHONPATH"] = str(self.lib_dir.parent)
        if os.environ.get("LECTURE_QUICK"):
            env["LECTURE_QUICK"] = os.environ["LECTURE_QUICK"]
        return env

    def interrupt(self) -> None:
        """SIGINT the kernel (a KeyboardInterrupt in the running cell)."""
        if self.process is None:
            return
        if self.isolate:
            for pid in self.inits or _children(self.process.pid):
                _signal(pid, signal.SIGINT)
        else:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self, process: subprocess.Popen | None = None, timeout: float = 10.0) -> None:
        """SIGKILL everything the sandbox started and wait until it is gone."""
        process = process or self.process
        if process is None:
            return
        inits = sorted(set(self.inits) | set(_children(process.pid))) if self.isolate else []
        for pid in inits:  # the PID namespace's init: its death kills the whole namespace
            _signal(pid, signal.SIGKILL)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None and not any(_alive(pid) for pid in inits):
                return
            time.sleep(0.05)
        _signal(process.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(p) for p in handle.read().split())
    except OSError:
        pass
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


_AVAILABLE: tuple[bool, str] | None = None


def sandbox_available() -> tuple[bool, str]:
    """(True, "") when the sandbox works here, else (False, why). Tried once per process."""
    global _AVAILABLE
    if _AVAILABLE is not None:
        return _AVAILABLE
    if not sys.platform.startswith("linux"):
        _AVAILABLE = (False, f"the sandbox needs Linux namespaces; this is {sys.platform}")
        return _AVAILABLE
    box = None
    try:
        box = Sandbox(Limits())
        probe = "import socket, os; s = socket.socket(); s.settimeout(1); print(sorted(os.listdir('/')))"
        done = subprocess.run(box.wrap([sys.executable, "-S", "-c", probe]), capture_output=True, text=True,
                              timeout=60, env=box.env())
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
            _AVAILABLE = (False, f"unshare/pivot_root failed ({reason}); are unprivileged user namespaces enabled?")
        else:
            _AVAILABLE = (True, "")
    except (SandboxUnavailable, OSError, subprocess.TimeoutExpired) as err:
        _AVAILABLE = (False, str(err))
    finally:
        if box is not None:
            box.cleanup()
    return _AVAILABLE
