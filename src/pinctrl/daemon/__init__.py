"""Life cycle and operator surfaces: CLI, start-up, supervision, keep-alive,
systemd notify, metrics."""
