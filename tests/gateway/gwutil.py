"""Helpers for the gateway tests: plain HTTP clients, request bodies, plan entries."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-fedcba9876543210"
ENV = {"OPENAI_KEY": OPENAI_KEY, "ANTHROPIC_KEY": ANTHROPIC_KEY}


def upstream_entry(name: str, url: str, protocol: str = "openai", models=None, **over) -> dict:
    return {"name": name, "protocol": protocol, "base_url": f"{url}/v1",
            "api_key_env": "OPENAI_KEY" if protocol == "openai" else "ANTHROPIC_KEY",
            "models": models or (["gpt-*"] if protocol == "openai" else ["claude-*"]),
            "input_price_per_mtok": 1.0, "output_price_per_mtok": 10.0,
            "retries": 2, "backoff_s": 0.01, "max_backoff_s": 5.0, **over}


def chat(model="gpt-4o", stream=False, content="hi", **extra) -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}], **extra}


def messages(model="claude-x", stream=False, content="hi", **extra) -> dict:
    return {"model": model, "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": content}], **extra}


def responses(model="gpt-4o", stream=False, content="hi", **extra) -> dict:
    return {"model": model, "stream": stream, "input": content, **extra}


def auth(token: str, protocol: str = "openai") -> dict:
    if protocol == "anthropic":
        return {"x-api-key": token, "anthropic-version": "2023-06-01"}
    return {"authorization": f"Bearer {token}"}


def post(url: str, path: str, body, headers: dict | None = None, timeout: float = 30):
    """(status, headers, body bytes) of a real HTTP POST."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get(url: str, path: str, headers: dict | None = None):
    req = urllib.request.Request(url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def open_stream(url: str, path: str, body: dict, headers: dict):
    """A streaming POST whose answer is read line by line as it arrives."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", path, body=json.dumps(body).encode(),
                 headers={"content-type": "application/json", **headers})
    return conn, conn.getresponse()


def read_event(resp) -> list[bytes]:
    """The lines of the next SSE event (up to its blank line); [] at the end."""
    lines = []
    while True:
        line = resp.readline()
        if not line:
            return lines
        if line in (b"\n", b"\r\n"):
            if lines:
                return lines
            continue
        lines.append(line.rstrip(b"\r\n"))


def closed_port() -> int:
    """A loopback port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
