"""Episodic (semi-parametric) memory: fixed-size stores in the agent state, read by nearest neighbours."""
