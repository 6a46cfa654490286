"""Rung 3: Fabric's chaincode runtime on top of the engine client.

Naming, launch configuration, certificates, platform builders and the DockerVM steps,
as Fabric's core/container/dockercontroller and core/chaincode/container_runtime do them.
"""
