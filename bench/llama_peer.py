"""llama.cpp's ``llama-server`` as the peer of the generation bench: find, convert, start, stream.

Nothing of llama.cpp is vendored here. The binary comes from ``LLAMA_SERVER`` or PATH (or
``<llama.cpp>/build/bin``); the converter is ``convert_hf_to_gguf.py`` of a llama.cpp source
tree named by ``--llama-cpp`` or ``LLAMA_CPP``. Building both is in docs/performance.md.

The converter does not recognise the bundled tokenizer's pre-tokenizer (byte-level BPE with
GPT-2's split regex, which llama.cpp calls ``gpt-2``): it hashes the tokens of a probe text
and knows only published models' hashes. :func:`convert` runs the converter unchanged in a
child process with one function wrapped: an unrecognised hash becomes ``gpt-2`` instead of
an error. Every failure is raised as :class:`PeerError` with the reason, for the bench to print.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

CONVERT_WRAPPER = r"""
import runpy, sys
from pathlib import Path
script = Path(sys.argv[1])
sys.argv = [str(script), *sys.argv[2:]]
sys.path.insert(0, str(script.parent))
import conversion.base as base
original = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return original(self, tokenizer)
    except NotImplementedError:  # unknown hash: byte-level BPE with GPT-2's split regex
        return "gpt-2"
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
runpy.run_path(str(script), run_name="__main__")
"""


class PeerError(Exception):
    """Why the peer cannot run (missing binary, failed conversion, server did not start)."""


def find_server(llama_cpp: Path | None) -> Path:
    candidates = [os.environ.get("LLAMA_SERVER"), shutil.which("llama-server")]
    if llama_cpp:
        candidates.append(str(llama_cpp / "build" / "bin" / "llama-server"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise PeerError("llama-server not found: set LLAMA_SERVER, put it on PATH, or pass --llama-cpp "
                    "(building it: docs/performance.md)")


def find_converter(llama_cpp: Path | None) -> Path:
    if llama_cpp is None:
        raise PeerError("no llama.cpp source tree for convert_hf_to_gguf.py: pass --llama-cpp or set LLAMA_CPP")
    script = llama_cpp / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise PeerError(f"{script} not found")
    return script


def convert(model_dir: Path, out: Path, outtype: str, llama_cpp: Path | None) -> Path:
    """``model_dir`` (Hugging Face format) -> ``out`` (GGUF, ``f32`` or ``q8_0``)."""
    script = find_converter(llama_cpp)
    wrapper = out.parent / "convert_wrapper.py"
    wrapper.write_text(CONVERT_WRAPPER, encoding="utf-8")
    done = subprocess.run([sys.executable, str(wrapper), str(script), str(model_dir), "--outtype", outtype, "--outfile", str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PeerError(f"convert_hf_to_gguf.py failed on {model_dir} ({outtype}): {' | '.join(tail)}")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the bench exits, however it exits (Linux prctl)."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LlamaServer:
    """One ``llama-server`` child process serving ``gguf`` with ``slots`` parallel sequences."""

    def __init__(self, binary: Path, gguf: Path, *, slots: int, threads: int, slot_context: int, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port), "-t", str(threads),
                   "-tb", str(threads), "-np", str(slots), "-c", str(slots * slot_context), "--no-webui"]
        self.command = " ".join(command)
        self._handle = log.open("w")
        self.process = subprocess.Popen(command, stdout=self._handle, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def wait_ready(self, within: float = 120.0) -> None:
        import httpx

        give_up = time.monotonic() + within
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise PeerError(f"llama-server exited with {self.process.returncode}: {' | '.join(tail)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise PeerError(f"llama-server did not become healthy within {within:.0f} s")

    def log_tail(self, lines: int = 3) -> str:
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._handle.close()


async def stream_completion(client, url: str, ids: list[int], sampling: dict) -> tuple[float, float, int]:
    """(seconds to the first token, seconds to the end, tokens generated) of one streamed completion."""
    body = {"prompt": ids, "stream": True, "cache_prompt": True, **sampling}
    t0 = time.perf_counter()
    first, count, predicted = None, 0, None
    async with client.stream("POST", f"{url}/completion", json=body) as response:
        if response.status_code != 200:
            raise PeerError(f"llama-server answered {response.status_code}: {(await response.aread())[:200]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event.get("content") or event.get("tokens"):
                first = first or time.perf_counter()
                count += max(1, len(event.get("tokens") or ()))
            if event.get("stop"):
                predicted = event.get("tokens_predicted")
    end = time.perf_counter()
    return (first or end) - t0, end - t0, predicted if predicted is not None else count


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_level(url: str, prompts: list[list[int]], sampling: dict, concurrency: int) -> tuple[float, list[float], int]:
    """``prompts`` by ``concurrency`` chats at a time: (tokens/s over the wall time, TTFTs, tokens)."""
    import httpx

    queue = list(reversed(prompts))
    results: list[tuple[float, float, int]] = []

    async def chat(client) -> None:
        while queue:
            results.append(await stream_completion(client, url, queue.pop(), sampling))

    # A fresh connection per request: the server drops idle keep-alive connections between levels.
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(chat(client) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    tokens = sum(r[2] for r in results)
    return tokens / wall, [r[0] for r in results], tokens
