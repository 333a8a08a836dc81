"""Generated stubs of the internal API between the services (package designsearch.internal.v1). Do not edit."""
