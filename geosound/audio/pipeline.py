"""Decoding and resampling off the critical path: work done by threads ahead of its consumer.

An embedding pipeline spends its time in the network; decoding a recording (libsndfile) and
resampling it (soxr) are C code that releases the GIL, so a thread can do them for the next
recordings while torch runs the network on the current ones. Both helpers keep order and
bound how far they run ahead, so memory holds a few prepared recordings, never a collection.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar, cast

from geosound.errors import InputError

Item = TypeVar("Item")
Result = TypeVar("Result")


def prefetch_map(
    func: Callable[[Item], Result],
    items: Iterable[Item],
    workers: int = 1,
    ahead: int | None = None,
) -> Iterator[Result]:
    """``func(item)`` for each item, in order, computed by ``workers`` threads ahead of use.

    At most ``ahead`` results wait (done or under way) beyond the one being consumed, so a
    slow consumer never makes the pool decode a whole collection into memory. An exception
    raised by ``func`` comes out of the iterator at that item's place, as it would in a plain
    loop; closing the iterator early cancels what has not started.

    Args:
        func: What to do to each item (thread-safe; best when it releases the GIL).
        items: The inputs, consumed lazily.
        workers: Threads; 0 runs ``func`` inline, in the consumer's thread.
        ahead: Results computed ahead of the consumer (default ``2 * workers``).

    Yields:
        ``func(item)`` for each item, in input order.
    """
    if int(workers) != workers or workers < 0:
        raise InputError(f"workers must be a whole number >= 0; got {workers!r}")
    if workers == 0:
        yield from map(func, items)
        return
    depth = max(1, 2 * workers if ahead is None else int(ahead))
    source = iter(items)
    pending: deque[Future[Result]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="geosound-prefetch") as pool:
        try:
            for item in source:
                pending.append(pool.submit(func, item))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


_DONE = object()


def in_background(iterable: Iterable[Result], ahead: int = 2) -> Iterator[Result]:
    """The items of ``iterable``, produced by one background thread up to ``ahead`` in advance.

    For a sequential producer that cannot be split into independent items — a long recording
    decoded, resampled and turned into log-mel frames window after window — so the next
    window is prepared while the network encodes this one. Exceptions reach the consumer in
    order; closing the iterator early stops the producer at its next item.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=max(1, int(ahead)))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            slots.put(_Raised(error))

    thread = threading.Thread(target=produce, name="geosound-background", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield cast(Result, item)
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(0.05)


class _Raised:
    """An exception of the producer thread, carried through the queue to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
