"""End to end with the Redis store: real bot processes, real signals, a real redis-server.

(Not named ``redis``: a test package of that name would shadow redis-py.)
"""
