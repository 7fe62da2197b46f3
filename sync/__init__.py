"""Carrying gate events to the centre and signed data back: outbox, MQTT link, wire schema."""
