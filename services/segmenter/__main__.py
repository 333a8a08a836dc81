"""``python -m services.segmenter``: run the segmenter service."""

import asyncio

from services.segmenter.server import serve

if __name__ == "__main__":
    asyncio.run(serve())
