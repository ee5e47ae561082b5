"""Tests of tunix_rt.common: config, server bootstrap, interceptors, logs and metrics."""
