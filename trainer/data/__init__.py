"""CUB-200-2011 data: reading and checking the archive layout, splits, transforms, demo and fetch,
and the two batch pipelines (``loaders``: the report's reference, ``fast``: the decoded cache)."""
