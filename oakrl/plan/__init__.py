"""Planning with a learned model: Dyna background updates and decision-time tree search (mctx)."""
