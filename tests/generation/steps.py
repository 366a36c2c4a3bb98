"""Watching and holding a batch's forward passes from a test (hooks on the input embedding).

Both batch engines call the model's input embedding once per forward pass (a decode step,
a prefill, or transformers' mixed step), so a pre-hook there counts passes, records their
width (tokens computed) and can park the batch thread before one, without timings.
"""

from __future__ import annotations

import threading


class Steps:
    """Counts batch steps and records how many tokens each one computed."""

    def __init__(self, model):
        self.widths: list[int] = []
        self._hook = model.get_input_embeddings().register_forward_pre_hook(lambda m, a: self.widths.append(a[0].numel()))

    def __len__(self):
        return len(self.widths)

    def close(self):
        self._hook.remove()


class Gate:
    """Holds the batch thread before each forward pass until the test grants a step."""

    def __init__(self, model):
        self.enabled = False
        self.permits = threading.Semaphore(0)
        self.waiting = threading.Event()
        self._hook = model.get_input_embeddings().register_forward_pre_hook(self._before_forward)

    def _before_forward(self, module, args):
        if self.enabled:
            self.waiting.set()
            self.permits.acquire()
            self.waiting.clear()

    def grant(self, steps):
        for _ in range(steps):
            self.permits.release()

    def open(self):
        self.enabled = False
        self.grant(2)
        self._hook.remove()
