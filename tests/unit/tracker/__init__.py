"""Fast tests of the tracker use cases over fake repositories (no Postgres, no Kafka)."""
