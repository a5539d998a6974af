"""Checkpoints and resume, in one room: where a run is saved and how a stopped one goes on.

- :mod:`.pointer`: ``run_state.json``, the pointer to the newest complete checkpoint, and the run
  folder's files (its tokenizer, clearing it);
- :mod:`.saver`: the phase checkpoints, the rolling resume checkpoint (DCP across processes);
- :mod:`.resume`: finding where a stopped run goes on.
"""
