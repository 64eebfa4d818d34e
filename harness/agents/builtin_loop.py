"""The built-in agent's loop: chat completions with one `bash` tool, until the model
submits, answers without a tool call, runs out of turns, or its model refuses.

This file runs inside the sandbox with the image's python3: it imports the standard
library only (never `harness`). The agent copies it into the attempt's harness dir
and runs it in the worktree. It reads the task from $HARNESS_TASK_FILE (its prompt,
notes, write scope and this agent's settings under "agent") and reaches its model
through the run's gateway ($OPENAI_BASE_URL, with the attempt's token as
$OPENAI_API_KEY).

What it prints on stdout, one line each:
- `::harness-step:: bash: <command>` before each tool call (the harness counts steps,
  shows them, stops the attempt past max_steps, and sees the attempt is alive);
- `::harness-trajectory:: <json>` for each message, tool result and the end; the agent
  gathers these into the attempt's trajectory.jsonl (the sandbox may mount the harness
  dir read-only, so the loop does not write there itself).

How it ends: exit 0 when the model submitted (a command printed a line
`HARNESS_SUBMIT`) or gave a final answer; otherwise one of the EXIT_* codes below
and one line on stderr starting with `harness-builtin:`. Never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

STEP_MARK = "::harness-step::"
TRAJECTORY_MARK = "::harness-trajectory::"
ERROR_MARK = "harness-builtin:"
SUBMIT = "HARNESS_SUBMIT"

EXIT_DONE = 0
EXIT_USAGE = 2
EXIT_MAX_TURNS = 3
EXIT_MALFORMED = 4
EXIT_MODEL_ERROR = 5
EXIT_CONTEXT_LENGTH = 6
EXIT_REFUSED = 7
EXIT_INTERNAL = 8

CALL_TIMEOUT_S = 3600.0
"""urllib's limit on one model call; the gateway's own per-call limit comes first."""

SYSTEM_PROMPT = f"""You are a coding agent working in a git checkout: the current directory.
You have one tool, `bash`: it runs a shell command there and returns its output (stdout and
stderr) and exit code. Each call runs in a fresh shell (cd and variables do not carry over),
has a time limit, and gets no input: do not start interactive programs. Long output is cut.
Work in small steps: look, edit, check. When the task is done, run `echo {SUBMIT}` as a
command of its own. Do not commit: your changes are committed for you."""

TOOLS = [{"type": "function", "function": {
    "name": "bash",
    "description": "Run a shell command in the repository; returns its exit code and output.",
    "parameters": {"type": "object", "properties": {"command": {"type": "string",
                                                                "description": "The command line."}},
                   "required": ["command"]}}}]


class Stop(Exception):
    """Ends the loop: an exit code and the one line that says why."""

    def __init__(self, code: int, status: str, line: str) -> None:
        super().__init__(line)
        self.code, self.status, self.line = code, status, line


def emit(event: dict) -> None:
    print(TRAJECTORY_MARK + " " + json.dumps(event, ensure_ascii=False), flush=True)


def one_line(text: str, n: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= n else flat[:n]


# --- the task ------------------------------------------------------------------------


def load_task() -> dict:
    path = os.environ.get("HARNESS_TASK_FILE")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise Stop(EXIT_USAGE, "usage", f"builtin agent: cannot read the task file {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def first_message(task: dict) -> str:
    prompt = task.get("prompt") or os.environ.get("HARNESS_PROMPT", "")
    if not prompt.strip():
        raise Stop(EXIT_USAGE, "usage", "builtin agent: the task has no prompt")
    parts = [prompt.strip()]
    if task.get("notes"):
        parts.append("Notes:\n" + "\n".join(f"- {n}" for n in task["notes"]))
    if task.get("context_files"):
        hdir = os.environ.get("HARNESS_DIR", "")
        parts.append("Context files:\n" + "\n".join(f"- {hdir}/context/{f}" for f in task["context_files"]))
    if task.get("write_scope"):
        parts.append("Change only paths matching: " + ", ".join(task["write_scope"]))
    return "\n\n".join(parts)


# --- the model -----------------------------------------------------------------------


def _error_text(raw: bytes) -> str:
    try:
        err = json.loads(raw).get("error")
        text = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        text = None
    return one_line(text or raw.decode("utf-8", "replace") or "no body", 200)


def refusal(status: int, raw: bytes) -> Stop:
    """The Stop for an HTTP error from the gateway."""
    text = _error_text(raw)
    low = raw.decode("utf-8", "replace").lower()
    if status == 400 and ("context_length_exceeded" in low or "context length" in low
                          or "maximum context" in low or "context window" in low):
        return Stop(EXIT_CONTEXT_LENGTH, "context_length", f"model refused: context length (HTTP 400: {text})")
    if status == 402:
        return Stop(EXIT_REFUSED, "over_budget", f"model refused: over budget (HTTP 402: {text})")
    if status in (401, 403):
        return Stop(EXIT_REFUSED, "unauthorized", f"model refused: not authorized (HTTP {status}: {text})")
    return Stop(EXIT_MODEL_ERROR, "http_error", f"model error: HTTP {status}: {text}")


def ask(base: str, key: str, body: dict) -> dict:
    """The assistant message of one chat completion. Raises Stop."""
    req = urllib.request.Request(base.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(),
                                 method="POST", headers={"content-type": "application/json",
                                                         "authorization": "Bearer " + key})
    try:
        with urllib.request.urlopen(req, timeout=CALL_TIMEOUT_S) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        try:
            raw = exc.read()
        except OSError:
            raw = b""
        raise refusal(exc.code, raw) from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise Stop(EXIT_MODEL_ERROR, "unreachable", f"model error: cannot reach the model: {one_line(why, 200)}") \
            from None
    try:
        message = json.loads(raw)["choices"][0]["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise Stop(EXIT_MODEL_ERROR, "bad_response",
                   f"model error: malformed response ({type(exc).__name__}: {one_line(exc, 80)}): "
                   f"{one_line(raw.decode('utf-8', 'replace'), 120)}") from None
    return message


def commands(message: dict) -> list[tuple[str, str]]:
    """(call id, command) of each tool call, all checked before any runs. Raises Stop."""
    out = []
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise Stop(EXIT_MALFORMED, "malformed_tool_call", "model error: malformed tool call: tool_calls is not a list")
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise Stop(EXIT_MALFORMED, "malformed_tool_call", f"model error: malformed tool call #{i}: no function")
        name = fn.get("name")
        if name != "bash":
            raise Stop(EXIT_MALFORMED, "malformed_tool_call",
                       f"model error: malformed tool call: unknown tool {one_line(name, 60)!r} (only bash is offered)")
        raw = fn.get("arguments")
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise Stop(EXIT_MALFORMED, "malformed_tool_call",
                       f"model error: malformed tool call: bash arguments are not JSON ({exc}): "
                       f"{one_line(raw, 80)!r}") from None
        if not isinstance(args, dict) or not isinstance(args.get("command"), str):
            raise Stop(EXIT_MALFORMED, "malformed_tool_call",
                       "model error: malformed tool call: bash needs a string 'command', got "
                       f"{one_line(json.dumps(args), 80)}")
        out.append((str(call.get("id") or f"call_{i}"), args["command"]))
    return out


# --- the tool ------------------------------------------------------------------------


def run_bash(command: str, timeout_s: float, limit: int) -> dict:
    """Run one command in the current directory, in its own process group; past the
    time limit the group is killed. Output goes to a temporary file (never all in
    memory) and comes back cut to `limit` bytes: its head and tail."""
    shell = shutil.which("bash") or "sh"
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen([shell, "-c", command], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            return {"exit_code": None, "timed_out": False, "output": f"cannot start {shell}: {exc}", "bytes": 0}
        timed_out = False
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
            code = None
        size = out.seek(0, os.SEEK_END)
        out.seek(0)
        if size <= limit:
            data = out.read()
        else:
            head = out.read(limit // 2)
            out.seek(size - (limit - limit // 2))
            data = head + f"\n[... {size - limit} bytes cut ...]\n".encode() + out.read()
    return {"exit_code": code, "timed_out": timed_out, "output": data.decode("utf-8", "replace"), "bytes": size}


def observation(result: dict, timeout_s: float) -> str:
    if result["timed_out"]:
        head = f"timed out after {timeout_s:g}s: the command and what it started were killed"
    else:
        head = f"exit code: {result['exit_code']}"
    return head + "\n" + result["output"]


def submitted(output: str) -> bool:
    return any(line.strip() == SUBMIT for line in output.splitlines())


# --- the loop ------------------------------------------------------------------------


def loop() -> Stop:
    task = load_task()
    cfg = task.get("agent") if isinstance(task.get("agent"), dict) else {}
    if not os.environ.get("HARNESS_MODEL_URL") or not os.environ.get("OPENAI_BASE_URL"):
        raise Stop(EXIT_USAGE, "usage", "builtin agent: no model gateway (the plan needs a [model] table)")
    model = cfg.get("model") or os.environ.get("HARNESS_MODEL")
    if not model:
        raise Stop(EXIT_USAGE, "usage", "builtin agent: no model (set the agent's model or [task.model] model)")
    max_turns = int(cfg.get("max_turns") or 50)
    timeout_s = float(cfg.get("bash_timeout_s") or 120.0)
    limit = int(cfg.get("max_output_bytes") or 10_000)
    base, key = os.environ["OPENAI_BASE_URL"], os.environ.get("OPENAI_API_KEY", "")
    messages = [{"role": "system", "content": cfg.get("system_prompt") or SYSTEM_PROMPT},
                {"role": "user", "content": first_message(task)}]
    emit({"event": "start", "model": model, "max_turns": max_turns, "bash_timeout_s": timeout_s,
          "max_output_bytes": limit})
    for m in messages:
        emit({"event": "message", "turn": 0, "message": m})
    for turn in range(1, max_turns + 1):
        message = ask(base, key, {"model": model, "messages": messages, "tools": TOOLS})
        message = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls") and v is not None}
        message["role"] = "assistant"
        emit({"event": "message", "turn": turn, "message": message})
        calls = commands(message)
        if not calls:
            return Stop(EXIT_DONE, "answered", "the model answered without a tool call")
        messages.append(message)
        for call_id, command in calls:
            print(f"{STEP_MARK} bash: {one_line(command, 80)}", flush=True)
            result = run_bash(command, timeout_s, limit)
            reply = {"role": "tool", "tool_call_id": call_id, "content": observation(result, timeout_s)}
            messages.append(reply)
            emit({"event": "message", "turn": turn, "message": reply, "command": command,
                  "exit_code": result["exit_code"], "timed_out": result["timed_out"],
                  "output_bytes": result["bytes"]})
            if submitted(result["output"]):
                return Stop(EXIT_DONE, "submitted", "the model submitted")
    raise Stop(EXIT_MAX_TURNS, "max_turns", f"max turns reached: {max_turns} model calls without a submission")


def main() -> int:
    try:
        end = loop()
    except Stop as stop:
        end = stop
    except Exception as exc:  # a bug here: one line, never a traceback in the attempt's output
        end = Stop(EXIT_INTERNAL, "internal_error", f"builtin agent: internal error: {type(exc).__name__}: "
                                                    f"{one_line(exc, 200)}")
    emit({"event": "end", "status": end.status, "exit": end.code, "detail": end.line})
    if end.code != EXIT_DONE:
        print(f"{ERROR_MARK} {end.line}", file=sys.stderr, flush=True)
    return end.code


if __name__ == "__main__":
    sys.exit(main())
