"""All Ray plumbing lives here: init, evaluator pools, rate-limiter actor, meta-agent actors,
sweep fan-out. Algorithm code elsewhere imports no Ray."""
