"""Real parts for tests and benchmarks: `harness` (an HTTP event sink, manifests running on
the local runtime in this process or as `knit dev`), `fixtures` (pytest fixtures built on
them) and `sample_app` (a small WSGI app). Nothing is imported here, so running the
sample app does not load the rest of knit."""
