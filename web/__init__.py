"""The designer's web page: a Starlette app that talks to the gateway over gRPC (``designsearch web``)."""
