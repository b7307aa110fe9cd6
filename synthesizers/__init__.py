"""Synthesizers turn seeds (a problem and a correct solution) into candidate problems."""
