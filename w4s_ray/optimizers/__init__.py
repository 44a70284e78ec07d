"""Workflow optimizers other than W4S, for the paper's comparison (no Ray, no I/O).

- `adas`: ADAS / Meta Agent Search (archive, fitness with bootstrap CI, reflexion, repair).
- `aflow`: AFlow (MCTS-style rounds over operator graphs, experience, convergence stop);
  `aflow_graph` renders graphs into workflows, `aflow_operators` is the operator library
  copied into them.
- `base`: the interfaces both use — the injected `Evaluate` callable and `Outcome`, seeds.

Both loops return JSON-able records and rebuild their state from them (`state_after`), so the
caller owns persistence, resume, budget handling and reports. docs/BASELINES.md describes
what follows the original methods and what differs.
"""
