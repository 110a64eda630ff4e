"""Load generators on loopback.

* Closed loop (throughput): ``wrk`` with a Lua script that cycles through pre-signed requests
  read from a file; when wrk is missing, an asyncio closed-loop generator instead.
* Open loop (latency at a fixed rate): an asyncio generator on raw sockets that starts
  request *i* at ``t0 + i / rate`` whatever happened to the earlier ones, and measures each
  latency from that scheduled instant (no coordinated omission). wrk2 is not in Debian.
"""

from __future__ import annotations

import asyncio
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import percentile

__all__ = ["Req", "Result", "closed_loop", "open_loop", "percentile"]


@dataclass(frozen=True)
class Req:
    path: str
    headers: dict[str, str]
    body: bytes

    def raw(self, host: str) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class Result:
    mode: str
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    tool: str = ""

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, float | int | str]:
        lat = self.latencies_ms
        return {
            "tool": self.tool,
            "mode": self.mode,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(percentile(lat, 50), 2) if lat else -1,
            "p90_ms": round(percentile(lat, 90), 2) if lat else -1,
            "p99_ms": round(percentile(lat, 99), 2) if lat else -1,
            "max_ms": round(max(lat), 2) if lat else -1,
        }


# -- wrk (closed loop) ---------------------------------------------------------------------

_LUA = r"""
local reqs = {}
local i = 0
function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", args[2], {
      ["Content-Type"] = "application/json",
      ["telnyx-timestamp"] = ts,
      ["telnyx-signature-ed25519"] = sig,
    }, body)
  end
  f:close()
  -- each thread starts at a different offset so threads do not send the same bodies
  i = (tonumber(args[3]) or 0) * 1000003 % #reqs
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_closed(url: str, path: str, reqs: list[Req], seconds: int, connections: int) -> Result:
    """Run wrk (one thread: the server has the other core) through ``reqs`` in a cycle."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "reqs.tsv"
        with data.open("w") as f:
            for r in reqs:
                f.write(
                    f"{r.headers['telnyx-timestamp']}\t{r.headers['telnyx-signature-ed25519']}\t"
                    f"{r.body.decode()}\n"
                )
        script = Path(tmp) / "cycle.lua"
        script.write_text(_LUA)
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script),
                url,
                "--",
                str(data),
                path,
                "0",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    secs = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = int(non2xx.group(1)) if non2xx else 0
    sock = sum(int(g) for g in errs.groups()) if errs else 0
    res = Result("closed", sent=total, ok=total - bad, errors=bad + sock, seconds=secs)
    res.tool = f"wrk -t1 -c{connections}"
    for name in ("50%", "90%", "99%"):
        m = re.search(rf"\s{re.escape(name)}\s+([\d.]+)(us|ms|s)", out)
        if m:
            v = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            res.latencies_ms.append(v)  # only the quantiles wrk prints (closed loop)
    return res


# -- asyncio generators --------------------------------------------------------------------


async def _one(host: str, port: int, payload: bytes) -> bool:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        head = await reader.readuntil(b"\r\n")
        data = await reader.read()  # Connection: close
        del data
        return head.split()[1] == b"200"
    finally:
        writer.close()


async def _open_loop(
    host: str, port: int, payloads: list[bytes], rate: float, seconds: float, cap: int
) -> Result:
    res = Result("open", tool=f"asyncio open loop {rate:.0f}/s")
    sem = asyncio.Semaphore(cap)
    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    n = int(rate * seconds)

    async def fire(i: int, scheduled: float) -> None:
        async with sem:
            try:
                ok = await asyncio.wait_for(_one(host, port, payloads[i % len(payloads)]), 30)
            except Exception:
                ok = False
            res.latencies_ms.append((loop.time() - scheduled) * 1000)
            res.ok += ok
            res.errors += not ok

    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        res.sent += 1
        tasks.append(asyncio.create_task(fire(i, scheduled)))
    await asyncio.gather(*tasks)
    res.seconds = loop.time() - t0
    return res


async def _closed_loop(
    host: str, port: int, payloads: list[bytes], seconds: float, connections: int
) -> Result:
    res = Result("closed", tool=f"asyncio closed loop c={connections}")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    counter = iter(range(10**9))

    async def client() -> None:
        while loop.time() - t0 < seconds:
            i = next(counter)
            start = loop.time()
            try:
                ok = await _one(host, port, payloads[i % len(payloads)])
            except Exception:
                ok = False
            res.sent += 1
            res.ok += ok
            res.errors += not ok
            res.latencies_ms.append((loop.time() - start) * 1000)

    await asyncio.gather(*(client() for _ in range(connections)))
    res.seconds = loop.time() - t0
    return res


def open_loop(url: str, reqs: list[Req], rate: float, seconds: float, cap: int = 1024) -> Result:
    """Fixed-rate open loop on non-blocking sockets and ``selectors`` (much cheaper than
    asyncio streams, so the generator does not steal the server's CPU)."""
    host, port = url.split("//", 1)[1].split(":")
    payloads = [r.raw(f"{host}:{port}") for r in reqs]
    return _selector_open_loop(host, int(port), payloads, rate, seconds, cap)


def _selector_open_loop(
    host: str, port: int, payloads: list[bytes], rate: float, seconds: float, cap: int
) -> Result:
    res = Result("open", tool=f"selectors open loop {rate:.0f}/s")
    sel = selectors.DefaultSelector()
    n = int(rate * seconds)
    t0 = time.monotonic() + 0.05
    i = 0
    inflight = 0
    deadline_all = t0 + seconds + 10

    def finish(sock: socket.socket, state: dict[str, Any], ok: bool) -> None:
        nonlocal inflight
        sel.unregister(sock)
        sock.close()
        inflight -= 1
        res.latencies_ms.append((time.monotonic() - state["scheduled"]) * 1000)
        res.ok += ok
        res.errors += not ok

    while (i < n or inflight) and time.monotonic() < deadline_all:
        now = time.monotonic()
        while i < n and t0 + i / rate <= now and inflight < cap:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect_ex((host, port))
            state = {"scheduled": t0 + i / rate, "out": payloads[i % len(payloads)], "in": b""}
            sel.register(sock, selectors.EVENT_WRITE, state)
            i += 1
            inflight += 1
            res.sent += 1
        timeout = max(0.0, min(t0 + i / rate - time.monotonic(), 0.05)) if i < n else 0.05
        for key, events in sel.select(timeout):
            sock, state = key.fileobj, key.data  # type: ignore[assignment]
            try:
                if events & selectors.EVENT_WRITE:
                    sent = sock.send(state["out"])
                    state["out"] = state["out"][sent:]
                    if not state["out"]:
                        sel.modify(sock, selectors.EVENT_READ, state)
                else:
                    chunk = sock.recv(65536)
                    if chunk:
                        state["in"] += chunk
                    else:
                        finish(sock, state, state["in"][9:12] == b"200")
            except OSError:
                finish(sock, state, False)
    res.seconds = time.monotonic() - t0
    # Still unanswered 10 s after the last send: errors (their latency is a lower bound).
    for key in list(sel.get_map().values()):
        finish(key.fileobj, key.data, False)  # type: ignore[arg-type]
    sel.close()
    return res


def closed_loop(url: str, reqs: list[Req], seconds: float, connections: int) -> Result:
    if have_wrk():
        return wrk_closed(url, reqs[0].path, reqs, int(seconds), connections)
    host, port = url.split("//", 1)[1].split(":")
    payloads = [r.raw(f"{host}:{port}") for r in reqs]
    return asyncio.run(_closed_loop(host, int(port), payloads, seconds, connections))


def now() -> float:
    return time.time()
