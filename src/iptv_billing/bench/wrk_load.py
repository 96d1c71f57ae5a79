"""The load of ``bench authorize`` from wrk (Debian's ``wrk``), when it is installed: a C load
generator leaves the cores to the server, where the Python client takes one of them.

One wrk per server port, ``connections`` split between them; a Lua script
(``authorize_wrk.lua``) replays the planned forms and counts what was sent per category and
what came back per status and ``X-Deny-Reason``, so every answer is still checked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("authorize_wrk.lua")
# What each category must be answered: status and deny reason ("" when allowed).
ANSWERS = {
    "valid": "200:",
    "over_limit": "403:over_connection_limit",
    "expired": "403:expired",
    "unknown": "403:unknown_credential",
}


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    ports: list[int], path: str, planned: list[tuple[str, bytes]], seconds: int, connections: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        bodies = Path(tmp) / "bodies.tsv"
        bodies.write_text("".join(f"{c}\t{b.decode()}\n" for c, b in planned), encoding="ascii")
        each = max(1, connections // len(ports))
        processes = [
            subprocess.Popen(
                [
                    wrk_binary() or "wrk",
                    "-t1",
                    f"-c{each}",
                    f"-d{seconds}s",
                    "-s",
                    str(SCRIPT),
                    f"http://127.0.0.1:{port}{path}",
                    "--",
                    str(bodies),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for port in ports
        ]
        outputs = [p.communicate(timeout=seconds + 120)[0] for p in processes]
    return _merge([_figures(out) for out in outputs])


def _figures(output: str) -> dict[str, Any]:
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            figures: dict[str, Any] = json.loads(line)
            return figures
    raise RuntimeError(f"wrk printed no figures:\n{output[-2000:]}")


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    sent: Counter[str] = Counter()
    received: Counter[str] = Counter()
    for part in parts:
        sent.update(part["sent"])
        received.update(part["received"])
    # A wrong answer lands in another category's bucket (or none): more answers of a kind
    # than requests that deserve it. (Fewer is only what was in flight when wrk stopped.)
    wrong = sum(max(0, received[a] - sent[c]) for c, a in ANSWERS.items())
    unexpected = sum(n for key, n in received.items() if key not in ANSWERS.values())
    requests = sum(p["requests"] for p in parts)
    seconds = max(p["duration_us"] for p in parts) / 1e6
    return {
        "decisions": requests,
        "seconds": round(seconds, 2),
        "decisions_per_s": round(requests / seconds, 1) if seconds else None,
        # wrk's percentiles per process; with several servers the worst of them.
        "p50_ms": round(max(p["p50_us"] for p in parts) / 1000, 2),
        "p99_ms": round(max(p["p99_us"] for p in parts) / 1000, 2),
        "max_ms": round(max(p["max_us"] for p in parts) / 1000, 2),
        "mix": dict(sent),
        "answers": dict(received),
        "wrong_answers": wrong + unexpected,
        "socket_errors": sum(p["socket_errors"] for p in parts),
    }
