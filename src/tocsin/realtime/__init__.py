"""Live delivery: the hub of connections, the sans-I/O session, and the transports."""
