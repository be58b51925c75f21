"""A production-ready, pluggable Apache Arrow Flight RPC server."""
