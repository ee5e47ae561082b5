"""What `tunix-rt generate` shows while the inference service loads its model.

The first request for a model loads its weights and compiles its batch sizes before the first
token, which takes a minute for the README's model on two CPU cores; without a word the command
looks hung. `LoadProgress` asks the service for the model's state before generating and, while it
is not ready, says so on stderr with the elapsed seconds until the first output arrives.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

import grpc

from tunix_rt.client.inference import InferenceClient
from tunix_rt.v1 import inference_pb2

# How often the elapsed time is updated on a terminal, and how often a line is written otherwise
# (a log should not get one line a second).
TTY_INTERVAL_S = 1.0
LINE_INTERVAL_S = 10.0


class LoadProgress:
    """A context manager around a generation: on entry it asks whether `model` is ready and, if
    not, reports loading on `stream` until `first_output()` is called or the block ends."""

    def __init__(self, client: InferenceClient, model: str, stream: TextIO | None = None) -> None:
        self.client = client
        self.model = model
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def ready(self) -> bool:
        """Whether the model is in memory and ready (NOT_FOUND: not in memory yet)."""
        try:
            loaded = self.client.get_loaded_model(self.model)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return loaded.state == inference_pb2.LOADED_MODEL_STATE_READY

    def __enter__(self) -> LoadProgress:
        # Asked before the generation starts, so the first line never races it.
        if not self.ready():
            self._started = time.monotonic()
            self._write(f"loading {self.model}… (weights, then compiling its batch sizes)")
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def first_output(self) -> None:
        """The generation produced something: the model is loaded."""
        if self._thread is None or self._done.is_set():
            return
        self._done.set()
        self._thread.join()
        self._write(f"loaded {self.model} in {time.monotonic() - self._started:.0f} s", end=True)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._thread is not None and not self._done.is_set():
            self._done.set()
            self._thread.join()
            if self.tty:
                self.stream.write("\n")

    def _tick(self) -> None:
        interval = TTY_INTERVAL_S if self.tty else LINE_INTERVAL_S
        while not self._done.wait(interval):
            elapsed = time.monotonic() - self._started
            self._write(f"loading {self.model}… {elapsed:.0f} s")

    def _write(self, text: str, *, end: bool = False) -> None:
        if self.tty:
            # One line, rewritten in place; the final message ends it.
            self.stream.write("\r\033[K" + text + ("\n" if end else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
