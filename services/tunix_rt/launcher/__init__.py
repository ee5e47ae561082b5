"""What runs the services from the command line: `up` starts the registry, training and inference
services in one process, and `cli` contributes `serve registry|training|inference` and `up` to the
client's `tunix-rt` command (through the `tunix_rt.cli` entry points in pyproject.toml), with
`interchange` the model conversion behind its `models export|import`. It stands above the three
services (the only package that imports all of them) and never imports the client. It is a package
rather than a module beside them because `tunix_rt` is a namespace spread over clients/ and
services/, and setuptools' editable install maps packages only.
"""
