"""``python -m designsearch.services.segmenter``: run the segmenter service."""

import asyncio

from designsearch.services.segmenter.server import serve

if __name__ == "__main__":
    asyncio.run(serve())
