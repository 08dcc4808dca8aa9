"""Layer 2: Serf's messages and rules, and Consul's user-event format on top."""
