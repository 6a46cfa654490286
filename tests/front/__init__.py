"""A real Fabric peer on its own Docker controller, through ccdaemon's Docker-API front."""
