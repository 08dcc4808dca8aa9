"""Layer 1: memberlist's wire format, byte for byte as Go writes it."""
