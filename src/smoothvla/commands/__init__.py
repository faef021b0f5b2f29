"""One module per CLI verb: a `Config` dataclass and `run(cfg)`."""
