"""Start `svs reward-server` for a test: a real process on 127.0.0.1, stopped after."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request

START_TIMEOUT_S = 60


@contextlib.contextmanager
def reward_server(*flags: str):
    """Yields the server's base URL (`http://127.0.0.1:PORT`); any free port is used."""
    code = "import sys; from svs.flows.cli import app; sys.argv[0] = 'svs'; app()"
    process = subprocess.Popen([sys.executable, "-c", code, "reward-server", "--host", "127.0.0.1",
                                "--port", "0", *flags], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    try:
        url = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while url is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].strip()
        if url is None:
            process.kill()
            raise AssertionError(f"svs reward-server did not start: {process.stderr.read()[-3000:]}")
        for _ in range(50):  # bounded: the socket is open once the line is printed
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
