"""The shared data layer: Redis (redis-py, pipelined) and an in-memory backend behind one interface."""
