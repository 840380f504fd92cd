"""A1 on the Non-RT side: a client of the Near-RT A1-P endpoint and the operators' policy management."""
