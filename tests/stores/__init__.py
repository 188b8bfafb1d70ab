"""Store tests: one contract suite for every store, plus backend-specific behaviour.

The Redis runs use a real ``redis-server`` started by the fixtures on a free
loopback port; without the binary they skip (``apt-get install -y
redis-server``), and with ``CI=true`` they fail instead.
"""
