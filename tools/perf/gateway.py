"""`scripts/perf gateway`: what the model gateway adds to a call.

The scripted upstream and the gateway each run in a process of their own (the
gateway as it would in the harness: on its own thread, recording every exchange);
the callers are an aiohttp client in this process. Each figure is measured against
calling the upstream directly in the same run, rounds interleaved:
- added latency per call, p50 and p99, at 1, 50 and 300 concurrent callers;
- non-streaming calls per second through the gateway (and directly);
- the gateway process's memory (RSS) idle and with 300 streams open through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

_UPSTREAM = r"""
import sys
from harness.gateway import ScriptedUpstream
up = ScriptedUpstream()
print(up.start(), flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "hold":
        up.hold_streams()
    elif cmd == "release":
        up.release()
    print(up.first_sent, flush=True)
up.stop()
"""

_GATEWAY = r"""
import json, sys
from pathlib import Path
from harness.config import load_model_config
from harness.gateway import Gateway
upstream, n_tokens, tmp = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
cfg = load_model_config({"upstream": [{"name": "up", "protocol": "openai", "base_url": upstream + "/v1",
                                      "api_key_env": "PERF_KEY", "models": ["*"], "max_concurrency": 1000,
                                      "input_price_per_mtok": 1, "output_price_per_mtok": 2}]})
gw = Gateway(cfg, "perf", blobs_dir=tmp / "blobs", environ={"PERF_KEY": "sk-perf"})
url = gw.start()
tokens = [gw.issue_token("perf", f"t{i}", 1, trace_dir=tmp / f"t{i}") for i in range(n_tokens)]
print(json.dumps({"url": url, "tokens": tokens}), flush=True)

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

for line in sys.stdin:
    print(json.dumps({"rss_mb": rss_mb(), "stats": gw.upstream_stats()}), flush=True)
gw.stop()
"""

BODY = json.dumps({"model": "gpt-perf", "messages": [{"role": "system", "content": "You are terse."},
                                                    {"role": "user", "content": "say hi"}]}).encode()


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=os.environ.copy())


def _ask(proc: subprocess.Popen, line: str = "") -> str:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline()


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


async def _round(session, url: str, tokens: list[str], concurrency: int, per_caller: int) -> list[float]:
    """`concurrency` callers, each making `per_caller` calls one after another; latencies in ms."""
    lat: list[float] = []

    async def caller(i: int) -> None:
        headers = {"authorization": f"Bearer {tokens[i % len(tokens)]}", "content-type": "application/json"}
        for _ in range(per_caller):
            t0 = time.perf_counter()
            async with session.post(f"{url}/v1/chat/completions", data=BODY, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            lat.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return lat


async def _latency(direct: str, gw: str, tokens: list[str], levels, calls: int) -> list[dict]:
    import aiohttp

    rows = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for url in (direct, gw):  # warm both paths up
            await _round(session, url, tokens, 10, 5)
        for c in levels:
            per = max(3, calls // c)
            d_lat: list[float] = []
            g_lat: list[float] = []
            for _ in range(3):  # interleaved rounds: both paths see the same machine
                d_lat += await _round(session, direct, ["sk-perf"], c, per)
                g_lat += await _round(session, gw, tokens, c, per)
            row = {"concurrency": c, "calls": len(g_lat)}
            for p in (50, 99):
                d, g = _pct(d_lat, p), _pct(g_lat, p)
                row.update({f"direct_p{p}_ms": d, f"gateway_p{p}_ms": g, f"added_p{p}_ms": g - d,
                            f"ratio_p{p}": g / d})
            rows.append(row)
    return rows


async def _throughput(direct: str, gw: str, tokens: list[str], n: int, concurrency: int = 50) -> dict:
    import aiohttp

    out = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for name, url, toks in (("direct", direct, ["sk-perf"]), ("gateway", gw, tokens)):
            t0 = time.perf_counter()
            await _round(session, url, toks, concurrency, n // concurrency)
            out[f"{name}_calls_per_s"] = (n // concurrency) * concurrency / (time.perf_counter() - t0)
    return out


async def _open_streams(gw_url: str, tokens: list[str], n: int, gw_proc, up_proc) -> dict:
    import aiohttp

    body = json.loads(BODY)
    body["stream"] = True
    idle = json.loads(_ask(gw_proc))["rss_mb"]
    _ask(up_proc, "hold")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        resps = []
        for i in range(n):
            r = await session.post(f"{gw_url}/v1/chat/completions", json=body,
                                   headers={"authorization": f"Bearer {tokens[i % len(tokens)]}"})
            await r.content.readline()  # the first event is through: the stream is open end to end
            resps.append(r)
        held = json.loads(_ask(gw_proc))
        _ask(up_proc, "release")
        for r in resps:
            await r.read()
            r.release()
    return {"streams": n, "rss_idle_mb": idle, "rss_open_mb": held["rss_mb"],
            "in_flight": held["stats"]["up"]["in_flight"]}


def bench_gateway(levels=(1, 50, 300), calls: int = 600, throughput_calls: int = 5000,
                  streams: int = 300) -> dict:
    with tempfile.TemporaryDirectory(prefix="harness-perf-gw-") as tmp:
        up = _child(_UPSTREAM)
        direct = up.stdout.readline().strip()
        gwp = _child(_GATEWAY, direct, str(max(levels)), tmp)
        info = json.loads(gwp.stdout.readline())
        fresh = json.loads(_ask(gwp))["rss_mb"]
        try:
            rows = asyncio.run(_latency(direct, info["url"], info["tokens"], levels, calls))
            tput = asyncio.run(_throughput(direct, info["url"], info["tokens"], throughput_calls))
            mem = asyncio.run(_open_streams(info["url"], info["tokens"], streams, gwp, up))
            mem["rss_fresh_mb"] = fresh
        finally:
            for p in (gwp, up):
                p.stdin.close()
                p.wait(timeout=30)
    print(f"gateway: {os.cpu_count()} cores; upstream, gateway and callers in three processes")
    print(f"{'callers':>8} {'calls':>6} {'direct p50':>11} {'gw p50':>8} {'added':>7} {'ratio':>6} "
          f"{'direct p99':>11} {'gw p99':>8} {'added':>7} {'ratio':>6}   (ms)")
    for r in rows:
        print(f"{r['concurrency']:>8} {r['calls']:>6} {r['direct_p50_ms']:>11.2f} {r['gateway_p50_ms']:>8.2f} "
              f"{r['added_p50_ms']:>7.2f} {r['ratio_p50']:>5.2f}x {r['direct_p99_ms']:>11.2f} "
              f"{r['gateway_p99_ms']:>8.2f} {r['added_p99_ms']:>7.2f} {r['ratio_p99']:>5.2f}x")
    print(f"non-streaming calls/s at 50 callers: gateway {tput['gateway_calls_per_s']:.0f}, direct "
          f"{tput['direct_calls_per_s']:.0f} ({tput['gateway_calls_per_s'] / tput['direct_calls_per_s']:.2f}x)")
    print(f"gateway process RSS: {mem['rss_fresh_mb']:.0f} MB started, {mem['rss_idle_mb']:.0f} MB after the "
          f"runs above, {mem['rss_open_mb']:.0f} MB with {mem['streams']} streams open "
          f"({mem['in_flight']} in flight at the upstream)")
    return {"latency": rows, "throughput": tput, "memory": mem}
