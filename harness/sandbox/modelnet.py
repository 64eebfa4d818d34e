"""The docker side of "the gateway is the only way out": a run's model network.

A run whose agents call a model gets one internal Docker network; its sandboxes join
it instead of network none, and the run's gateway listens on the host side of it, the
bridge's own address. Internal means Docker routes nothing out of it, but a container
on it still reaches every listening port of the host, through the bridge address and
through the host's other addresses (its default route points at the bridge). So the
bridge gets a firewall chain of its own, `HARNESS-<token>`, jumped to from INPUT and
FORWARD for packets that come in on the bridge: it lets through TCP to the gateway's
address and port and the answers of connections the host itself opened, and rejects
everything else (TCP with a reset, the rest with an ICMP error, so a probe fails at
once instead of hanging). The same chain in ip6tables rejects all IPv6 (the network
has none; Docker turns IPv6 off in its containers, this only backs that up).

Why the host side and not a gateway container on both networks: the gateway keeps the
real keys and writes the recordings, budgets and verdicts the run reads; on the host
they never enter a container and need no volume, and the sandbox image needs no
aiohttp. The price is the firewall, so opening a route needs iptables and the right
to change it (root or CAP_NET_ADMIN) and a daemon on this machine; without them it
raises SandboxUnavailable rather than leave the host open.

The network also has inter-container traffic off (agents of a run do not talk to each
other) and its containers are given the bridge address as their DNS server, so
Docker's embedded resolver forwards names only into the firewall: nothing resolves.

Everything is labelled (`harness.run`, `harness.model-net=<token>`, and the owning
process as `harness.owner=<pid>:<start time>`), and the token names the bridge
(`hm-<token>`) and the chain, so a route left by a dead process is found and removed
by label, never by guessing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from typing import Any

from ..errors import SandboxError, SandboxUnavailable
from .base import ModelRoute

RUN_LABEL = "harness.run"
SANDBOX_LABEL = "harness.sandbox"
NET_LABEL = "harness.model-net"
"""Marks a model network; its value is the token naming its bridge and chain."""
OWNER_LABEL = "harness.owner"
"""`<pid>:<start time>` of the process that opened the route, so a sweep can tell a
live run's route from a dead one's."""
CHAIN_PREFIX = "HARNESS-"
BRIDGE_PREFIX = "hm-"
_TOKEN = re.compile(r"^[0-9a-f]{12}$")
_IPTABLES_WAIT = "10"
"""Seconds iptables waits for the xtables lock (Docker and parallel runs hold it too)."""


def _chain(token: str) -> str:
    return f"{CHAIN_PREFIX}{token}"


def _bridge(token: str) -> str:
    return f"{BRIDGE_PREFIX}{token}"  # 15 characters: the kernel's limit for a name


# --- the owning process ---------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()[19].decode()


def me() -> str:
    """This process as an owner label: pid and start time (a reused pid differs)."""
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def owner_alive(owner: str | None) -> bool:
    pid, _, started = (owner or "").partition(":")
    return pid.isdigit() and _start_time(int(pid)) == started


# --- iptables -------------------------------------------------------------------------


def _ipt(binary: str, *args: str) -> tuple[bool, str]:
    """Run one iptables command; (succeeded, its error's first line)."""
    try:
        proc = subprocess.run([binary, "-w", _IPTABLES_WAIT, *args], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    err = (proc.stderr or proc.stdout).strip()
    return proc.returncode == 0, err.splitlines()[0] if err else f"exit {proc.returncode}"


def _must(binary: str, *args: str) -> None:
    ok, err = _ipt(binary, *args)
    if not ok:
        raise SandboxUnavailable(f"cannot fence the model network: `{binary} {' '.join(args)}` failed ({err}); "
                                 "it needs iptables and root (or CAP_NET_ADMIN)")


def _binaries() -> list[str]:
    """iptables (required) and ip6tables (when installed). Raises SandboxUnavailable."""
    if shutil.which("iptables") is None:
        raise SandboxUnavailable("the docker model network needs iptables on this machine; it is not installed")
    return ["iptables"] + (["ip6tables"] if shutil.which("ip6tables") else [])


def _install_chain(token: str) -> None:
    """A closed chain for the bridge (nothing accepted but answers), jumped to first."""
    chain, bridge = _chain(token), _bridge(token)
    for binary in _binaries():
        _must(binary, "-N", chain)
        if binary == "iptables":
            _must(binary, "-A", chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
            _must(binary, "-A", chain, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
        _must(binary, "-A", chain, "-j", "REJECT")
        for hook in ("INPUT", "FORWARD"):
            _must(binary, "-I", hook, "1", "-i", bridge, "-j", chain)


def _remove_chain(token: str) -> bool:
    """Remove the chain and its jumps wherever they are; whether anything was there."""
    chain, bridge = _chain(token), _bridge(token)
    found = False
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary) is None:
            continue
        for hook in ("INPUT", "FORWARD"):
            for _ in range(16):  # a jump inserted twice (a retried open) goes too
                ok, _err = _ipt(binary, "-D", hook, "-i", bridge, "-j", chain)
                if not ok:
                    break
                found = True
        if _ipt(binary, "-F", chain)[0]:
            found = True
            ok, err = _ipt(binary, "-X", chain)
            if not ok and _ipt(binary, "-S", chain)[0]:  # not gone: not just a sweep that was faster
                raise SandboxError(f"cannot remove firewall chain {chain}: {err}")
    return found



def _chains() -> set[str]:
    """Tokens of every HARNESS- chain in iptables or ip6tables."""
    tokens = set()
    for binary in ("iptables", "ip6tables"):
        if shutil.which(binary) is None:
            continue
        for line in _listing(binary).splitlines():
            if line.startswith(f"-N {CHAIN_PREFIX}"):
                token = line[len(f"-N {CHAIN_PREFIX}"):].strip()
                if _TOKEN.match(token):
                    tokens.add(token)
    return tokens


def _rules(binary: str, chain: str) -> list[list[str]]:
    """The chain's rules as `iptables -S` words (`-A CHAIN ...`)."""
    return [line.split() for line in _listing(binary, chain).splitlines() if line.startswith("-A ")]


def _listing(binary: str, *chain: str) -> str:
    try:
        return subprocess.run([binary, "-w", _IPTABLES_WAIT, "-S", *chain], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


# --- networks -------------------------------------------------------------------------


def _gateway_ip(network: Any) -> str:
    for cfg in (network.attrs.get("IPAM") or {}).get("Config") or []:
        gateway = (cfg.get("Gateway") or "").split("/")[0]
        if gateway and ":" not in gateway:
            return gateway
    raise SandboxError(f"model network {network.name} has no IPv4 gateway address")


def _networks(client: Any, run_id: str | None = None) -> list[Any]:
    """Model networks (of one run, or all), fully inspected."""
    labels = [NET_LABEL] + ([f"{RUN_LABEL}={run_id}"] if run_id else [])
    return [client.networks.get(n.id) for n in client.networks.list(filters={"label": labels})]


def open_route(client: Any, run_id: str) -> ModelRoute:
    """Create the run's internal network, fenced (nothing reachable until sealed);
    a route of this run opened before by this process or left by a dead one goes
    first. Raises SandboxUnavailable
    (no iptables, no right to change it, a daemon not on this machine) and
    SandboxError (the daemon refused the network)."""
    import docker

    _binaries()
    close_routes(client, run_id, mine_only=False)
    token = uuid.uuid4().hex[:12]
    bridge = _bridge(token)
    try:
        network = client.networks.create(
            f"harness-{run_id}-{token[:6]}", driver="bridge", internal=True, check_duplicate=True,
            labels={RUN_LABEL: run_id, SANDBOX_LABEL: "docker", NET_LABEL: token, OWNER_LABEL: me()},
            options={"com.docker.network.bridge.name": bridge,
                     "com.docker.network.bridge.enable_icc": "false"})
        network.reload()
    except docker.errors.APIError as exc:
        raise SandboxError(f"cannot create the model network of run {run_id}: {exc.explanation or exc}") from None
    try:
        gateway = _gateway_ip(network)
        if not os.path.exists(f"/sys/class/net/{bridge}"):
            raise SandboxUnavailable("the docker model network needs the Docker daemon on this machine "
                                     f"(its bridge {bridge} is not here: a remote or rootless daemon?)")
        _install_chain(token)
    except BaseException:
        _drop(client, network)
        raise
    return ModelRoute(gateway, gateway, network.name)


def seal_route(client: Any, run_id: str, port: int) -> None:
    """Let the run's sandboxes reach `port` on the bridge address, and nothing else.
    Raises SandboxError when this process opened no route for the run,
    SandboxUnavailable when iptables refuses."""
    network = _mine(client, run_id)
    token, gateway = network.attrs["Labels"][NET_LABEL], _gateway_ip(network)
    chain = _chain(token)
    accept = ["-d", f"{gateway}/32", "-p", "tcp", "-m", "tcp", "--dport", str(port), "-j", "ACCEPT"]
    if not _ipt("iptables", "-C", chain, *accept)[0]:
        _must("iptables", "-I", chain, "1", *accept)
    for rule in _rules("iptables", chain):  # a port sealed before is no longer open
        if "--dport" in rule and "ACCEPT" in rule and rule[rule.index("--dport") + 1] != str(port):
            _must("iptables", "-D", *rule[1:])


def _mine(client: Any, run_id: str) -> Any:
    mine = me()
    for network in _networks(client, run_id):
        if network.attrs["Labels"].get(OWNER_LABEL) == mine:
            return network
    raise SandboxError(f"run {run_id} has no model route opened by this process")


def model_network_gateway(client: Any, name: str) -> str:
    """The bridge address of model network `name` (the DNS server its containers get).
    Raises SandboxError when `name` is not a harness model network: a request may
    join only those, never "host" or another network."""
    import docker

    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        raise SandboxError(f"model network {name} does not exist (its run's route is closed)") from None
    if NET_LABEL not in (network.attrs.get("Labels") or {}):
        raise SandboxError(f"network {name} is not a harness model network")
    return _gateway_ip(network)


def close_routes(client: Any, run_id: str, *, mine_only: bool = False) -> list[str]:
    """Remove the run's model networks opened by this process or by a dead one (with
    `mine_only`, only this process's), each with its chain; a live run of the same id
    elsewhere keeps its own. Idempotent. Returns the removed network names."""
    mine, removed = me(), []
    for network in _networks(client, run_id):
        owner = network.attrs["Labels"].get(OWNER_LABEL)
        if owner == mine or (not mine_only and not owner_alive(owner)):
            _drop(client, network)
            removed.append(network.name)
    return removed


def sweep(client: Any) -> list[str]:
    """Remove every model network whose owning process is gone, and every HARNESS-
    chain whose network is gone. Returns what was removed."""
    removed = []
    live_tokens = set()
    for network in _networks(client):
        labels = network.attrs["Labels"]
        if owner_alive(labels.get(OWNER_LABEL)):
            live_tokens.add(labels.get(NET_LABEL))
        else:
            _drop(client, network)
            removed.append(network.name)
    for token in _chains() - live_tokens:
        # A chain whose network exists but is not listed yet is one being opened now.
        if not _exists(client, token) and _remove_chain(token):
            removed.append(_chain(token))
    return removed


def _exists(client: Any, token: str) -> bool:
    return bool(client.networks.list(filters={"label": f"{NET_LABEL}={token}"}))


def _drop(client: Any, network: Any) -> None:
    """Disconnect what is still attached, remove the network, then its chain: the
    firewall goes only once no container can be on the bridge."""
    import docker

    token = (network.attrs.get("Labels") or {}).get(NET_LABEL, "")
    try:
        network.reload()
        for cid in (network.attrs.get("Containers") or {}):
            try:
                network.disconnect(cid, force=True)
            except docker.errors.APIError:
                pass  # gone meanwhile
        network.remove()
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        raise SandboxError(f"cannot remove model network {network.name}: {exc.explanation or exc}") from None
    if _TOKEN.match(token):
        _remove_chain(token)
