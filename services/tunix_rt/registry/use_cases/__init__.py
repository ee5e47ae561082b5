"""The registry's use cases, one module per resource: the rules of each request over the repository
and the blob store.

Plain Python: no module here imports grpc or SQLAlchemy (the servicer converts protos, the
repository owns the database). Every method is synchronous; the servicer runs it on a worker thread.
Each method checks its request (InvalidArgument naming the field) before it reads or writes.
"""
