"""Compatibility: the original package's module path; configuration lives in
``gooddata_flight_server.settings``.
"""
