"""``python -m services.search``: run the search service."""

import asyncio

from services.search.server import serve

if __name__ == "__main__":
    asyncio.run(serve())
