"""VetSync's clinic-side agent: reads a practice system, posts batches, writes shipped orders back.

It runs on the clinic's server without Django and imports nothing of VetSync but the batch
format in ``vetsync.pims``; it talks to VetSync over the agent API like any vendor's agent.
Keep this package Python 3.10 compatible: clinics' servers are older than ours.
"""

from __future__ import annotations

__version__ = "1.0.0"
USER_AGENT_NAME = "vetsync-agent"
