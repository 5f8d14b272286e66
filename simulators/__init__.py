"""Local simulators of the national systems Motcua connects to (docs/connections.md): small HTTP servers
speaking the other side's real format, started by the tests and by `make run` when configured."""
