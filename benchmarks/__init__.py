"""On-demand benchmarks: this framework against raw ``pyarrow.flight`` (``make bench``)."""
