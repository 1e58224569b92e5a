"""Eventing: CloudEvents from Kafka records, delivery policy, and the KafkaSource dispatcher."""
