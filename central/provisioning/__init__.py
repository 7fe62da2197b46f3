"""Provisioning: the files an operator installs on the broker (and, later, on gates).

:mod:`central.provisioning.broker` writes the Mosquitto dynamic-security file that
``deploy/mosquitto/mosquitto.conf`` loads: one user per gate and per aggregator worker.
"""
