"""What every tunix-rt server shares: config, bootstrap, health, reflection, interceptors, errors.

Server bootstrap entry points: `config.ServerConfig` / `config.from_env`, `server.start_server`,
`server.run`; domain errors live in `errors`.
"""
