"""The pure core: model, uncertainty measures, gate, budget, pending store, evaluator.

Nothing in here talks to Kafka or HTTP, so the service, the offline evaluator and the demo all
drive the same objects: what is measured offline is what the service does online.
"""
