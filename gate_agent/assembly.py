"""Build a complete :class:`GateAgent` from an :class:`AgentConfig` (commands, bench, demo).

Everything opened here is closed by the returned context manager, in reverse order:
agent threads first, then outputs, source and ledger.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gate_agent.agent import GateAgent, VerifyFn
from gate_agent.clock import TrustedClock
from gate_agent.config import AgentConfig
from gate_agent.ledger import Ledger
from gate_agent.trust import GateTrust

log = logging.getLogger(__name__)


def clock_from_config(cfg: AgentConfig, **sources: Callable[[], Any]) -> TrustedClock:
    """The trusted clock the config describes; ``sources`` (wall, mono, synced) for tests."""
    c = cfg.clock
    return TrustedClock(
        system=c.system,
        beacon_valid_s=c.beacon_valid_s,
        monotonic_valid_s=c.monotonic_valid_s,
        jump_threshold_s=c.jump_threshold_s,
        override_s=c.override_s,
        **sources,
    )


@contextlib.contextmanager
def assemble(
    cfg: AgentConfig,
    *,
    ledger_path: Path | str | None = None,
    clock: TrustedClock | None = None,
    with_source: bool = True,
    with_outputs: bool = True,
    with_decoder: bool = True,
    trust: GateTrust | None = None,
    verify: VerifyFn | None = None,
    outputs: Any = None,
    source: Any = None,
) -> Iterator[GateAgent]:
    """Open ledger, trust, decoder, source and outputs per ``cfg``; yield an unstarted agent."""
    with contextlib.ExitStack() as stack:
        clock = clock or clock_from_config(cfg)
        # Document signers are checked at the gate's best time, not the raw wall clock.
        trusted_clock = clock
        trust = trust or GateTrust.from_files(cfg.trust.bundle, cfg.trust.revocations,
                                              clock=lambda: trusted_clock.now().t)
        ledger = stack.enter_context(
            Ledger(ledger_path if ledger_path is not None else cfg.ledger,
                   gate=cfg.gate, site=cfg.site)
        )
        decoder = None
        if with_decoder:
            from gate_agent.decode import make_decoder

            decoder = make_decoder(cfg.decoder)
        if source is None and with_source and cfg.source is not None:
            from hardware.sources import open_source

            source = stack.enter_context(open_source(cfg.source))
        if outputs is None and with_outputs:
            from hardware.outputs import open_outputs

            if cfg.outputs is None:
                log.warning("no [outputs] in the config: using simulated outputs (no turnstile)")
            outputs = open_outputs(cfg.outputs)
            stack.callback(outputs.close)
        agent = GateAgent(
            config=cfg, ledger=ledger, clock=clock, trust=trust,
            source=source, decoder=decoder, outputs=outputs, verify=verify,
        )
        stack.callback(agent.close)
        from gate_agent.uplink import restore_documents

        agent.downlink_versions = restore_documents(agent)
        yield agent
