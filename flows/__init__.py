"""Top layer: Prefect flows and the `svs` command line. Nothing imports this package."""
