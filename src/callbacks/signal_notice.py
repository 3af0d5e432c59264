"""Answer Ctrl-C and SIGTERM at once, while the running training step may take minutes.

Python runs a signal handler only between bytecodes of the main thread, so while a long
step runs in C++ (a ResNet18 step at batch 512 takes ~16 s on 2 CPU cores) the user hears
nothing and presses Ctrl-C again. Here the signal is also written to a wake-up pipe
(`signal.set_wakeup_fd`) by the C-level handler, and a small thread waiting on that pipe
says at once what will happen: the run stops after the current step and saves
`last.ckpt`; a second Ctrl-C stops at once, without saving (exit status 130).
"""

import os
import signal
import sys
import threading


class SignalNotice:
    """Started and stopped from the main thread (LastCheckpoint does it around training)."""

    def __init__(self, last_checkpoint: str):
        self.last_checkpoint = last_checkpoint
        self._read_fd: int | None = None
        self._write_fd: int | None = None
        self._previous_fd = -1
        self._interrupts = 0

    def start(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd needs a non-blocking fd
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(self._read_fd,), daemon=True,
                         name="signal-notice").start()

    def stop(self) -> None:
        if self._write_fd is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write_fd)  # the watcher reads end-of-file and ends
        self._write_fd = None

    def _watch(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while data := pipe.read(1):
                self._notice(data[0])

    def _notice(self, signum: int) -> None:
        if signum == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts == 1:
                self._say(f"Ctrl-C: stopping after the current training step and saving "
                          f"{self.last_checkpoint} (continue later with --resume true); press "
                          f"Ctrl-C again to stop at once without saving")
            else:
                self._say("Second Ctrl-C: stopping now, without saving")
                os._exit(130)  # the main thread may be inside a step for minutes yet
        elif signum == signal.SIGTERM:
            self._say(f"SIGTERM: stopping after the current training step and saving "
                      f"{self.last_checkpoint}")

    @staticmethod
    def _say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
