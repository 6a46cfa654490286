"""ccdaemon's tests, against real engines."""
