"""Signal handlers for the length of a block, restored afterwards."""

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any


@contextlib.contextmanager
def handling(signums: Iterable[int], handler: Callable[[int, Any], None]) -> Iterator[None]:
    """`handler` for each of `signums` while the block runs, then the previous handlers
    again. Off the main thread, where Python installs no handlers, the block runs with
    the handlers as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
