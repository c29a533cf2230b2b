"""Running VetSync in production: queue heartbeats, /healthz, /metrics (Prometheus) and one
structured log line per sync run and per writeback attempt. Wiring layer: it may import
every app; nothing imports it but the settings and the URL map."""
