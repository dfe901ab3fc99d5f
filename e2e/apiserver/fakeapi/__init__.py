"""fakeapi: the pieces of Pillion's test double of the Kubernetes API server.

This is a test double for CI, not a Kubernetes. See e2e/README.md.
"""
