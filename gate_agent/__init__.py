"""The gate agent: decide on each scanned permit, signal the gate, record it durably.

Modules (one idea each; importing this package has no side effects):

- ``config``: the TOML config, validated strictly (``gatepass agent check-config``);
- ``clock``: trusted time (NTP state, signed beacons, monotonic extrapolation, jumps);
- ``policy``: the pure gate decision on a verified permit plus the gate's state;
- ``reasons``: gate reason codes and verdicts (with ``verifier.errors.Reason``);
- ``ledger``: the SQLite WAL ledger (events, usage, trips; outbox in the same transaction);
- ``trust``: the trust store and revocations, updated from sync;
- ``agent``: :class:`~gate_agent.agent.GateAgent`, the pipeline and the console backend;
- ``assembly``: build an agent from a config; ``uplink``: wire it to ``sync.GateSync``;
- ``logs``: JSON-lines logging; ``decode``/``debounce``: QR decoding (engineer H);
- ``console``/``i18n``: the attendant console and its messages (engineer G2).
"""
