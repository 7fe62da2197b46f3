"""Site simulation and demo orchestration for the ``gatepass demo`` and ``simulate`` commands.

- :mod:`gatepass.sim.procs`: child processes (a real broker, the central service, workers)
  that die with us and are stopped on exit;
- :mod:`gatepass.sim.site`: the deterministic day at a site (gates, slots, permits,
  arrivals, outages);
- :mod:`gatepass.sim.worker`: a process hosting many gates as threads on the real agent
  path (``GateAgent`` + ``Ledger`` + ``GateSync``), payloads fed without images;
- :mod:`gatepass.sim.audit`: compare the gates' ledgers with the central store event by
  event;
- :mod:`gatepass.sim.simulation` and :mod:`gatepass.sim.demo`: the two commands.
"""
