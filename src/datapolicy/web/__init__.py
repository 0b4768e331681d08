"""The HTTP layer (Starlette), by role: app.py assembles the app; middleware/ is the request
pipeline and its cross-cutting steps; routes/ the route table and the Graph endpoints' handlers;
server_root/ what is answered before authentication; hot_path/ the GET by id below Starlette;
test_double/ what exists only for clients' tests (docs/architecture.md)."""
