"""What every tunix-rt server shares: config, bootstrap, health, reflection, interceptors, errors.

Modules: `config` (ServerConfig, from_env), `server` (start_server, run), `interceptors` (auth,
errors → status, logs, metrics), `error_status` (TunixError → google.rpc.Status), `metrics`
(Prometheus), `logging_setup` (structured logs), `errors` (the domain exception hierarchy).
"""
