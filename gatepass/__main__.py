from __future__ import annotations

from gatepass.cli import main

raise SystemExit(main())
