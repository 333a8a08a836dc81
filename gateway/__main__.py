"""``python -m designsearch.gateway``: run the gateway (the public API)."""

import asyncio

from designsearch.gateway.server import serve

if __name__ == "__main__":
    asyncio.run(serve())
