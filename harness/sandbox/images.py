"""Sandbox images: build `sandboxes/<name>/` into `harness/<name>:latest`.

Two paths, one Dockerfile. When a registry is reachable (or the Dockerfile's default
base is already local) it is an ordinary `docker build`. Otherwise the build is
offline: debootstrap a minimal Debian rootfs with the packages from `packages.txt`
(cached as a tarball, so a second build is quick), `docker import` it as the base,
and run the same Dockerfile with `--build-arg BASE=<imported base>` and no network.
The Dockerfile installs only what its base lacks, so on the imported base its
package step is a no-op. Binaries from PyPI (`wheels.txt`, e.g. py-spy) are fetched
on the host and handed to the build in its context.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from ..errors import ImageBuildError, SandboxUnavailable
from ..progress import Progress

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
ONLINE_BASE = "debian:bookworm-slim"
REGISTRY_PROBE = ("registry-1.docker.io", 443)
# Bump when the rootfs recipe changes in a way the package list does not show.
ROOTFS_RECIPE = "1"
TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
        "usr/share/info", "usr/share/locale")


def sandboxes_dir() -> Path:
    """Where the image folders live: $HARNESS_SANDBOXES_DIR or the repo's sandboxes/."""
    env = os.environ.get("HARNESS_SANDBOXES_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "sandboxes"


def cache_dir() -> Path:
    """$HARNESS_CACHE_DIR, else /var/cache/harness for root, else ~/.cache/harness."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/harness")
    return Path.home() / ".cache" / "harness"


def image_tag(name: str) -> str:
    return name if ":" in name or "/" in name else f"harness/{name}:latest"


def available() -> list[str]:
    """Names of the images this checkout can build."""
    root = sandboxes_dir()
    return sorted(p.name for p in root.iterdir() if (p / "Dockerfile").is_file()) if root.is_dir() else []


def _client(timeout: int = 600) -> Any:
    try:
        import docker
    except ImportError:  # pragma: no cover - docker is a dependency
        raise SandboxUnavailable("the `docker` Python package is not installed") from None
    try:
        return docker.from_env(timeout=timeout)
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(
            f"Docker daemon not reachable ({_first_line(exc)}); start it with "
            "scripts/lib/docker-up.sh, or use --sandbox local") from None


def image_id(name: str) -> str | None:
    """The local id of `harness/<name>:latest` (or of a full tag), None when absent.
    Raises SandboxUnavailable when the daemon is down."""
    import docker

    try:
        return _client(timeout=30).images.get(image_tag(name)).id
    except docker.errors.ImageNotFound:
        return None


def image_present(name: str) -> bool:
    return image_id(name) is not None


def registry_reachable(timeout: float = 3.0) -> bool:
    """Whether Docker Hub answers at all, probed with one short TCP+TLS handshake."""
    import ssl

    try:
        with socket.create_connection(REGISTRY_PROBE, timeout=timeout) as raw:
            ctx = ssl.create_default_context()
            with ctx.wrap_socket(raw, server_hostname=REGISTRY_PROBE[0]):
                return True
    except (OSError, ssl.SSLError):
        return False


def build_image(name: str, *, progress: Progress | None = None, offline: bool | None = None) -> str:
    """Build `sandboxes/<name>/` and tag it `harness/<name>:latest`; return the image id.

    `offline=None` picks the path: online when a registry answers (or the default base
    is already local), offline otherwise. Raises ImageBuildError (one line) on failure,
    SandboxUnavailable when the daemon is down.
    """
    say = progress or (lambda msg: None)
    folder = sandboxes_dir() / name
    if not (folder / "Dockerfile").is_file():
        known = ", ".join(available()) or "none"
        raise ImageBuildError(f"no sandbox image {name!r} (no {folder}/Dockerfile); known: {known}")
    client = _client()
    started = time.monotonic()
    if offline is None:
        offline = not (_has_image(client, ONLINE_BASE) or registry_reachable())
    with tempfile.TemporaryDirectory(prefix=f"harness-build-{name}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(folder, context)
        _vendor_wheels(folder, context / "vendor", say)
        if offline:
            say(f"image {name}: no registry reachable, building offline from a debootstrap rootfs")
            base = _offline_base(client, name, _packages(folder), say)
            network = "none"
        else:
            say(f"image {name}: building on {ONLINE_BASE}")
            base, network = ONLINE_BASE, "default"
        image = _docker_build(client, context, image_tag(name), base, network, say)
    say(f"image {name}: {image_tag(name)} {image[:19]} in {time.monotonic() - started:.1f}s")
    return image


# --- pieces ------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _has_image(client: Any, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _packages(folder: Path) -> list[str]:
    packages = _read_list(folder / "packages.txt")
    if not packages:
        raise ImageBuildError(f"{folder}/packages.txt lists no packages; the offline build needs them")
    return packages


def _run(cmd: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    except FileNotFoundError:
        raise ImageBuildError(f"{what}: {cmd[0]} not found (scripts/lib/docker-up.sh installs it)") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        last = lines[-1] if lines else f"exit {proc.returncode}"
        raise ImageBuildError(f"{what} failed: {last}")
    return proc


def _vendor_wheels(folder: Path, dest: Path, say: Progress) -> None:
    """Fetch each wheel of wheels.txt on the host (cached) and copy its scripts to dest."""
    dest.mkdir(parents=True, exist_ok=True)
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine())
    for req in _read_list(folder / "wheels.txt"):
        wheel_dir = cache_dir() / "wheels" / req.replace("=", "-").replace("/", "_") / machine
        wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
        if not wheels:
            say(f"fetching {req} ({machine}) from PyPI")
            wheel_dir.mkdir(parents=True, exist_ok=True)
            _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                  "--platform", f"manylinux2014_{machine}", "--python-version", "3.11",
                  "--dest", str(wheel_dir), req], f"pip download {req}")
            wheels = sorted(wheel_dir.glob("*.whl"))
        if not wheels:
            raise ImageBuildError(f"pip download {req} left no wheel in {wheel_dir}")
        with zipfile.ZipFile(wheels[-1]) as whl:
            scripts = [n for n in whl.namelist() if ".data/scripts/" in n and not n.endswith("/")]
            if not scripts:
                raise ImageBuildError(f"{wheels[-1].name} ships no scripts to install")
            for member in scripts:
                target = dest / Path(member).name
                target.write_bytes(whl.read(member))
                target.chmod(0o755)


def _rootfs_key(name: str, packages: list[str], mirror: str) -> str:
    text = "\n".join([ROOTFS_RECIPE, SUITE, mirror, platform.machine(), *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _offline_base(client: Any, name: str, packages: list[str], say: Progress) -> str:
    """The imported rootfs tag for these packages, creating and importing it when absent."""
    mirror = os.environ.get("HARNESS_DEBIAN_MIRROR", DEFAULT_MIRROR)
    key = _rootfs_key(name, packages, mirror)
    tag = f"harness/{name}-base:{key}"
    if _has_image(client, tag):
        say(f"base {tag} already imported")
        return tag
    tarball = cache_dir() / "rootfs" / f"{name}-{SUITE}-{key}.tar"
    if tarball.is_file():
        say(f"using cached rootfs {tarball}")
    else:
        _debootstrap(tarball, packages, mirror, say)
    say(f"importing {tarball.name} as {tag}")
    repo, _, version = tag.rpartition(":")
    try:
        client.api.import_image_from_file(str(tarball), repository=repo, tag=version,
                                          changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                                   'CMD ["bash"]'])
    except Exception as exc:  # the SDK raises several unrelated types here
        raise ImageBuildError(f"docker import of {tarball} failed: {_first_line(exc)}") from None
    if not _has_image(client, tag):
        raise ImageBuildError(f"docker import of {tarball} did not produce {tag}")
    return tag


def _debootstrap(tarball: Path, packages: list[str], mirror: str, say: Progress) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError("the offline image build runs debootstrap and needs root "
                              "(run scripts/lib/docker-up.sh as root)")
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap not found; `apt-get install debootstrap` "
                              "(scripts/lib/docker-up.sh does)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    try:
        rootfs = work / "rootfs"
        say(f"debootstrap {SUITE} with {len(packages)} packages (about a minute)")
        _run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
              f"--include={','.join(packages)}", SUITE, str(rootfs), mirror], "debootstrap")
        for rel in TRIM:
            target = rootfs / rel
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        # Docker provides these per container; the host's must not leak into the image.
        for rel in ("etc/resolv.conf", "etc/hostname"):
            (rootfs / rel).unlink(missing_ok=True)
        partial = work / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], "tar of the rootfs")
        partial.replace(tarball)
        say(f"cached rootfs {tarball} ({tarball.stat().st_size >> 20} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _docker_build(client: Any, context: Path, tag: str, base: str, network: str, say: Progress) -> str:
    import docker

    last = ""
    try:
        for chunk in client.api.build(path=str(context), tag=tag, buildargs={"BASE": base},
                                      network_mode=network, rm=True, forcerm=True, pull=False,
                                      decode=True, labels={"harness.image": tag}):
            if "error" in chunk:
                raise ImageBuildError(f"docker build {tag}: {chunk['error'].strip()}")
            line = chunk.get("stream", "").strip()
            if line:
                last = line
                if line.startswith("Step "):
                    say(line if len(line) <= 100 else line[:97] + "...")
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"docker build {tag}: {_first_line(exc)}") from None
    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        raise ImageBuildError(f"docker build {tag} finished without an image ({last})") from None
