"""Tests of the Fabric external builder, driven as a peer drives it."""
