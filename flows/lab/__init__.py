"""The miniature self-play lab: curriculum, bootstrap, experiment, report, its commands."""
