from __future__ import annotations

from vetsync.agent.cli import main

raise SystemExit(main())
