"""The task state machine: one small function per step (actions.py, submit.py, follow.py),
and `advance_task` (machine.py), the one entry point the SQS worker calls."""
from .machine import advance_task, choose, handle_message, handle_record

__all__ = ["advance_task", "choose", "handle_message", "handle_record"]
