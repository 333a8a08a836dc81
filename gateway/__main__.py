"""``python -m gateway``: run the gateway (the public API)."""

import asyncio

from gateway.server import serve

if __name__ == "__main__":
    asyncio.run(serve())
