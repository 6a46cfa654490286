"""Tests of the chaincode runtime: naming, launch config, certificates, platform builders."""
