"""A bounded HTTP load client for servers on this machine: a fixed list of requests sent over a fixed
number of keep-alive connections, each timed from its first byte sent to its last byte read.

Written on asyncio streams rather than an HTTP library so that the client costs little CPU beside the
server it measures on the same two cores (and costs the same whichever server it measures).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np


@dataclass(frozen=True)
class Answer:
    status: int  # 0: the connection failed before an answer came
    seconds: float
    body: bytes


@dataclass(frozen=True)
class Load:
    answers: tuple[Answer, ...]
    seconds: float  # wall time of the whole run

    @property
    def ok(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 200]

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile([a.seconds for a in self.ok], q) * 1000)

    @property
    def per_second(self) -> float:
        return len(self.ok) / self.seconds


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked answers are not supported by this client")
    return status, await reader.readexactly(length)


async def _connection(host: str, port: int, path: str, queue: asyncio.Queue, answers: list[Answer]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n".encode()
    try:
        while not queue.empty():
            body = queue.get_nowait()
            began = time.perf_counter()
            try:
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                status, answer = await _read_answer(reader)
            except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
                answers.append(Answer(0, time.perf_counter() - began, b""))
                return  # the server went away: this connection is done
            answers.append(Answer(status, time.perf_counter() - began, answer))
    finally:
        writer.close()


async def _run(url: str, bodies: list[bytes], concurrency: int) -> Load:
    parts = urlsplit(url)
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    answers: list[Answer] = []
    began = time.perf_counter()
    await asyncio.gather(*(_connection(parts.hostname, parts.port, parts.path or "/", queue, answers) for _ in range(concurrency)),
                         return_exceptions=True)
    return Load(tuple(answers), time.perf_counter() - began)


def run(url: str, bodies: list[bytes], concurrency: int) -> Load:
    """POST every body to ``url`` over ``concurrency`` connections; returns every answer as it came."""
    return asyncio.run(_run(url, bodies, concurrency))
