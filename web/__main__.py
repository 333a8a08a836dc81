"""``python -m designsearch.web``: serve the designer's web page (settings from ``DESIGNSEARCH_WEB_*``)."""

from designsearch.web.app import serve

if __name__ == "__main__":
    serve()
