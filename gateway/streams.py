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

    Args:
        items: a sync or async iterable.
        fn: called with the item's index and the item.
        concurrency: calls of ``fn`` running at once, ≥ 1.
        read_ahead: unfinished items held at once, ≥ ``concurrency``.

    Returns:
        The results, in the order of ``items``.

    Raises:
        Whatever ``fn`` raises first: the other calls are cancelled.
    """
    concurrency = max(1, concurrency)
    read_ahead = max(concurrency, read_ahead or 4 * concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    tasks: list[asyncio.Task] = []

    async def one(index: int, item: T) -> R:
        async with semaphore:
            return await fn(index, item)

    try:
        index = 0
        async for item in _aiter(items):
            tasks.append(asyncio.create_task(one(index, item)))
            index += 1
            while True:
                pending = [t for t in tasks if not t.done()]
                if len(pending) <= read_ahead:
                    break
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t.exception() is not None:
                        raise t.exception()
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        raise
