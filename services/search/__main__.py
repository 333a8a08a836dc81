"""``python -m designsearch.services.search``: run the search service."""

import asyncio

from designsearch.services.search.server import serve

if __name__ == "__main__":
    asyncio.run(serve())
