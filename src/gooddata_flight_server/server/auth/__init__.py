"""Compatibility: the original package's module path; token authentication lives in
``gooddata_flight_server.auth``.
"""
