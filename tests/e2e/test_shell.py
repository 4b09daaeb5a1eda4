"""``make shell`` still works: the ``rasa shell`` command line of scripts/run.sh, with the action
server of the e2e stack, driven through a pseudo-terminal for one exchange, then ``/stop``.

The command is read from scripts/run.sh (the script ``make shell`` runs), so the test follows it;
the environment is the stack's (the same variables scripts/env.sh and run.sh export: the action
server's URL and token for endpoints.yml, the tracker and lock stores), with a tracker database of
its own. ``rasa shell`` reads its input with prompt_toolkit, which needs a terminal: hence the pty
(the stdlib's; pexpect is not a dependency).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
import yaml

from tests.stack import ARTIFACTS, ROOT, Stack, free_port

pytestmark = pytest.mark.e2e

# Rasa loads the model (TensorFlow) before its first prompt: as long as tests/stack.py gives `rasa run`,
# since on a small machine the stack's Rasa server may still be busy.
MODEL_LOAD_SECONDS = 240
REPLY_SECONDS = 120
EXIT_SECONDS = 60
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


def shell_command(port: int) -> list[str]:
    """The ``rasa shell`` command of ``scripts/run.sh --shell`` (what ``make shell`` runs), with ``port``."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = re.search(r"^shell:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target and "scripts/run.sh --shell" in target.group(1), "make shell no longer runs scripts/run.sh --shell"
    script = (ROOT / "scripts" / "run.sh").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in script.splitlines() if re.match(r"\s*\S*rasa shell\b", line)]
    assert len(lines) == 1, f"expected one `rasa shell` command in scripts/run.sh, found {lines}"
    # $MODEL comes from scripts/pipeline.sh: models/tandem.tar.gz for the default pipeline.
    assert "MODEL=models/$MODEL_NAME.tar.gz" in (ROOT / "scripts" / "pipeline.sh").read_text(encoding="utf-8")
    known = {"$RASA_PORT": str(port), "$MODEL": "models/tandem.tar.gz"}
    words = shlex.split(lines[0])
    for name, value in known.items():
        words = [word.replace(name, value) for word in words]
    assert all("$" not in word for word in words), f"an unknown variable in {words}"
    return words


def greetings() -> list[str]:
    """The texts of domain.yml's ``utter_greet`` variants, whitespace-normalised."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    texts = [" ".join(variant["text"].split()) for variant in domain["responses"]["utter_greet"]]
    assert texts
    return texts


class Terminal:
    """A process on a pseudo-terminal: what it printed (escape sequences removed), and typing."""

    def __init__(self, command: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self._master, slave = pty.openpty()
        # A real size: prompt_toolkit lays the prompt out in it.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        self.process = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group: stopped as one below
            close_fds=True,
        )
        os.close(slave)
        self._raw = bytearray()
        self._log = log
        self._closed = False

    @property
    def text(self) -> str:
        return ANSI.sub("", self._raw.decode("utf-8", "replace")).replace("\r", "")

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False at end of output."""
        if self._closed:
            return False
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: the other side closed (the process exited)
            chunk = b""
        if not chunk:
            self._closed = True
            return False
        self._raw.extend(chunk)
        self._log.write_bytes(bytes(self._raw))
        return True

    def expect(self, pattern: re.Pattern[str], seconds: float, *, start: int = 0) -> re.Match[str]:
        """Wait for ``pattern`` in the output from character ``start`` on (whitespace collapsed)."""
        deadline = time.monotonic() + seconds
        while True:
            flat = " ".join(self.text[start:].split())
            match = pattern.search(flat)
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern.pattern!r} within {seconds} s; output:\n{self.text[-4000:]}")
            if not self._read(0.5) and self.process.poll() is not None:
                raise AssertionError(f"exited ({self.process.returncode}) first; output:\n{self.text[-4000:]}")

    def send_line(self, line: str) -> None:
        """Type ``line`` and press Enter."""
        os.write(self._master, line.encode("utf-8") + b"\r")

    def wait(self, seconds: float) -> int | None:
        """The exit code within ``seconds`` (reading on, so the process never blocks on a full pty)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return self.process.returncode
            self._read(0.2)
        return self.process.poll()

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        os.close(self._master)


def test_make_shell_holds_one_exchange_and_stops(stack: Stack, tmp_path: Path) -> None:
    env = {
        **stack.env,  # the action server's URL and token (endpoints.yml), lock store, PYTHONPATH...
        "TRACKER_DB_URL": f"sqlite:///{tmp_path / 'shell-tracker.db'}",  # not the stack's Rasa's
        "TERM": os.environ.get("TERM") or "xterm",
    }
    terminal = Terminal(shell_command(free_port()), env=env, cwd=ROOT, log=ARTIFACTS / "rasa-shell.log")
    try:
        terminal.expect(re.compile(r"Bot loaded\. Type a message and press enter"), MODEL_LOAD_SECONDS)
        terminal.expect(re.compile(r"Your input ->"), 30)
        asked = len(terminal.text)
        terminal.send_line("hello")
        replies = "|".join(re.escape(text) for text in greetings())
        terminal.expect(re.compile(replies), REPLY_SECONDS, start=asked)
        terminal.expect(re.compile(r"Your input ->"), 30, start=asked)  # ready for the next message
        terminal.send_line("/stop")
        code = terminal.wait(EXIT_SECONDS)
        assert code is not None, f"rasa shell still running {EXIT_SECONDS} s after /stop:\n{terminal.text[-4000:]}"
        assert code == 0, terminal.text[-4000:]
        assert "Traceback" not in terminal.text, terminal.text[-4000:]
    finally:
        terminal.close()
