"""The internal API (generated stubs in v1/)."""
