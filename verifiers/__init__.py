"""Verifiers: answer extraction and equivalence, sandboxed workers, problem-text checks."""
