"""Log outputs: file, syslog (RFC 5424 over TCP), MQTT and Loki, each with its own outbox."""
