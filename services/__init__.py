"""The service layer: the rules of the domain (tenancy, keys, dedup, erasure), in one place.

The API and the workers both call these functions. They take a session (and the gallery they
act in) as arguments and never commit: the caller owns the transaction, so that what a
function writes is committed with the rest of the request or task, or not at all.
"""
