"""The floor every layer stands on: record types, config helpers, shared constants and the
policy protocol. It imports nothing of svs."""
