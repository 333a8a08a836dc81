"""``python -m designsearch.services.embedder``: run the embedder service."""

import asyncio

from designsearch.services.embedder.server import serve

if __name__ == "__main__":
    asyncio.run(serve())
