"""Compatibility: the original package's module path; the Flight RPC edge lives in
``gooddata_flight_server.rpc``.
"""
