"""Tests of the daemon process: systemd notification, metrics."""
