"""Load and fault tests: the daemon under 50 clients, a dying engine, leaving clients."""
