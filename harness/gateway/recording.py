"""Recording model exchanges: one JSON line per exchange in the attempt's trace file,
large parts stored once by content hash in a blobs directory shared by the run.

The format is described in the package docstring (harness/gateway/__init__.py).
Writing happens on a thread of its own, so hashing and disk never delay a call.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import RecordError
from ..repo.runlog import parse_jsonl
from ..versioning import SCHEMA_VERSION, version_problem
from .types import ModelExchange

BLOB_MIN = 1024
"""Strings, list items and bodies of at least this many bytes go to the blobs dir."""
REDACTED = b"[redacted]"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def request_digest(body: bytes, parsed: Any = None) -> str:
    """What replay matches a request by: the hash of its canonical JSON (key order and
    spacing do not matter), or of its bytes when it is not JSON."""
    if parsed is None:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return "sha256:" + hashlib.sha256(body).hexdigest()
    return "sha256:" + hashlib.sha256(canonical(parsed)).hexdigest()


class BlobStore:
    """Content-addressed files: `<dir>/<hash[:2]>/<hash>` (sha256 hex). Thread-safe."""

    def __init__(self, root: Path, secrets: list[str] = ()) -> None:
        self.root = Path(root)
        self._secrets = [x.encode() for x in secrets if x]
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        data = scrub(data, self._secrets)
        h = hashlib.sha256(data).hexdigest()
        with self._lock:
            if h in self._known:
                return h
            self._known.add(h)
        path = self.root / h[:2] / h
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{h}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return h

    def get(self, h: str) -> bytes:
        return (self.root / h[:2] / h).read_bytes()


def hoist(node: Any, blobs: BlobStore, min_size: int = BLOB_MIN) -> Any:
    """`node` with every large string, and every large object or array inside an array
    (a message, a tool definition), replaced by `{"$blob": hash}`; the blob holds the
    part's canonical JSON. Identical parts (one system prompt sent by 300 agents, the
    earlier turns every request repeats) are stored once."""
    if isinstance(node, str):
        if len(node) * 4 >= min_size and len(data := canonical(node)) >= min_size:
            return {"$blob": blobs.put(data)}
        return node
    if isinstance(node, dict):
        if "$blob" in node:  # would read back as a marker: store it whole instead
            return {"$blob": blobs.put(canonical(node))}
        return {k: hoist(v, blobs, min_size) for k, v in node.items()}
    if isinstance(node, list):
        out = []
        for item in node:
            if isinstance(item, (dict, list)) and len(data := canonical(item)) >= min_size:
                out.append({"$blob": blobs.put(data)})
            else:
                out.append(hoist(item, blobs, min_size))
        return out
    return node


def expand(node: Any, blobs: BlobStore) -> Any:
    """The inverse of hoist."""
    if isinstance(node, dict):
        if set(node) == {"$blob"}:
            return json.loads(blobs.get(node["$blob"]))
        return {k: expand(v, blobs) for k, v in node.items()}
    if isinstance(node, list):
        return [expand(x, blobs) for x in node]
    return node


def store_content(data: bytes, blobs: BlobStore, min_size: int = BLOB_MIN) -> dict:
    """A body as `{"text": ...}` when small and UTF-8, else `{"blob": hash, "size": n}`."""
    if len(data) < min_size:
        try:
            return {"text": data.decode()}
        except UnicodeDecodeError:
            pass
    return {"blob": blobs.put(data), "size": len(data)}


def load_content(content: dict, blobs: BlobStore) -> bytes:
    if "text" in content:
        return content["text"].encode()
    return blobs.get(content["blob"])


def scrub(data: bytes, secrets: list[bytes]) -> bytes:
    for s in secrets:
        if s in data:
            data = data.replace(s, REDACTED)
    return data


class Recorder:
    """Appends exchanges to trace files from a writer thread. `record` never blocks
    on disk; `flush` waits until everything handed over is written."""

    def __init__(self, blobs: BlobStore, secrets: list[str], min_size: int = BLOB_MIN) -> None:
        self.blobs = blobs
        self.min_size = min_size
        self._secrets = [s.encode() for s in secrets if s]
        self._q: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="gateway-recorder", daemon=True)
        self._thread.start()

    def record(self, trace: Path, entry: dict, request_body: bytes, request_json: Any,
               response_body: bytes | None) -> None:
        self._q.put((trace, entry, request_body, request_json, response_body))

    def flush(self) -> None:
        self._q.join()

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()

    def _run(self) -> None:
        """Drain the queue in batches: one write per trace file per batch keeps the
        writer's share of the interpreter small while calls are in flight."""
        done = False
        while not done:
            items = [self._q.get()]
            while True:
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            lines: dict[Path, list[bytes]] = {}
            for item in items:
                if item is None:
                    done = True
                    continue
                try:
                    lines.setdefault(item[0], []).append(self._line(*item[1:]))
                except Exception as exc:  # a bad body must not stop the recording of others
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            for trace, batch in lines.items():
                try:
                    trace.parent.mkdir(parents=True, exist_ok=True)
                    with open(trace, "ab") as f:
                        f.write(b"".join(batch))
                except OSError as exc:  # a full disk must not take the gateway down
                    self.errors.append(f"{trace}: {exc}")
            for _ in items:
                self._q.task_done()

    def _line(self, entry: dict, body: bytes, parsed: Any, response: bytes | None) -> bytes:
        body = scrub(body, self._secrets)
        req = entry["request"]
        req["digest"] = request_digest(body, parsed)
        if parsed is not None:
            # Under min_size no part of the body can be large enough to go to a blob.
            req["body"] = hoist(parsed, self.blobs, self.min_size) if len(body) >= self.min_size else parsed
        else:
            req["content"] = store_content(body, self.blobs, self.min_size)
        if response is not None and entry.get("response") is not None:
            entry["response"]["content"] = store_content(scrub(response, self._secrets),
                                                         self.blobs, self.min_size)
        line = json.dumps({"schema_version": SCHEMA_VERSION, **entry}, ensure_ascii=False).encode()
        return scrub(line, self._secrets) + b"\n"


def read_exchanges(path: Path) -> list[ModelExchange]:
    """An attempt's trace as typed records, in call order. Raises RecordError for a
    line written by a newer harness or one that is not an exchange."""
    out = []
    for raw in read_trace(path):
        problem = version_problem(raw)
        if problem:
            raise RecordError(f"{path}: call {raw.get('seq')}: {problem}")
        try:
            out.append(ModelExchange.model_validate(raw))
        except ValidationError as exc:
            raise RecordError(f"{path}: call {raw.get('seq')}: not a model exchange: "
                              f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    return out


def read_trace(path: Path) -> list[dict]:
    """An attempt's exchanges in call order (by `seq`). A last line torn by a kill is skipped."""
    return sorted(parse_jsonl(Path(path).read_bytes()), key=lambda e: e["seq"])
