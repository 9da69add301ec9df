"""The I/O shell: Ray actors, Kafka clients, the embedded broker. Logic lives in reducer/."""
