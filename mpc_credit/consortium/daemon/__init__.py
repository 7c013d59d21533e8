"""The party daemon, one long-lived process per institution, in parts."""
