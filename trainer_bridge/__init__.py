"""Bridges to trainers: exporters, reward functions, the bundled GRPO learner."""
