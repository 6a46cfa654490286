"""End-to-end tests with a real Fabric peer building and running chaincode through ccdaemon."""
