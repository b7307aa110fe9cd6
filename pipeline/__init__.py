"""svs pipeline: records, rollout readers, diagnosis, policy backends, prompt store."""
