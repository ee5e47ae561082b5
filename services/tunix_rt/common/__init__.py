"""What every tunix-rt server shares: config, bootstrap, health, reflection, interceptors, errors."""
