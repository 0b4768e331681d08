"""The plain GET by id, answered below Starlette, and the cache of the bodies it sends."""
