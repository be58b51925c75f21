"""The Flight RPC edge: the pyarrow server, its middleware, the availability gate and error boundary."""
