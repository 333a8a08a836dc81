"""Back-pressure for streams of work: one helper used by IndexDesigns and by reindex."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def _aiter(items: Iterable[T] | AsyncIterable[T]):
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def bounded_map(items: Iterable[T] | AsyncIterable[T], fn: Callable[[int, T], Awaitable[R]], *,
                      concurrency: int, read_ahead: int | None = None) -> list[R]:
    """``[await fn(i, item) for i, item in enumerate(items)]``, ``concurrency`` at a time, in order.

    At most ``read_ahead`` items (default ``4 × concurrency``) are taken from ``items`` before
    earlier ones finish, so a fast producer (a client stream, a folder of images) never fills memory.
    The cost per item does not grow with the stream: unfinished calls are a set that each call leaves
    when it finishes (a done callback), and waiting looks at those ``read_ahead`` calls only.

    Args:
        items: a sync or async iterable.
        fn: called with the item's index and the item.
        concurrency: calls of ``fn`` running at once, ≥ 1.
        read_ahead: unfinished items held at once, ≥ ``concurrency``.

    Returns:
        The results, in the order of ``items``.

    Raises:
        Whatever ``fn`` raises first (the other calls are cancelled), or whatever iterating ``items``
        raises (as soon as it does: e.g. a stream over its length limit).
    """
    concurrency = max(1, concurrency)
    read_ahead = max(concurrency, read_ahead or 4 * concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    results: list = []
    pending: set[asyncio.Task] = set()
    failures: list[BaseException] = []

    async def one(index: int, item: T) -> None:
        async with semaphore:
            results[index] = await fn(index, item)

    def finished(task: asyncio.Task) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())

    try:
        async for item in _aiter(items):
            results.append(None)
            task = asyncio.create_task(one(len(results) - 1, item))
            task.add_done_callback(finished)
            pending.add(task)
            while len(pending) > read_ahead and not failures:
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if failures:
                raise failures[0]
        while pending and not failures:
            await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        if failures:
            raise failures[0]
        return results
    except BaseException:
        for t in list(pending):
            t.cancel()
        raise
