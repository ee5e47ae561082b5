"""The tunix-rt web dashboard: jobs, devices, runs with live curves, models, evaluations,
datasets and sweeps in a browser.

    tunix-rt dashboard --port 8080      # then open http://127.0.0.1:8080

It holds no state of its own: every page is read through the project's Python client
(`RegistryClient`, `TrainingClient`, `InferenceClient`) with the same addresses, token and TLS
settings as the rest of the `tunix-rt` command line, and live curves are the training service's
`StreamJobMetrics` pushed to the browser as server-sent events. It imports no service code.

Modules: `app` (the Starlette application and its error pages), `connections` (the clients and
how a call's failure becomes a banner or a 404), `rendering` (templates and formatting),
`series` (metric curves and their downsampling), `live` (server-sent events), `pages.*` (one
module per group of pages), `cli` (the `tunix-rt dashboard` command).
"""
