"""Thin adapters around the pure core: Kafka, HTTP, Prometheus, the embedded broker."""
