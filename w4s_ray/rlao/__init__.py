"""RLAO: the W4S decision process (state, rewards, prompt), one episode's turn loop, candidate
racing, trajectories in Parquet and run directories with exact resume. No Ray in here: the Ray
plumbing is in `w4s_ray.runtime.collect`, `runtime.evaluators` and `runtime.meta_agent_actor`.
See docs/RLAO.md and docs/TRAJECTORIES.md."""
