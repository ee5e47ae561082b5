"""Persistence of the registry: the only package of tunix-rt that imports SQLAlchemy."""
