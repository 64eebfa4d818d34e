"""The docker sandbox: one locked-down container per attempt.

Only the attempt's worktree is mounted (rw at /workspace) and its harness dir (ro at
/harness); the shared .git, other worktrees and the Docker socket stay outside. The
defaults are closed: network none, all capabilities dropped, no new privileges,
read-only root with a tmpfs /tmp, memory (no swap), CPU and pids limits, and the
invoking user's uid:gid so files come back theirs. A request with `model_network`
joins the run's fenced model network instead of network none (see `modelnet`), with
every other default as it is. The `docker` package is imported
when a DockerSandbox is made, never at `import harness` time.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..config import DockerSandboxConfig
from ..errors import SandboxError, SandboxUnavailable
from ..records import SandboxRequest, SandboxResult
from . import modelnet
from .base import ModelRoute
from .output import TAIL_BYTES, OutputWatch

WORKSPACE = "/workspace"
HARNESS_DIR = "/harness"
SANDBOX_LABEL = "harness.sandbox"
RUN_LABEL = "harness.run"
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")
_HOW_TO_START = "start it with scripts/lib/docker-up.sh, or use --sandbox local"
PUMP_DRAIN_S = 60
"""After the container ended, how long its output stream may take to close before the
log is sealed (it holds at most the daemon's pipe buffers, so this is a broken daemon)."""
TAIL_ENTRIES = 64
"""Log entries fetched when the stream broke; the daemon splits lines at 16 KiB."""
DAEMON_LOG = {"type": "json-file", "config": {"max-size": "8m", "max-file": "2"}}
"""The daemon's own copy of a container's output, bounded (the harness reads the
attached stream, not this; it serves `docker logs` on a kept container and the tail
when the stream broke)."""

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def docker_client(*, streaming: bool = False) -> Any:
    """One shared SDK client per process (it is thread-safe), with a connection pool
    big enough for many attempts streaming logs at once. `streaming`: the client for
    output streams, without a read timeout (an agent may be silent for long; its
    attempt's own timeout ends the stream). Raises SandboxUnavailable."""
    try:
        import docker
    except ImportError:  # pragma: no cover - docker is a dependency
        raise SandboxUnavailable("the `docker` Python package is not installed; use --sandbox local") from None
    key = os.environ.get("DOCKER_HOST", "") + ("#stream" if streaming else "")
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = docker.from_env(timeout=None if streaming else 60, max_pool_size=512)
            except docker.errors.DockerException as exc:
                raise SandboxUnavailable(f"Docker daemon not reachable ({_first_line(exc)}); {_HOW_TO_START}") from None
            _clients[key] = client
        return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class DockerSandbox:
    name = "docker"
    isolates = True

    def __init__(self, config: DockerSandboxConfig | None = None) -> None:
        self.config = config or DockerSandboxConfig()
        self._image_id: str | None = None

    @property
    def image_id(self) -> str | None:
        """The exact image every attempt runs, known once check() or run() resolved it."""
        return self._image_id

    # --- protocol ------------------------------------------------------------------

    def check(self) -> None:
        """Raise SandboxUnavailable when the daemon is down or the image is missing."""
        client = docker_client()
        try:
            client.ping()
        except Exception as exc:
            _clients.clear()
            raise SandboxUnavailable(f"Docker daemon not reachable ({_first_line(exc)}); {_HOW_TO_START}") from None
        self._resolve_image(client)

    def run(self, req: SandboxRequest) -> SandboxResult:
        """Run req.command in a fresh container to its end or its timeout.

        A failing, timed-out or OOM-killed command is a result. Raises
        SandboxUnavailable (daemon down, image missing) and SandboxError (the
        workspace is missing, the daemon refused the container or went away while
        it ran)."""
        import docker
        import requests

        for path in (req.workspace, req.harness_dir):
            if not path.is_dir():
                raise SandboxError(f"sandbox mount source {path} is not a directory")
        client = docker_client()
        image = self._resolve_image(client)
        req.log_path.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        try:
            container = client.containers.create(**self._create_args(req, client))
        except docker.errors.ImageNotFound:
            self._image_id = None
            raise self._missing_image() from None
        except docker.errors.APIError as exc:
            raise SandboxError(f"docker create failed: {_api_message(exc)}") from None
        except requests.exceptions.ConnectionError as exc:
            raise SandboxUnavailable(f"Docker daemon not reachable ({_first_line(exc)}); {_HOW_TO_START}") from None
        try:
            result = self._run_container(client, container, req, image, start)
        except BaseException as exc:
            if not self.config.keep:
                try:
                    _remove(container)
                except SandboxError:
                    pass  # the daemon is gone; `harness resume` and `clean` find it by label
            if isinstance(exc, requests.exceptions.RequestException):
                raise _lost(container, exc) from None
            raise
        if not self.config.keep:
            _remove(container)
        return result

    def cleanup(self, run_id: str | None = None, run_dir: Path | None = None) -> list[str]:
        """Remove containers this backend left behind, found by label. With a run id,
        every container of that run (running or not), and with `run_dir` only those
        that mount it (a run of the same id in another repository is left alone);
        without, only stopped ones, so concurrent runs are never touched. Model routes
        go the same way: a run's own (opened by this process or a dead one), or
        without a run id every one whose process is gone. Returns the removed
        container, network and chain names."""
        import docker

        client = docker_client()
        label = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
        removed = []
        for container in client.containers.list(all=True, filters={"label": [label, SANDBOX_LABEL]},
                                                  ignore_removed=True):
            if run_id is None and container.status in ("running", "restarting", "paused"):
                continue
            if run_dir is not None and not _mounts_under(container, run_dir):
                continue
            try:
                container.remove(force=True)
                removed.append(container.name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: its own attempt is removing it right now
                    raise SandboxError(f"cannot remove container {container.name}: {_api_message(exc)}") from None
        if run_id is None:
            removed += modelnet.sweep(client)
        else:
            removed += modelnet.close_routes(client, run_id)
        return removed

    def stop(self, run_id: str, run_dir: Path) -> list[str]:
        """Kill the run's running containers, found by label and by the harness dir
        they mount (so a run of the same id in another repository is left alone); the
        attempts waiting on them see them exit. `run` (or `cleanup`) removes them.
        The run's model route stays: stopping one attempt (its dir as `run_dir`) or a
        cancelled run's commands must not take the gateway from the rest; the run
        closes it when it ends, and `cleanup(run_id)` sweeps a dead run's."""
        import docker

        client = docker_client()
        stopped = []
        for container in client.containers.list(filters={"label": [f"{RUN_LABEL}={run_id}", SANDBOX_LABEL]},
                                                  ignore_removed=True):
            if not _mounts_under(container, run_dir):
                continue
            try:
                container.kill()
                stopped.append(container.name)
            except docker.errors.APIError:
                pass  # it ended on its own meanwhile
        return stopped

    def open_model_route(self, run_id: str) -> ModelRoute:
        """A fenced internal network for the run (see `modelnet`): the gateway binds
        the bridge address, which is also where the sandboxes reach it. Raises
        SandboxUnavailable (no iptables or no right to change it, a daemon not on
        this machine), SandboxError."""
        return modelnet.open_route(docker_client(), run_id)

    def seal_model_route(self, run_id: str, port: int) -> None:
        """Open the fence for `port` on the bridge address, and nothing else."""
        modelnet.seal_route(docker_client(), run_id, port)

    def close_model_route(self, run_id: str) -> None:
        """Remove the run's model network and its firewall chain (this process's, or
        a dead one's). Idempotent."""
        modelnet.close_routes(docker_client(), run_id)

    # --- pieces --------------------------------------------------------------------

    def _missing_image(self) -> SandboxUnavailable:
        image = self.config.image
        hint = image.split("/", 1)[1].split(":", 1)[0] if image.startswith("harness/") else "<name>"
        return SandboxUnavailable(f"sandbox image {image} is missing; build it with "
                                  f"`harness image build {hint}`, or use --sandbox local")

    def _resolve_image(self, client: Any) -> str:
        import docker

        if self._image_id is None:
            try:
                self._image_id = client.images.get(self.config.image).id
            except docker.errors.ImageNotFound:
                raise self._missing_image() from None
            except docker.errors.APIError as exc:
                raise SandboxUnavailable(f"cannot inspect image {self.config.image}: {_api_message(exc)}") from None
        return self._image_id

    def _create_args(self, req: SandboxRequest, client: Any = None) -> dict[str, Any]:
        cfg = self.config
        network: dict[str, Any] = {"network_mode": cfg.network}
        if req.model_network is not None:
            # The bridge address as DNS server: the embedded resolver forwards into the
            # fence, so nothing resolves, and fails in a second instead of ten.
            gateway = modelnet.model_network_gateway(client or docker_client(), req.model_network)
            network = {"network_mode": req.model_network, "dns": [gateway],
                       "dns_opt": ["timeout:1", "attempts:1"]}
        env = dict(req.env)
        env.update(HOME="/tmp", HARNESS_WORKSPACE=WORKSPACE, HARNESS_DIR=HARNESS_DIR,
                   HARNESS_TASK_FILE=f"{HARNESS_DIR}/task.json")
        labels = {SANDBOX_LABEL: "docker", **{k: str(v) for k, v in req.labels.items()}}
        slug = "-".join(req.labels[k] for k in ("harness.run", "harness.task", "harness.attempt")
                        if k in req.labels)
        name = _NAME_UNSAFE.sub("_", f"harness-{slug}-" if slug else "harness-")[:200] + uuid.uuid4().hex[:8]
        return dict(
            image=self._image_id, command=list(req.command), name=name, detach=True,
            environment=env, labels=labels, working_dir=WORKSPACE,
            user=cfg.user or f"{os.getuid()}:{os.getgid()}",
            volumes={str(req.workspace.resolve()): {"bind": WORKSPACE, "mode": "rw"},
                     str(req.harness_dir.resolve()): {"bind": HARNESS_DIR, "mode": "ro"}},
            **network, cap_drop=["ALL"], cap_add=list(cfg.cap_add) or None,
            security_opt=["no-new-privileges"], read_only=cfg.read_only_root,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={cfg.tmpfs_size},mode=1777"},
            mem_limit=cfg.memory, memswap_limit=cfg.memory, nano_cpus=int(cfg.cpus * 1e9),
            pids_limit=cfg.pids_limit, stdin_open=False, tty=False,
            log_config=DAEMON_LOG,
        )

    def _run_container(self, client: Any, container: Any, req: SandboxRequest, image: str,
                       start: float) -> SandboxResult:
        import docker

        stream = _attach(container)
        try:
            container.start()
        except docker.errors.APIError as exc:
            # The command could not be started (not found, not executable): data, not breakage.
            stream.close()
            message = _api_message(exc)
            with open(req.log_path, "ab") as log:
                log.write(f"harness: cannot start {req.command[0]!r}: {message}\n".encode())
            return SandboxResult(exit_code=None, duration_s=time.monotonic() - start,
                                 reason="start_failed", output_tail=message, image_id=image)
        with open(req.log_path, "ab") as log:
            watch = OutputWatch(log, stall_s=req.stall_s, max_steps=req.max_steps,
                                max_log_bytes=req.max_log_bytes, on_stop=lambda: _kill(container))
            pump = threading.Thread(target=_pump, args=(stream, watch), daemon=True)
            pump.start()
            try:
                why = _wait(container, watch, start + req.timeout_s)
                if why and watch.stop(why):
                    _kill(container)
                # The container is gone; the stream ends once it delivered the rest.
                pump.join(timeout=PUMP_DRAIN_S)
            finally:
                watch.close()  # a pump still running from here on only counts
                stream.close()
            stopped = watch.stopped
        duration = time.monotonic() - start
        state = _state(container)
        for _ in range(4):
            # The daemon records the kernel's OOM kill apart from the exit: a SIGKILLed
            # main process (137) that we did not stop may be flagged a moment later.
            if stopped or state.get("OOMKilled") or state.get("ExitCode") != 137:
                break
            time.sleep(0.25)
            state = _state(container)
        text = watch.tail()
        if not watch.complete:
            # The stream broke or lagged (a loaded daemon): the stopped container still
            # holds its last output; a tail of it, never the whole log, which is as big
            # as the daemon's log limit.
            try:
                last = container.logs(stdout=True, stderr=True, tail=TAIL_ENTRIES)
                text = last[-TAIL_BYTES:].decode("utf-8", "replace")
            except Exception:
                pass
        common = dict(duration_s=duration, output_tail=text, image_id=image, steps=watch.steps,
                      trace=list(watch.trace))
        if stopped:
            return SandboxResult(exit_code=None, timed_out=stopped == "timeout", reason=stopped, **common)
        if state.get("OOMKilled"):
            return SandboxResult(exit_code=None, reason="oom", **common)
        if state.get("Error"):
            return SandboxResult(exit_code=None, reason="start_failed",
                                 **{**common, "output_tail": text or state["Error"]})
        return SandboxResult(exit_code=int(state.get("ExitCode", -1)), **common)


def _wait(container: Any, watch: OutputWatch, deadline: float) -> str | None:
    """Wait for the container to exit (or be killed by the watch); return why it
    must be stopped instead ("timeout", "stalled"), or None."""
    import docker
    import requests

    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        try:
            container.wait(timeout=min(left, watch.poll_s(left)))
            return None
        except requests.exceptions.ReadTimeout:
            pass  # the read timed out; look at the clock and the output again
        except requests.exceptions.RequestException as exc:
            if not _read_timed_out(exc):
                raise _lost(container, exc) from None
        except docker.errors.APIError as exc:
            raise SandboxError(f"lost container {container.name}: {_api_message(exc)}") from None
        if watch.stalled():
            return "stalled"


def _mounts_under(container: Any, run_dir: Path) -> bool:
    return any(str(m.get("Source", "")).startswith(f"{run_dir}/") for m in container.attrs.get("Mounts", []))


def _kill(container: Any) -> None:
    import docker
    import requests

    try:
        container.kill()
        container.wait(timeout=30)
    except docker.errors.APIError:
        pass  # it exited on its own at the last moment
    except requests.exceptions.RequestException as exc:
        if not _read_timed_out(exc):
            raise _lost(container, exc) from None
        raise SandboxError(f"cannot kill container {container.name}: {_first_line(exc)}") from None


def _attach(container: Any) -> Any:
    """The container's merged stdout+stderr as a stream of chunks, attached before it
    starts so nothing is missed. Attached, not followed from the daemon's log: the
    daemon hands output over only as fast as the harness reads it (the agent's writes
    block meanwhile), so nothing is lost however fast it prints and nothing piles up
    in the daemon or the harness. Raises SandboxError, SandboxUnavailable."""
    import docker
    import requests

    try:
        return docker_client(streaming=True).api.attach(container.id, stdout=True, stderr=True,
                                                        stream=True, logs=False)
    except docker.errors.APIError as exc:
        raise SandboxError(f"cannot attach to container {container.name}: {_api_message(exc)}") from None
    except requests.exceptions.ConnectionError as exc:
        raise SandboxUnavailable(f"Docker daemon not reachable ({_first_line(exc)}); {_HOW_TO_START}") from None


def _pump(stream: Any, watch: OutputWatch) -> None:
    """Feed the attached output to the watch as it comes."""
    try:
        for chunk in stream:
            watch.feed(chunk)
        watch.finish()
    except Exception as exc:  # a broken log stream must not hang or crash the attempt
        try:
            watch.feed(f"\nharness: log stream broke: {_first_line(exc)}\n".encode())
        except (OSError, ValueError):
            pass


def _state(container: Any) -> dict[str, Any]:
    try:
        container.reload()
        return dict(container.attrs.get("State", {}))
    except Exception as exc:
        raise SandboxError(f"cannot inspect container {container.name}: {_first_line(exc)}") from None


def _remove(container: Any) -> None:
    import docker
    import requests

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc):
            raise SandboxError(f"cannot remove container {container.name}: {_api_message(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise _lost(container, exc) from None


def _lost(container: Any, exc: BaseException) -> SandboxError:
    """The error for a daemon that went away (stopped, restarted) under a container."""
    return SandboxError(f"lost the Docker daemon while {container.name} ran: {_first_line(exc)}")


def _read_timed_out(exc: BaseException) -> bool:
    """Whether a requests error is only a read timeout: requests raises ConnectionError,
    not ReadTimeout, when the timeout hits while the body is read (a wait's body
    comes when the container exits), so only the cause tells it from a lost daemon."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    return isinstance(exc, requests.exceptions.ReadTimeout) or any(
        isinstance(arg, ReadTimeoutError) for arg in getattr(exc, "args", ()))


def _api_message(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return _first_line(Exception(explanation)) if explanation else _first_line(exc)
