"""`python -m tunix_rt.client.cli`: the `tunix-rt` command without its installed entry point."""

from tunix_rt.client.cli import main

main()
