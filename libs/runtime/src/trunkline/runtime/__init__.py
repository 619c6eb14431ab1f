"""The process shell shared by every service: gRPC server, health, SIGTERM drain, logs."""
