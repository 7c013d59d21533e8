"""Everything on one machine: `simulate`'s one-shot party processes, a whole consortium of
daemons on localhost, free ports, synthetic data."""
