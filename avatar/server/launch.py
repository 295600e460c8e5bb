"""Run `avatar serve` in a child process (for benchmarks and tests that need a real server on a real port)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from avatar.errors import AvatarError

_URL = re.compile(r"on (http://\S+)")


@contextmanager
def serve_in_subprocess(*args: str, timeout_s: float = 120.0, env: dict[str, str] | None = None
                        ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start `avatar serve --port 0 ARGS...`; yields (its URL, the process); stops it on exit.

    The child's later output is drained in the background (so it never blocks on a full pipe)
    and kept in `process.output_lines`.
    """
    command = [sys.executable, "-m", "avatar", "serve", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    lines: list[str] = []
    process.output_lines = lines
    timer = threading.Timer(timeout_s, process.kill)
    timer.start()
    try:
        url = None
        for line in process.stdout:
            lines.append(line.rstrip())
            match = _URL.search(line)
            if match:
                url = match.group(1)
                break
        timer.cancel()
        if url is None:
            raise AvatarError("avatar serve did not start: " + " | ".join(lines[-5:]))
        threading.Thread(target=lambda: lines.extend(l.rstrip() for l in process.stdout), daemon=True).start()
        yield url, process
    finally:
        timer.cancel()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
