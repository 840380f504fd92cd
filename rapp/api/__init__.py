"""The rApp's HTTP API: A1 policy management for operators, health and metrics."""
