"""The gateway is the only way out of a Docker sandbox: a run's model route against the
real daemon, real iptables and real sockets. From a container on the route, the run's
gateway answers; every other address does not (other ports of the host, the Docker
bridge gateway, a public address, DNS, another run's gateway). Closing the route
leaves no network and no firewall rule behind."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import pytest

from harness.config import DockerSandboxConfig, load_model_config
from harness.errors import SandboxError, SandboxUnavailable
from harness.gateway import Gateway, ScriptedUpstream
from harness.sandbox import get_sandbox
from harness.sandbox.modelnet import NET_LABEL
from sandboxutil import make_request, require_docker

pytestmark = pytest.mark.docker

KEY = "sk-test-modelnet-0123456789"
PROBE = r"""
import json, socket, sys, urllib.request
spec, out = json.loads(sys.argv[1]), {}
if "gateway" in spec:
    url, token = spec["gateway"]
    req = urllib.request.Request(url + "/v1/chat/completions", method="POST",
        data=json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            out["gateway"] = json.loads(r.read())["choices"][0]["message"]["content"]
    except Exception as e:
        out["gateway"] = "error: %r" % e
for name, host, port in spec.get("connect", []):
    try:
        socket.create_connection((host, port), timeout=2).close()
        out[name] = "open"
    except Exception as e:
        out[name] = "closed: %r" % e
for host, port in spec.get("udp", []):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"out", (host, port))
        except OSError:
            pass
if spec.get("dns"):
    try:
        out["dns"] = "resolved %s" % socket.getaddrinfo(spec["dns"], 80)[0][4][0]
    except Exception as e:
        out["dns"] = "closed: %r" % e
print("PROBE " + json.dumps(out), flush=True)
"""


def probe(sb, tmp_path, network: str | None, **spec) -> dict:
    """Run the probe in a sandbox on `network` (a model route's); what it reached."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    req = make_request(tmp_path, ["python3", "-c", PROBE, json.dumps(spec)], timeout_s=90,
                       labels={"harness.run": "modelnet-probe"})
    req = req.model_copy(update={"model_network": network})
    result = sb.run(req)
    line = [x for x in req.log_path.read_text().splitlines() if x.startswith("PROBE ")]
    assert result.exit_code == 0 and line, req.log_path.read_text()
    return json.loads(line[-1][len("PROBE "):])


class Listener:
    """A plain http.server on (host, port 0), on a thread: what a sandbox must not reach."""

    def __init__(self, host: str) -> None:
        self.server = http.server.ThreadingHTTPServer((host, 0), http.server.SimpleHTTPRequestHandler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def host_address() -> str | None:
    """The host's outbound address (not loopback, not a bridge), when it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("1.1.1.1", 53))  # UDP connect sends nothing; it picks the route
            return s.getsockname()[0]
    except OSError:
        return None


def firewall() -> str:
    return "".join(subprocess.run([b, "-w", "10", "-S"], capture_output=True, text=True).stdout
                   for b in ("iptables", "ip6tables"))


@pytest.fixture
def sandbox():
    require_docker()
    return get_sandbox(DockerSandboxConfig())


@pytest.fixture
def upstream():
    with ScriptedUpstream(text="answer through the gateway") as up:
        yield up


@pytest.fixture
def routed(sandbox, upstream, tmp_path):
    """routed(run_id) -> (route, gateway, token): an open route with a gateway bound on
    its host side, sealed to the gateway's port. All closed afterwards."""
    opened = []

    def make(run_id: str):
        route = sandbox.open_model_route(run_id)
        opened.append(run_id)
        cfg = load_model_config({"upstream": [{
            "name": "oa", "protocol": "openai", "base_url": f"{upstream.url}/v1", "api_key_env": "KEY",
            "models": ["gpt-*"], "input_price_per_mtok": 1.0, "output_price_per_mtok": 10.0}]})
        gw = Gateway(cfg, run_id, blobs_dir=tmp_path / run_id / "blobs", host=route.bind_host,
                     environ={"KEY": KEY})
        url = gw.start()
        opened.append(gw)
        sandbox.seal_model_route(run_id, urlsplit(url).port)
        token = gw.issue_token(run_id, "t1", 1)
        return route, gw, token

    yield make
    for item in reversed(opened):
        if isinstance(item, str):
            sandbox.close_model_route(item)
        else:
            item.stop()


def test_gateway_answers_and_nothing_else_does(sandbox, routed, run_id, tmp_path):
    route, gw, token = routed(run_id)
    assert route.bind_host == route.agent_host and route.network
    on_bridge, on_all = Listener(route.bind_host), Listener("0.0.0.0")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    udp.setblocking(False)
    try:
        # Both listeners answer the host itself: a refusal below is the fence's doing.
        for port in (on_bridge.port, on_all.port):
            socket.create_connection((route.bind_host, port), timeout=2).close()
        gw_port = urlsplit(gw.url).port
        targets = [["bridge_other_port", route.bind_host, on_bridge.port],
                   ["bridge_any_port", route.bind_host, on_all.port],
                   ["docker0_gateway", "172.17.0.1", on_all.port],
                   ["public", "1.1.1.1", 80],
                   ["bridge_dns", route.bind_host, 53],
                   ["own_loopback", "127.0.0.1", gw_port]]
        outbound = host_address()
        if outbound:
            targets.append(["host_address", outbound, on_all.port])
        udp_port = udp.getsockname()[1]
        seen = probe(sandbox, tmp_path, route.network,
                     gateway=[f"http://{route.agent_host}:{gw_port}", token], connect=targets,
                     udp=[[route.bind_host, udp_port]] + ([[outbound, udp_port]] if outbound else []),
                     dns="example.com")
        # The probe sent its datagrams before it printed and exited.
        with pytest.raises(BlockingIOError):
            udp.recvfrom(64)
    finally:
        udp.close()
        on_bridge.close()
        on_all.close()
    assert seen.pop("gateway") == "answer through the gateway"
    for name, outcome in seen.items():
        assert outcome.startswith("closed"), f"{name}: {outcome}"


def test_the_fence_is_what_closes_the_host(docker_daemon, routed, run_id, tmp_path):
    """Control: a plain internal network (no fence) reaches a listener on its bridge
    address, as the probe above would if the route were not sealed."""
    name = f"harness-{run_id}-control"
    net = docker_daemon.networks.create(name, driver="bridge", internal=True, labels={"harness.test": run_id})
    try:
        net.reload()
        bridge_ip = net.attrs["IPAM"]["Config"][0]["Gateway"]
        listener = Listener(bridge_ip)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((bridge_ip, 0))
        udp.settimeout(30)
        try:
            out = docker_daemon.containers.run(
                "harness/python:latest", ["python3", "-c", PROBE, json.dumps(
                    {"connect": [["bridge", bridge_ip, listener.port]],
                     "udp": [[bridge_ip, udp.getsockname()[1]]]})],
                network=name, remove=True, cap_drop=["ALL"], security_opt=["no-new-privileges"])
            assert udp.recvfrom(64)[0] == b"out"
        finally:
            udp.close()
            listener.close()
    finally:
        net.remove()
    assert json.loads(out.decode().split("PROBE ", 1)[1])["bridge"] == "open"


def test_unsealed_route_reaches_nothing(sandbox, upstream, run_id, tmp_path):
    route = sandbox.open_model_route(run_id)
    try:
        listener = Listener(route.bind_host)
        try:
            seen = probe(sandbox, tmp_path, route.network, connect=[["bridge", route.bind_host, listener.port]])
        finally:
            listener.close()
    finally:
        sandbox.close_model_route(run_id)
    assert seen["bridge"].startswith("closed")


def test_two_runs_do_not_reach_each_other(sandbox, routed, run_id, tmp_path):
    route_a, gw_a, token_a = routed(f"{run_id}a")
    route_b, gw_b, token_b = routed(f"{run_id}b")
    assert route_a.network != route_b.network and route_a.bind_host != route_b.bind_host
    port_a, port_b = urlsplit(gw_a.url).port, urlsplit(gw_b.url).port
    seen_a = probe(sandbox, tmp_path / "a", route_a.network, gateway=[gw_a.url, token_a],
                   connect=[["other_gateway", route_b.bind_host, port_b],
                            ["other_gateway_own_port", route_b.bind_host, port_a]])
    seen_b = probe(sandbox, tmp_path / "b", route_b.network, gateway=[gw_b.url, token_b],
                   connect=[["other_gateway", route_a.bind_host, port_a]])
    assert seen_a.pop("gateway") == seen_b.pop("gateway") == "answer through the gateway"
    for name, outcome in {**seen_a, **seen_b}.items():
        assert outcome.startswith("closed"), f"{name}: {outcome}"


def test_close_leaves_nothing_behind(sandbox, docker_daemon, run_id, tmp_path):
    route = sandbox.open_model_route(run_id)
    sandbox.seal_model_route(run_id, 40123)
    token = docker_daemon.networks.get(route.network).attrs["Labels"][NET_LABEL]
    assert token in firewall()
    sandbox.close_model_route(run_id)
    sandbox.close_model_route(run_id)  # idempotent
    assert not docker_daemon.networks.list(filters={"label": f"harness.run={run_id}"})
    assert token not in firewall()
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.run(make_request(tmp_path, ["true"]).model_copy(update={"model_network": route.network}))


def test_cleanup_closes_the_run_route_and_stop_leaves_it(sandbox, docker_daemon, run_id, tmp_path):
    """Stopping commands (one attempt's, or a cancelled run's) keeps the route the run's
    other attempts use; cleaning the run up removes it."""
    route = sandbox.open_model_route(run_id)
    token = docker_daemon.networks.get(route.network).attrs["Labels"][NET_LABEL]
    sandbox.stop(run_id, tmp_path / "tasks" / "t" / "1")
    sandbox.stop(run_id, tmp_path)
    assert docker_daemon.networks.get(route.network) and token in firewall()
    sandbox.cleanup(run_id, tmp_path)
    assert not docker_daemon.networks.list(filters={"label": f"harness.run={run_id}"})
    assert token not in firewall()


@pytest.mark.parametrize("network", ["host", "bridge", "none"])
def test_a_request_joins_only_a_model_network(sandbox, tmp_path, network):
    with pytest.raises(SandboxError, match="not a harness model network"):
        sandbox.run(make_request(tmp_path, ["true"]).model_copy(update={"model_network": network}))


def test_without_iptables_nothing_is_opened(sandbox, docker_daemon, run_id, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="iptables"):
        sandbox.open_model_route(run_id)
    assert not docker_daemon.networks.list(filters={"label": f"harness.run={run_id}"})


def test_cleanup_sweeps_routes_of_dead_processes_only(sandbox, docker_daemon, run_id):
    code = ("import sys; from harness.sandbox.docker import DockerSandbox; "
            "print(DockerSandbox().open_model_route(sys.argv[1]).network, flush=True); sys.stdin.read()")
    owner = subprocess.Popen([sys.executable, "-c", code, run_id], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        network = owner.stdout.readline().strip()
        assert network, "the owning process could not open a route"
        token = docker_daemon.networks.get(network).attrs["Labels"][NET_LABEL]
        assert network not in sandbox.cleanup()  # its process lives: a running run's route
        sandbox.close_model_route(run_id)  # not this process's: left alone too
        assert docker_daemon.networks.list(filters={"label": f"harness.run={run_id}"})
    finally:
        owner.stdin.close()
        owner.wait(30)
    assert network in sandbox.cleanup()
    assert not docker_daemon.networks.list(filters={"label": f"harness.run={run_id}"})
    assert token not in firewall()


SERVE = r"""
import os, socket, time
srv = socket.socket()
srv.bind(("0.0.0.0", 8000))
srv.listen(8)
srv.settimeout(0.2)
me = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
me.connect(("10.255.255.255", 9))  # picks the address of the route's interface; sends nothing
addr = me.getsockname()[0]
socket.create_connection((addr, 8000), timeout=2).close()  # it listens on that address
srv.accept()[0].close()
open("/workspace/addr.tmp", "w").write(addr)
os.rename("/workspace/addr.tmp", "/workspace/addr")
while not os.path.exists("/workspace/done"):
    try:
        srv.accept()[0].close()
        print("ACCEPTED", flush=True)
    except OSError:
        pass
"""


def test_sandboxes_of_a_run_do_not_reach_each_other(sandbox, routed, run_id, tmp_path):
    route, gw, token = routed(run_id)
    (tmp_path / "server").mkdir()
    req = make_request(tmp_path / "server", ["python3", "-c", SERVE], timeout_s=120,
                       labels={"harness.run": "modelnet-probe"}).model_copy(update={"model_network": route.network})
    served = []
    server = threading.Thread(target=lambda: served.append(sandbox.run(req)))
    server.start()
    addr = req.workspace / "addr"
    try:
        while not addr.exists() and server.is_alive():
            server.join(0.05)
        assert addr.exists(), req.log_path.read_text()
        seen = probe(sandbox, tmp_path / "client", route.network, gateway=[gw.url, token],
                     connect=[["neighbour", addr.read_text(), 8000]])
    finally:
        (req.workspace / "done").write_text("")
        server.join(60)
    assert served and served[0].exit_code == 0
    assert seen["gateway"] == "answer through the gateway"
    assert seen["neighbour"].startswith("closed"), seen["neighbour"]
    assert "ACCEPTED" not in req.log_path.read_text()
