"""RWR training of the meta-agent: examples (`rwr`), loss (`loss`), the Ray Train job (`trainer`)."""
