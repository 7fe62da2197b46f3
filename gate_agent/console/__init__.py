"""The attendant console: a local web page served by the gate agent.

:mod:`.backend` is the contract with the agent; :mod:`.server` serves the page and its
JSON API on 127.0.0.1 (or the configured console address); :mod:`.memory` is a scripted,
recording backend for tests and for working on the page without a gate.
"""
