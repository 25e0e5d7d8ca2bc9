"""Development tools `make run` uses (the demo sign-in's local Google stand-in), outside `tests/` so a
running system never imports the test suite; the tests use the same stand-ins.

Nothing here is imported by the server (.importlinter): they run as their own processes, e.g.
`python -m devtools.google --port 8910` (infra/demo.sh).
"""
