"""Layer 3: sans-IO engines. Bytes, addresses and ``now`` in; actions, events and
the next deadline out. Nothing here opens a socket, sleeps or reads a clock."""
